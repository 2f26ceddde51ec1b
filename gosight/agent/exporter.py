"""The OTLP/gRPC exporter: sends spooled batches in order, one at a time.

A batch leaves the spool only when the server acknowledged it. Retryable failures
(the server unreachable, busy or restarting) are retried with exponential backoff
and full jitter; a batch the server rejects as invalid is dropped and logged, since
sending it again cannot succeed and would block every later batch. A rejected token
or certificate is retried too and keeps the batch: the fix is on the operator's side,
and the data should survive until it is made.

Runs as a coroutine on the agent's transport event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
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
_AUTH_REJECTIONS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


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
    def __init__(self, channel: grpc.aio.Channel, spool: Spool, *, timeout_s: float, backoff: Backoff,
                 metadata: tuple[tuple[str, str], ...] = (),
                 hint: Callable[[str], str | None] = lambda details: None):
        """`hint` turns a connection error's details into advice for the log, or None."""
        self.spool = spool
        self.timeout_s = timeout_s
        self.backoff = backoff
        self.metadata = metadata
        self.hint = hint
        self.sent_batches = 0
        self.rejected_batches = 0
        self.connected = False
        self._export = channel.unary_unary(EXPORT_METHOD, request_serializer=None,
                                           response_deserializer=ExportMetricsServiceResponse.FromString)
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._throttle = Throttle(60.0)

    def notify(self) -> None:
        """Wake the exporter because a batch was spooled; call on the event loop."""
        self._wakeup.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            entry = self.spool.oldest()
            if entry is None:
                self._wakeup.clear()
                if self.spool.oldest() is None:
                    await _first_of(self._wakeup, self._stopping)
                continue
            payload = self.spool.read(entry)
            if payload is None:
                continue
            outcome = await self._send(payload, self.spool.batch_id(entry))
            if outcome in ("sent", "rejected"):
                self.spool.remove(entry)
                continue
            # The server is away, so what waits in the spool may wait long: make it durable.
            await asyncio.to_thread(self.spool.sync)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.backoff.next_delay())

    async def flush(self, timeout_s: float) -> None:
        """Give spooled batches up to `timeout_s` to go out while the server answers, then stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.spool.batches and self.connected and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self._stopping.set()

    async def _send(self, payload: bytes, batch_id: str) -> str:
        try:
            response = await self._export(payload, timeout=self.timeout_s, compression=grpc.Compression.Gzip,
                                          metadata=self.metadata + ((BATCH_ID_HEADER, batch_id),))
        except grpc.aio.AioRpcError as error:
            code = error.code()
            self.connected = False
            if code in _AUTH_REJECTIONS:
                suppressed = self._throttle.allow(("rejected", code))
                if suppressed is not None:
                    log.error("server rejected this agent's credentials; keeping the batch and retrying",
                              extra={"fields": {"code": code.name, "error": error.details(), "batch_id": batch_id,
                                                "spooled": self.spool.batches, "suppressed": suppressed}})
                return "retry"
            if code in _RETRYABLE:
                suppressed = self._throttle.allow(("retry", code))
                if suppressed is not None:
                    fields = {"code": code.name, "error": error.details(), "batch_id": batch_id,
                              "spooled": self.spool.batches, "suppressed": suppressed}
                    hint = self.hint(error.details() or "")
                    if hint:
                        fields["hint"] = hint
                    # A hint means a setting is most likely wrong, which no retry will fix.
                    log.log(logging.ERROR if hint else logging.WARNING, "export failed; will retry",
                            extra={"fields": fields})
                return "retry"
            self.rejected_batches += 1
            log.error("server rejected a batch; dropping it", extra={"fields": {
                "code": code.name, "error": error.details(), "batch_id": batch_id}})
            return "rejected"

        if not self.connected:
            log.info("export succeeded", extra={"fields": {"batch_id": batch_id, "spooled": self.spool.batches - 1}})
        self.connected = True
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


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
