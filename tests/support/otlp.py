"""Build OTLP metric requests and send them over gRPC, for tests and benchmarks."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

EXPORT_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def attribute(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def gauge(name: str, points: list[tuple[dict, float, int]], unit: str = "") -> metrics_pb2.Metric:
    """A gauge metric from (attributes, value, time in ns) points."""
    metric = metrics_pb2.Metric(name=name, unit=unit)
    for attrs, value, time_ns in points:
        point = metric.gauge.data_points.add(time_unix_nano=time_ns, as_double=value)
        point.attributes.extend([attribute(key, item) for key, item in attrs.items()])
    return metric


def request_with(*metrics: metrics_pb2.Metric, resource: dict | None = None) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    attrs = {"service.name": "shop", "service.instance.id": "shop-1", "host.name": "web1"}
    attrs.update(resource or {})
    resource_metrics.resource.attributes.extend([attribute(key, value) for key, value in attrs.items()])
    resource_metrics.scope_metrics.add().metrics.extend(metrics)
    return request


def exporter(channel: grpc.Channel):
    """A raw Export call: takes serialized bytes, so tests can also send malformed ones."""
    return channel.unary_unary(EXPORT_METHOD, request_serializer=None,
                               response_deserializer=ExportMetricsServiceResponse.FromString)
