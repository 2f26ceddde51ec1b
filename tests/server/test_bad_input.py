"""Hostile and malformed input: each gets a clear error or a documented normalization,
valid data is kept, and the server keeps serving."""

import errno
import gzip
import math
import os
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from gosight.model import STALE_NAN_BITS
from gosight.wire import agent_pb2, agent_pb2_grpc
from tests.support.otlp import exporter, gauge, request_with
from tests.support.processes import start_server, wait_for
from tests.support.store import read_series

MAX_BYTES = 65536
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad-input")
    running = start_server(base / "data", base / "server.log", "--server.ingest.max_message_bytes", str(MAX_BYTES))
    yield running
    running.proc.stop()
    assert "Traceback" not in running.proc.log_text()


def valid_request(tag: str) -> bytes:
    return request_with(gauge("probe", [({"tag": tag}, 1.0, time.time_ns())])).SerializeToString()


def assert_still_serving(server, tag: str) -> None:
    with grpc.insecure_channel(server.grpc) as channel:
        response = exporter(channel)(valid_request(tag), timeout=10)
    assert response.partial_success.rejected_data_points == 0
    assert server.proc.process.poll() is None, "the server must keep running"


def grpc_error(server, payload: bytes, metadata=()) -> grpc.RpcError:
    with grpc.insecure_channel(server.grpc) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            exporter(channel)(payload, timeout=10, metadata=metadata)
    return caught.value


def http_post(server, body: bytes, headers: dict) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/metrics", content=body, headers=headers)


def test_grpc_malformed_protobuf(small_server):
    error = grpc_error(small_server, b"\xff\xff\xff\xff not protobuf")

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid OTLP metrics request" in error.details()
    assert_still_serving(small_server, "after-grpc-garbage")


def test_http_malformed_protobuf(small_server):
    response = http_post(small_server, b"\xff\xff\xff\xff not protobuf", PROTOBUF)

    status = status_pb2.Status.FromString(response.content)
    assert response.status_code == 400
    assert "invalid OTLP metrics request" in status.message
    assert_still_serving(small_server, "after-http-garbage")


def test_http_malformed_json(small_server):
    response = http_post(small_server, b'{"resourceMetrics": [{"resource": 7}]}',
                         {"Content-Type": "application/json"})

    assert response.status_code == 400
    assert "invalid OTLP JSON" in response.json()["message"]


def test_grpc_oversized_message(small_server):
    points = [({"i": str(i), "pad": "x" * 64}, 1.0, time.time_ns()) for i in range(2000)]
    payload = request_with(gauge("big", points)).SerializeToString()

    error = grpc_error(small_server, payload)

    assert len(payload) > MAX_BYTES
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(small_server, "after-grpc-oversized")


def test_http_oversized_body(small_server):
    response = http_post(small_server, b"\x00" * (MAX_BYTES + 1), PROTOBUF)

    assert response.status_code == 413
    assert "server.ingest.max_message_bytes" in status_pb2.Status.FromString(response.content).message


def test_http_gzip_bomb(small_server):
    bomb = gzip.compress(b"\x00" * (MAX_BYTES * 50))

    response = http_post(small_server, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})

    assert len(bomb) < MAX_BYTES
    assert response.status_code == 413


def test_http_unsupported_content_type(small_server):
    response = http_post(small_server, b"hello", {"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert "application/x-protobuf" in status_pb2.Status.FromString(response.content).message


def test_invalid_batch_id(small_server):
    error = grpc_error(small_server, valid_request("bad-id"), metadata=(("gosight-batch-id", "no colon here"),))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid batch id" in error.details()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_empty_batch(small_server, transport):
    if transport == "grpc":
        with grpc.insecure_channel(small_server.grpc) as channel:
            response = exporter(channel)(b"", timeout=10)
    else:
        answer = http_post(small_server, b"", PROTOBUF)
        assert answer.status_code == 200
        response = ExportMetricsServiceResponse.FromString(answer.content)

    assert response.partial_success.rejected_data_points == 0


def test_control_stream_requires_hello(small_server):
    with small_server.client() as client:
        before = client.get("/api/v1/endpoints").json()["endpoints"]
    with grpc.insecure_channel(small_server.grpc) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        messages = iter([agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat(time_unix_ms=1))])
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Connect(messages, timeout=10))

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "must be hello" in caught.value.details()
    with small_server.client() as client:
        after = client.get("/api/v1/endpoints").json()["endpoints"]
    assert after == before, "an unknown agent must not become an endpoint"


def test_control_stream_rejects_invalid_agent_id(small_server):
    with grpc.insecure_channel(small_server.grpc) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        hello = agent_pb2.Hello(agent_id="../../etc/passwd", endpoint_id="host-x")
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Connect(iter([agent_pb2.AgentMessage(hello=hello)]), timeout=10))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid agent_id" in caught.value.details()


def test_values_and_labels_are_normalized(tmp_path: Path):
    """NaN and infinities are stored as sent; out-of-range timestamps are rejected with a
    reason while the valid points of the same request are stored; invalid label names
    are translated."""
    server = start_server(tmp_path / "data", tmp_path / "server.log")
    now_ns = time.time_ns()
    hour_ns = 3600 * 10**9
    metric = gauge("sensor", [
        ({"kind": "nan"}, math.nan, now_ns),
        ({"kind": "inf"}, math.inf, now_ns),
        ({"kind": "ninf"}, -math.inf, now_ns),
        ({"kind": "future"}, 1.0, now_ns + 24 * hour_ns),
        ({"kind": "past"}, 1.0, now_ns - 400 * 24 * hour_ns),
        ({"kind": "ok", "http.method": "GET", "9lives": "cat"}, 7.0, now_ns),
    ])
    stale = metric.gauge.data_points.add(time_unix_nano=now_ns, as_double=1.0, flags=1)
    stale.attributes.add(key="kind").value.string_value = "stale"

    with grpc.insecure_channel(server.grpc) as channel:
        response = exporter(channel)(request_with(metric).SerializeToString(), timeout=10)
    server.proc.stop()

    stored = {dict(series.labels)["kind"]: series for series in read_series(server.data_dir, "sensor")}
    assert response.partial_success.rejected_data_points == 2
    assert "in the future" in response.partial_success.error_message
    assert "older than the retention period" in response.partial_success.error_message
    assert sorted(stored) == ["inf", "nan", "ninf", "ok", "stale"]
    assert math.isnan(stored["nan"].values[0])
    assert stored["inf"].values[0] == math.inf
    assert stored["ninf"].values[0] == -math.inf
    assert int(stored["stale"].values.view("uint64")[0]) == STALE_NAN_BITS
    ok = dict(stored["ok"].labels)
    assert ok["http_method"] == "GET"
    assert ok["key_9lives"] == "cat"
    assert stored["ok"].values.tolist() == [7.0]


def test_unstorable_names_and_values_are_rejected(tmp_path: Path):
    server = start_server(tmp_path / "data", tmp_path / "server.log")
    now_ns = time.time_ns()
    request = request_with(
        gauge("", [({"tag": "a"}, 1.0, now_ns)]),
        gauge("n" * 600, [({"tag": "a"}, 1.0, now_ns), ({"tag": "b"}, 1.0, now_ns)]),
        gauge("sizes", [({"tag": "v" * 5000}, 1.0, now_ns), ({"k" * 600: "x"}, 1.0, now_ns),
                        ({"tag": "ok"}, 2.0, now_ns)]),
    )

    with grpc.insecure_channel(server.grpc) as channel:
        response = exporter(channel)(request.SerializeToString(), timeout=10)
    server.proc.stop()
    stored = read_series(server.data_dir, "sizes")

    message = response.partial_success.error_message
    assert response.partial_success.rejected_data_points == 5
    assert "1 points of metrics without a name" in message
    assert "2 points of metrics with names over 512 characters" in message
    assert "1 points with attribute values over 4096 characters" in message
    assert "1 points with attribute names over 512 characters" in message
    assert [dict(series.labels)["tag"] for series in stored] == ["ok"]
    assert stored[0].values.tolist() == [2.0]


def _fill(path: Path) -> None:
    """Write zeros into `path` until the file system is full."""
    chunk = b"\0" * (64 * 1024)
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(chunk)
                filler.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC, error


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs to fill needs root")
def test_full_disk_is_reported_and_recovered(tmp_path: Path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        server = start_server(mount_point / "data", tmp_path / "server.log")
        with grpc.insecure_channel(server.grpc) as channel, httpx.Client(base_url=server.url) as web:
            send = exporter(channel)
            accepted = send(valid_request("before"), timeout=10)
            _fill(mount_point / "filler")
            with pytest.raises(grpc.RpcError) as full:
                for round_number in range(200):
                    # DuckDB may absorb a few writes in blocks it already holds.
                    send(request_with(gauge("probe", [({"tag": f"full-{round_number}-{index}"}, 1.0,
                                                       time.time_ns()) for index in range(500)])
                                      ).SerializeToString(), timeout=10)
            degraded = web.get("/healthz")
            (mount_point / "filler").unlink()
            recovered = wait_for(lambda: send(valid_request("after"), timeout=10), message="a write after space "
                                 "was freed")
            healthy = web.get("/healthz")
        server.proc.stop()
        stored = {dict(series.labels)["tag"] for series in read_series(server.data_dir, "probe")}
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)

    assert accepted.partial_success.rejected_data_points == 0
    assert full.value.code() == grpc.StatusCode.UNAVAILABLE
    assert degraded.status_code == 503
    assert degraded.json()["status"] == "degraded"
    assert "cannot write new samples" in degraded.json()["problems"][0]
    assert recovered.partial_success.rejected_data_points == 0
    assert healthy.status_code == 200
    assert {"before", "after"} <= stored, "data accepted before the disk filled is kept"
