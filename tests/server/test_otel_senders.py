"""Other OTLP senders: the OpenTelemetry Python SDK's gRPC and HTTP exporters."""

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.support.store import read_series


def send_with_sdk(exporter, service: str) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create({"service.name": service, "service.instance.id": f"{service}-1",
                                "host.name": "sdk-host"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("shop.checkout")
    orders = meter.create_counter("shop.orders", unit="{order}", description="Orders placed.")
    orders.add(3, {"payment.method": "card"})
    orders.add(2, {"payment.method": "cash"})
    meter.create_observable_gauge("shop.queue.size", unit="By", description="Bytes waiting.",
                                  callbacks=[lambda options: [Observation(512.0, {"queue": "email"})]])
    assert provider.force_flush(30_000), "the SDK could not export"
    provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_metrics_stored_with_prometheus_names(server, transport):
    service = f"shop-{transport}"
    if transport == "grpc":
        exporter = GrpcExporter(endpoint=server.grpc, insecure=True)
    else:
        exporter = HttpExporter(endpoint=f"{server.url}/v1/metrics")

    send_with_sdk(exporter, service)
    server.proc.stop()

    orders = {dict(s.labels)["payment_method"]: s for s in read_series(server.data_dir, "shop_orders_total")}
    queue = read_series(server.data_dir, "shop_queue_size_bytes")
    assert sorted(orders) == ["card", "cash"]
    # The SDK exports once on flush and again on shutdown, with the same cumulative values.
    assert set(orders["card"].values.tolist()) == {3.0}
    assert set(orders["cash"].values.tolist()) == {2.0}
    labels = dict(orders["card"].labels)
    assert labels["job"] == service
    assert labels["instance"] == f"{service}-1"
    assert labels["host"] == "sdk-host"
    assert labels["endpoint_id"].startswith("host-")
    assert len(queue) == 1
    assert set(queue[0].values.tolist()) == {512.0}
    assert dict(queue[0].labels)["queue"] == "email"
