"""The remote write encoder and forwarder against a scripted HTTP transport (no VictoriaMetrics needed)."""

from __future__ import annotations

import logging
import struct
import threading

import cramjam
import httpx
import numpy as np
import pytest

from gosight.model import STALE_NAN, SampleBatch, make_labels
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.series import SeriesRegistry
from gosight.store.victoriametrics.encode import LabelCache, compress, encode_write_request
from gosight.store.victoriametrics.forwarder import RemoteWriter
from gosight.wire import remote_write_pb2
from tests.support.processes import wait_for


def registry_with(count: int) -> SeriesRegistry:
    registry = SeriesRegistry()
    for index in range(count):
        registry.get_or_create(make_labels({"__name__": "m", "host": f"h{index}", "zone": "ü-€"}))
    return registry


def decode(body: bytes) -> remote_write_pb2.WriteRequest:
    return remote_write_pb2.WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))


def samples_of(request: remote_write_pb2.WriteRequest) -> list[tuple[str, int, int]]:
    """(host label, timestamp, value bits) of every sample, in wire order."""
    out = []
    for series in request.timeseries:
        host = next(label.value for label in series.labels if label.name == "host")
        for sample in series.samples:
            out.append((host, sample.timestamp, struct.unpack("<Q", struct.pack("<d", sample.value))[0]))
    return out


def batch(ids: list[int], stamps: list[int], values: list[float]) -> SampleBatch:
    return SampleBatch(np.array(ids, dtype=np.uint32), np.array(stamps, dtype=np.int64),
                       np.array(values, dtype=np.float64), None)


class ScriptedVictoriaMetrics:
    """Answers remote write requests with the given status codes in turn, then 204."""

    def __init__(self, statuses: list[int] | None = None):
        self.statuses = list(statuses or [])
        self.received: list[remote_write_pb2.WriteRequest] = []
        self.headers: list[httpx.Headers] = []
        self.attempts = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.attempts += 1
            status = self.statuses.pop(0) if self.statuses else 204
            if status == 204:
                self.received.append(decode(request.content))
                self.headers.append(request.headers)
        return httpx.Response(status, text="" if status == 204 else f"status {status}")


def writer_for(fake: ScriptedVictoriaMetrics, registry: SeriesRegistry, **options) -> RemoteWriter:
    options.setdefault("capacity_samples", 1000)
    options.setdefault("backoff_initial_s", 0.01)
    options.setdefault("backoff_max_s", 0.05)
    return RemoteWriter("http://vm.invalid:8428/", registry, ServerMetrics(),
                        transport=httpx.MockTransport(fake), **options)


def test_encoding_matches_generated_decoder():
    registry = registry_with(3)
    ids = np.array([2, 0, 2, 1, 0], dtype=np.uint32)
    stamps = np.array([5_000, -1, 4_000, 2**40, 1_796_000_000_000], dtype=np.int64)
    values = np.array([1.5, STALE_NAN, -0.0, float("inf"), 2.0**60], dtype=np.float64)

    decoded = remote_write_pb2.WriteRequest.FromString(
        encode_write_request(ids, stamps, values, LabelCache(registry.labels)))

    by_host = {series.labels[1].value: series for series in decoded.timeseries}
    assert [label.name for label in decoded.timeseries[0].labels] == ["__name__", "host", "zone"]
    assert by_host["h0"].labels[2].value == "ü-€"
    assert [sample.timestamp for sample in by_host["h0"].samples] == [-1, 1_796_000_000_000]
    assert [sample.timestamp for sample in by_host["h2"].samples] == [4_000, 5_000], "samples sorted by time"
    stale_bits = struct.unpack("<Q", struct.pack("<d", by_host["h0"].samples[0].value))[0]
    assert stale_bits == 0x7FF0000000000002, "the staleness marker must keep its bits"
    assert struct.unpack("<Q", struct.pack("<d", by_host["h2"].samples[0].value))[0] == 1 << 63, "-0 kept"
    assert by_host["h1"].samples[0].value == float("inf")


def test_compression_is_snappy_block_format():
    payload = encode_write_request(np.array([0], np.uint32), np.array([1], np.int64), np.array([2.0]),
                                   LabelCache(registry_with(1).labels))

    assert bytes(cramjam.snappy.decompress_raw(compress(payload))) == payload


def test_forwarder_sends_in_commit_order_with_headers():
    fake = ScriptedVictoriaMetrics()
    writer = writer_for(fake, registry_with(2), max_samples_per_request=2)
    writer.start()

    writer.on_commit([batch([0, 1], [1, 1], [1.0, 2.0])])
    writer.on_commit([batch([0], [2], [3.0]), batch([1], [2], [4.0])])
    left = writer.close(timeout_s=5)

    sent = [sample for request in fake.received for sample in samples_of(request)]
    assert left == 0
    assert [(host, stamp) for host, stamp, _ in sent] == [("h0", 1), ("h1", 1), ("h0", 2), ("h1", 2)]
    headers = fake.headers[0]
    assert headers["content-encoding"] == "snappy"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert writer.metrics.samples_sent._value.get() == 4


@pytest.mark.parametrize("status", [429, 500, 503])
def test_forwarder_retries_transient_errors(status):
    fake = ScriptedVictoriaMetrics([status, status])
    writer = writer_for(fake, registry_with(1))
    writer.start()

    writer.on_commit([batch([0, 0], [1, 2], [1.0, 2.0])])
    wait_for(lambda: fake.received, timeout_s=10, message="the retried request")
    writer.close(timeout_s=5)

    assert fake.attempts == 3
    assert len(samples_of(fake.received[0])) == 2
    assert writer.metrics.send_failures._value.get() == 2
    assert writer.metrics.samples_dropped.labels("rejected")._value.get() == 0


def test_forwarder_drops_rejected_request(caplog):
    fake = ScriptedVictoriaMetrics([400])
    writer = writer_for(fake, registry_with(1))
    writer.start()

    with caplog.at_level(logging.ERROR, logger="gosight.store.victoriametrics.forwarder"):
        writer.on_commit([batch([0], [1], [1.0])])
        wait_for(lambda: writer.metrics.samples_dropped.labels("rejected")._value.get() == 1, timeout_s=10,
                 message="the rejected sample counted")
        writer.on_commit([batch([0], [2], [2.0])])
        wait_for(lambda: fake.received, timeout_s=10, message="the next request")
    writer.close(timeout_s=5)

    assert fake.attempts == 2, "a 4xx answer must not be retried"
    assert [stamp for _, stamp, _ in samples_of(fake.received[0])] == [2]
    rejected = [record for record in caplog.records if record.getMessage() == "remote write request rejected, "
                "samples dropped"]
    assert len(rejected) == 1, caplog.text
    assert "HTTP 400: status 400" in rejected[0].fields["error"], "the log must carry the answer"


def test_full_queue_drops_oldest_while_unreachable():
    fake = ScriptedVictoriaMetrics([503] * 1000)
    writer = writer_for(fake, registry_with(1), capacity_samples=1000, max_samples_per_request=100)
    writer.start()

    for start in range(0, 1500, 100):
        writer.on_commit([batch([0] * 100, list(range(start, start + 100)), [1.0] * 100)])
    wait_for(lambda: fake.attempts >= 2, timeout_s=10, message="retries")
    depth = writer.queued_samples
    dropped = writer.metrics.samples_dropped.labels("queue_full")._value.get()
    fake.statuses.clear()
    wait_for(lambda: writer.queued_samples == 0, timeout_s=10, message="the queue to drain")
    writer.close(timeout_s=5)

    stamps = [stamp for request in fake.received for _, stamp, _ in samples_of(request)]
    assert depth <= 1000
    assert dropped == 500
    assert stamps == list(range(500, 1500)), "the newest samples are kept, in order"


def test_close_reports_unsent_samples():
    fake = ScriptedVictoriaMetrics([503] * 10_000)
    writer = writer_for(fake, registry_with(1))
    writer.start()

    writer.on_commit([batch([0, 0, 0], [1, 2, 3], [1.0, 2.0, 3.0])])
    left = writer.close(timeout_s=0.2)

    assert left == 3
    assert writer.metrics.samples_dropped.labels("shutdown")._value.get() == 3
    writer.on_commit([batch([0], [4], [4.0])])
    assert writer.queued_samples == 3, "a closed forwarder takes no more samples"


def test_unencodable_batch_is_dropped_and_counted():
    fake = ScriptedVictoriaMetrics()
    writer = writer_for(fake, registry_with(1))
    writer.start()

    writer.on_commit([batch([7], [1], [1.0])])  # series id 7 is unknown to the registry
    wait_for(lambda: writer.metrics.samples_dropped.labels("rejected")._value.get() == 1, timeout_s=10,
             message="the unencodable sample counted")
    writer.on_commit([batch([0], [2], [2.0])])
    left = writer.close(timeout_s=5)

    assert left == 0
    assert [stamp for _, stamp, _ in samples_of(fake.received[0])] == [2]
