"""The OTLP/gRPC exporter: sends spooled batches in order, one at a time.

A batch leaves the spool only when the server acknowledged it. Retryable failures
(the server unreachable, busy or restarting) are retried with exponential backoff
and full jitter; a batch the server rejects as invalid is dropped and logged, since
sending it again cannot succeed and would block every later batch.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from gosight.agent.spool import Spool
from gosight.logconfig import Throttle

log = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
BATCH_ID_HEADER = "gosight-batch-id"

_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DATA_LOSS, grpc.StatusCode.OUT_OF_RANGE,
}


class Backoff:
    """Exponential backoff with full jitter: a random wait up to min(max, initial * 2^failures)."""

    def __init__(self, initial_s: float, max_s: float, rng: Callable[[], float] = random.random):
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * (2 ** min(self.failures, 32)))
        self.failures += 1
        return max(self.initial_s / 2, ceiling * self._rng())

    def reset(self) -> None:
        self.failures = 0


class Exporter:
    def __init__(self, channel: grpc.Channel, spool: Spool, *, timeout_s: float, backoff: Backoff,
                 metadata: tuple[tuple[str, str], ...] = ()):
        self.spool = spool
        self.timeout_s = timeout_s
        self.backoff = backoff
        self.metadata = metadata
        self.sent_batches = 0
        self.rejected_batches = 0
        self.connected = threading.Event()
        self._export = channel.unary_unary(EXPORT_METHOD, request_serializer=None,
                                           response_deserializer=ExportMetricsServiceResponse.FromString)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._throttle = Throttle(60.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gosight-exporter", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout_s: float) -> None:
        """Stop after trying to send what is spooled for up to `flush_timeout_s`; the rest stays on disk."""
        deadline = threading.Event()
        timer = threading.Timer(flush_timeout_s, deadline.set)
        timer.start()
        while self.spool.batches and not deadline.is_set() and self.connected.is_set():
            deadline.wait(0.05)
        timer.cancel()
        self._stop.set()
        self.spool.wake()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1)
        if self.spool.batches:
            log.info("unsent batches kept in the spool for the next start", extra={"fields": {
                "batches": self.spool.batches}})

    def _run(self) -> None:
        while not self._stop.is_set():
            entry = self.spool.oldest(timeout_s=1.0)
            if entry is None:
                continue
            payload = self.spool.read(entry)
            if payload is None:
                continue
            batch_id = self.spool.batch_id(entry)
            outcome = self._send(payload, batch_id)
            if outcome in ("sent", "rejected"):
                self.spool.remove(entry)
                continue
            self._stop.wait(self.backoff.next_delay())

    def _send(self, payload: bytes, batch_id: str) -> str:
        try:
            response = self._export(payload, timeout=self.timeout_s, compression=grpc.Compression.Gzip,
                                    metadata=self.metadata + ((BATCH_ID_HEADER, batch_id),))
        except grpc.RpcError as error:
            code = error.code()
            self.connected.clear()
            if code in _RETRYABLE:
                suppressed = self._throttle.allow(("retry", code))
                if suppressed is not None:
                    log.warning("export failed; will retry", extra={"fields": {
                        "code": code.name, "error": error.details(), "batch_id": batch_id,
                        "spooled": self.spool.batches, "suppressed": suppressed}})
                return "retry"
            self.rejected_batches += 1
            log.error("server rejected a batch; dropping it", extra={"fields": {
                "code": code.name, "error": error.details(), "batch_id": batch_id}})
            return "rejected"

        if not self.connected.is_set():
            log.info("export succeeded", extra={"fields": {"batch_id": batch_id, "spooled": self.spool.batches - 1}})
        self.connected.set()
        self.backoff.reset()
        self.sent_batches += 1
        partial = response.partial_success
        if partial.rejected_data_points:
            suppressed = self._throttle.allow("partial")
            if suppressed is not None:
                log.warning("server rejected some points", extra={"fields": {
                    "rejected": partial.rejected_data_points, "reason": partial.error_message,
                    "suppressed": suppressed}})
        return "sent"
