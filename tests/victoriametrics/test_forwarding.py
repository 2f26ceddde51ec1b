"""Remote write to a real VictoriaMetrics: every sample arrives, outages are ridden out, drops are counted."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Server, wait_for
from tests.support.store import read_series
from tests.victoriametrics import dataset
from tests.victoriametrics.conftest import server_metric, start_vm_server, wait_forwarded
from tests.victoriametrics.vmprocess import VictoriaMetrics

pytestmark = pytest.mark.slow
OTLP_HEADERS = {"Content-Type": "application/x-protobuf"}


def send(server: Server, requests) -> None:
    with server.client() as client:
        for request in requests:
            response = client.post("/v1/metrics", content=request.SerializeToString(), headers=OTLP_HEADERS)
            assert response.status_code == 200, response.text


def exported_samples(victoria: VictoriaMetrics, selector: str) -> dict[tuple, list[tuple[int, float]]]:
    victoria.flush()
    found = {}
    for series in victoria.export(selector):
        key = tuple(sorted(series["metric"].items()))
        found[key] = list(zip(series["timestamps"], series["values"]))
    return found


def test_every_sample_arrives(vm_server: Server, victoria: VictoriaMetrics, tmp_path: Path):
    data = dataset.build(int(time.time()) // 60 * 60 - 600)

    send(vm_server, data.requests)
    with vm_server.client() as client:
        wait_forwarded(client, data.samples)
        failures = server_metric(client, "gosight_remote_write_failures_total")
        last_success = server_metric(client, "gosight_remote_write_last_success_timestamp_seconds")
    vm_server.proc.stop()
    arrived = exported_samples(victoria, '{__name__=~".+"}')
    stored = read_series(vm_server.data_dir, "node_load1") + read_series(vm_server.data_dir, "app_requests_total")

    assert failures == 0
    assert last_success > time.time() - 120
    assert sum(len(points) for points in arrived.values()) == data.samples, "VictoriaMetrics misses samples"
    for series in stored:
        key = tuple(sorted(dict(series.labels).items()))
        assert key in arrived, f"series {key} missing in VictoriaMetrics"
        expected = list(zip(series.timestamps_ms.tolist(), series.values.tolist()))
        assert arrived[key] == expected, f"samples of {key} differ"


def test_staleness_marker_ends_series(vm_server: Server, victoria: VictoriaMetrics):
    data = dataset.build(int(time.time()) // 60 * 60 - 600)
    marker_s = data.start_s + dataset.ENDS_WITH_MARKER_AT * dataset.INTERVAL_S
    query = 'node_filesystem_avail_bytes{mountpoint="/mnt/usb", host="web1"}'

    send(vm_server, data.requests)
    with vm_server.client() as client:
        wait_forwarded(client, data.samples)
    victoria.flush()
    before = httpx.get(victoria.url + "/api/v1/query", params={"query": query, "time": marker_s - 1}).json()
    after = httpx.get(victoria.url + "/api/v1/query", params={"query": query, "time": marker_s + 1}).json()
    exported = victoria.export(query)

    assert len(before["data"]["result"]) == 1, before
    assert after["data"]["result"] == [], f"the series must end at the staleness marker: {after}"
    # VictoriaMetrics stores the marker as a sample and exports it as null.
    assert exported[0]["values"][-1] is None, exported[0]["values"][-3:]
    assert exported[0]["timestamps"][-1] == marker_s * 1000


def test_outage_keeps_samples_in_queue(tmp_path: Path, victoria: VictoriaMetrics):
    server = start_vm_server(tmp_path, victoria)
    try:
        data = dataset.build(int(time.time()) // 60 * 60 - 600)
        first, second = data.requests[: len(data.requests) // 2], data.requests[len(data.requests) // 2:]
        send(server, first)
        with server.client() as client:
            first_samples = sum(_count(request) for request in first)
            wait_forwarded(client, first_samples)

            sent_before = server_metric(client, "gosight_remote_write_samples_sent_total")
            victoria.stop()
            send(server, second)
            # The forwarder queues a commit just after the sender's acknowledgement, so poll.
            waiting = data.samples - sent_before
            wait_for(lambda: server_metric(client, "gosight_remote_write_queue_samples") == waiting, timeout_s=30,
                     message=f"{waiting} queued samples while VictoriaMetrics is down")
            wait_for(lambda: server_metric(client, "gosight_remote_write_failures_total") > 0, timeout_s=30,
                     message="a failed send while VictoriaMetrics is down")
            victoria.start()
            wait_forwarded(client, data.samples, timeout_s=90)
            dropped = server_metric(client, "gosight_remote_write_samples_dropped_total", reason="queue_full")
    finally:
        server.proc.stop()
    arrived = exported_samples(victoria, '{__name__=~".+"}')

    assert dropped == 0
    assert sum(len(points) for points in arrived.values()) == data.samples


def test_full_queue_drops_oldest(tmp_path: Path, victoria: VictoriaMetrics):
    server = start_vm_server(tmp_path, victoria, "--store.metrics.remote_write_queue_samples", "1000")
    try:
        victoria.stop()
        data = dataset.build(int(time.time()) // 60 * 60 - 600, chunk_points=4)
        newest = data.requests[-20:]
        send(server, data.requests[:-20])
        send(server, newest)
        with server.client() as client:
            wait_for(lambda: server_metric(client, "gosight_remote_write_samples_dropped_total",
                                           reason="queue_full") > 0, timeout_s=30, message="dropped samples")
            depth = server_metric(client, "gosight_remote_write_queue_samples")
            victoria.start()
            wait_for(lambda: server_metric(client, "gosight_remote_write_queue_samples") == 0, timeout_s=90,
                     message="the queue to drain after VictoriaMetrics is back")
            dropped = server_metric(client, "gosight_remote_write_samples_dropped_total", reason="queue_full")
            sent = server_metric(client, "gosight_remote_write_samples_sent_total")
    finally:
        server.proc.stop()
    log = server.proc.log_text()

    assert depth <= 1000
    assert dropped + sent == data.samples, f"dropped {dropped} + sent {sent} != {data.samples}"
    assert sent >= 1000 - max(_count(request) for request in newest)
    assert "remote write queue full, oldest samples dropped" in log


def _count(request) -> int:
    total = 0
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.HasField("histogram"):
                    total += len(metric.histogram.data_points) * (len(dataset.HISTOGRAM_BOUNDS) + 3)
                elif metric.HasField("sum"):
                    total += len(metric.sum.data_points)
                else:
                    total += len(metric.gauge.data_points)
    return total
