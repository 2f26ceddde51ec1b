"""Forward every committed sample to VictoriaMetrics by Prometheus remote write.

The ingest writer calls `on_commit` with each committed list of batches. It only
appends them to an in-memory queue, bounded in samples, so a slow or absent
VictoriaMetrics never delays ingest. One sender thread takes the oldest samples,
encodes them as one remote write request and posts it to `<url>/api/v1/write`,
retrying with exponential backoff and jitter until VictoriaMetrics accepts it, so
requests arrive in commit order. When the queue is full the oldest samples are
dropped and counted.

Answers: 2xx is success; 429, 5xx and connection errors are retried; any other
4xx means VictoriaMetrics will never accept the request, which is dropped with the
reason logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np
from prometheus_client import Counter, Gauge

from gosight.logconfig import Throttle
from gosight.model import SampleBatch
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.series import SeriesRegistry
from gosight.store.victoriametrics.encode import LabelCache, compress, encode_write_request

log = logging.getLogger(__name__)

# About 0.5 MB of snappy-compressed protobuf for agent-shaped data, well under
# VictoriaMetrics' default request size limit (-maxInsertRequestSize, 32 MB).
MAX_SAMPLES_PER_REQUEST = 50_000
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 5.0
REQUEST_TIMEOUT_S = 10.0
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": "gosight-remote-write",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


class RemoteWriteMetrics:
    """The forwarder's metrics, registered on the server's /metrics registry."""

    def __init__(self, metrics: ServerMetrics):
        registry = metrics.registry
        self.queue_samples = Gauge(
            "gosight_remote_write_queue_samples", "Samples waiting to be sent to VictoriaMetrics.",
            registry=registry)
        self.queue_capacity = Gauge(
            "gosight_remote_write_queue_capacity_samples", "Samples the remote write queue can hold.",
            registry=registry)
        self.samples_sent = Counter(
            "gosight_remote_write_samples_sent", "Samples accepted by VictoriaMetrics.", registry=registry)
        self.samples_dropped = Counter(
            "gosight_remote_write_samples_dropped",
            "Samples never sent: queue_full when the queue overflowed, rejected when VictoriaMetrics "
            "answered 4xx or the request could not be encoded, shutdown when the server stopped first.",
            ["reason"], registry=registry)
        self.send_failures = Counter(
            "gosight_remote_write_failures", "Remote write requests that failed, retried or not.",
            registry=registry)
        self.last_success = Gauge(
            "gosight_remote_write_last_success_timestamp_seconds",
            "Unix time of the last request VictoriaMetrics accepted; 0 before the first.", registry=registry)


@dataclass
class _Request:
    payload: bytes
    samples: int
    batches: list[SampleBatch]
    # Set by the writer thread when the queue overflowed while this request was being retried.
    dropped: bool = False


class SendError(Exception):
    """One request failed; `retry` is whether sending it again can succeed."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


class RemoteWriter:
    """The queue and sender thread of remote write to one VictoriaMetrics.

    `on_commit` may be called from any thread. `close` stops taking samples, sends
    for at most its timeout, and reports what is left; it is idempotent.
    """

    def __init__(self, base_url: str, registry: SeriesRegistry, metrics: ServerMetrics, *,
                 capacity_samples: int, max_samples_per_request: int = MAX_SAMPLES_PER_REQUEST,
                 backoff_initial_s: float = BACKOFF_INITIAL_S, backoff_max_s: float = BACKOFF_MAX_S,
                 timeout_s: float = REQUEST_TIMEOUT_S, transport: httpx.BaseTransport | None = None):
        self.url = base_url.rstrip("/") + "/api/v1/write"
        self.capacity_samples = capacity_samples
        self.max_samples_per_request = max(1, min(max_samples_per_request, capacity_samples))
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.metrics = RemoteWriteMetrics(metrics)
        self.metrics.queue_capacity.set(capacity_samples)
        self._labels = LabelCache(registry.labels)
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._batches: deque[SampleBatch] = deque()
        self._queued = 0  # samples in _batches
        self._in_flight: _Request | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._give_up_at = float("inf")  # time.monotonic() deadline once closing
        self._stop_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._throttle = Throttle(60.0)
        self._listeners: list[Callable[[list[SampleBatch]], None]] = []

    def add_listener(self, listener: Callable[[list[SampleBatch]], None]) -> None:
        """Call `listener` on the sender thread with the batches of every request VictoriaMetrics accepted."""
        self._listeners.append(listener)

    # Writer side.

    def on_commit(self, batches: Sequence[SampleBatch]) -> None:
        """Queue committed batches; drop the oldest queued samples when the queue is full."""
        with self._cond:
            if self._closing:
                return
            for batch in batches:
                if batch.size:
                    self._batches.append(batch)
                    self._queued += batch.size
            dropped = self._trim()
            self._update_depth()
            self._cond.notify()
        if dropped:
            self.metrics.samples_dropped.labels("queue_full").inc(dropped)
            suppressed = self._throttle.allow("queue_full")
            if suppressed is not None:
                log.warning("remote write queue full, oldest samples dropped", extra={"fields": {
                    "url": self.url, "dropped": dropped, "capacity_samples": self.capacity_samples,
                    "suppressed": suppressed}})

    def _trim(self) -> int:
        """Drop the oldest samples until the queue fits its capacity; return how many. Needs the lock."""
        dropped = 0
        in_flight = self._in_flight.samples if self._in_flight and not self._in_flight.dropped else 0
        excess = self._queued + in_flight - self.capacity_samples
        if excess > 0 and in_flight:
            # The request being retried contains the oldest samples, so it goes first.
            self._in_flight.dropped = True
            dropped += in_flight
            excess -= in_flight
        while excess > 0 and self._batches:
            oldest = self._batches[0]
            if oldest.size <= excess:
                self._batches.popleft()
                cut = oldest.size
            else:
                # Keep the batch's newest part: samples within a batch follow commit order.
                cut = excess
                self._batches[0] = SampleBatch(oldest.series_ids[cut:], oldest.timestamps_ms[cut:],
                                               oldest.values[cut:], oldest.batch_id)
            self._queued -= cut
            dropped += cut
            excess -= cut
        return dropped

    def _update_depth(self) -> None:
        in_flight = self._in_flight.samples if self._in_flight and not self._in_flight.dropped else 0
        self.metrics.queue_samples.set(self._queued + in_flight)

    @property
    def queued_samples(self) -> int:
        """Samples not yet accepted by VictoriaMetrics, the request in flight included."""
        with self._cond:
            in_flight = self._in_flight.samples if self._in_flight and not self._in_flight.dropped else 0
            return self._queued + in_flight

    # Lifecycle.

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gosight-remote-write", daemon=True)
        self._thread.start()
        log.info("remote write started", extra={"fields": {
            "url": self.url, "capacity_samples": self.capacity_samples}})

    def close(self, timeout_s: float = 5.0) -> int:
        """Stop taking samples, keep sending for up to `timeout_s`, and return the samples left unsent."""
        with self._cond:
            already = self._closing
            self._closing = True
            self._give_up_at = time.monotonic() + timeout_s
            self._cond.notify_all()
        if already:
            return self.queued_samples
        stuck = False
        if self._thread is not None:
            self._thread.join(timeout_s + 1.0)
            # A thread still alive is inside one slow request. It stops after that request,
            # and the samples of that request are reported as unsent.
            self._stop_now.set()
            stuck = self._thread.is_alive()
        left = self.queued_samples
        if not stuck:
            self._client.close()
        if left:
            self.metrics.samples_dropped.labels("shutdown").inc(left)
            log.warning("remote write stopped with samples unsent", extra={"fields": {
                "url": self.url, "samples": left}})
        else:
            log.info("remote write stopped, queue drained", extra={"fields": {"url": self.url}})
        return left

    # Sender thread.

    def _run(self) -> None:
        attempt = 0
        while True:
            request = self._next_request()
            if request is None:
                return
            try:
                self._send(request)
            except SendError as error:
                self.metrics.send_failures.inc()
                if not error.retry:
                    self._finish(request, sent=False)
                    self.metrics.samples_dropped.labels("rejected").inc(request.samples)
                    log.error("remote write request rejected, samples dropped", extra={"fields": {
                        "url": self.url, "samples": request.samples, "error": str(error)}})
                    attempt = 0
                    continue
                attempt += 1
                suppressed = self._throttle.allow("send")
                if suppressed is not None:
                    log.warning("remote write failed, retrying", extra={"fields": {
                        "url": self.url, "error": str(error), "attempt": attempt,
                        "queued_samples": self.queued_samples, "suppressed": suppressed}})
                self._wait(self._backoff(attempt))
                continue
            if attempt:
                log.info("remote write recovered", extra={"fields": {"url": self.url, "failed_attempts": attempt}})
                self._throttle.reset("send")
            attempt = 0
            self._finish(request, sent=True)

    def _next_request(self) -> _Request | None:
        """Return the request to send: the one being retried, or a new one from the oldest samples.

        Return None when the sender should stop: closing and drained, or past the close deadline.
        """
        while True:
            with self._cond:
                while True:
                    if self._closing and (time.monotonic() >= self._give_up_at or self._stop_now.is_set()):
                        return None
                    if self._in_flight is not None and not self._in_flight.dropped:
                        return self._in_flight
                    self._in_flight = None
                    if self._batches:
                        break
                    if self._closing:
                        return None
                    self._cond.wait(1.0)
                taken = self._take_batches()
            try:
                request = self._encode(taken)
            except Exception:  # noqa: BLE001 - one bad batch must not stop forwarding
                count = sum(batch.size for batch in taken)
                with self._cond:
                    self._queued -= count
                    self._update_depth()
                self.metrics.samples_dropped.labels("rejected").inc(count)
                log.exception("encoding a remote write request failed, samples dropped",
                              extra={"fields": {"url": self.url, "samples": count}})
                continue
            with self._cond:
                self._in_flight = request
                self._queued -= request.samples
                self._update_depth()
            return request

    def _take_batches(self) -> list[SampleBatch]:
        """Take up to max_samples_per_request of the oldest samples, splitting a batch if needed. Needs the lock."""
        taken: list[SampleBatch] = []
        room = self.max_samples_per_request
        while self._batches and room > 0:
            oldest = self._batches[0]
            if oldest.size <= room:
                taken.append(self._batches.popleft())
                room -= oldest.size
                continue
            taken.append(SampleBatch(oldest.series_ids[:room], oldest.timestamps_ms[:room], oldest.values[:room],
                                     oldest.batch_id))
            self._batches[0] = SampleBatch(oldest.series_ids[room:], oldest.timestamps_ms[room:],
                                           oldest.values[room:], oldest.batch_id)
            room = 0
        # The taken samples leave _queued only once the request contains them, so the depth never dips.
        return taken

    def _encode(self, batches: list[SampleBatch]) -> _Request:
        series_ids = np.concatenate([batch.series_ids for batch in batches])
        timestamps = np.concatenate([batch.timestamps_ms for batch in batches])
        values = np.concatenate([batch.values for batch in batches])
        payload = compress(encode_write_request(series_ids, timestamps, values, self._labels))
        return _Request(payload, int(series_ids.size), batches)

    def _send(self, request: _Request) -> None:
        try:
            response = self._client.post(self.url, content=request.payload, headers=HEADERS)
        except httpx.HTTPError as error:
            raise SendError(f"{type(error).__name__}: {error}", retry=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"HTTP {status}: {response.text[:300].strip()}"
        raise SendError(detail, retry=status == 429 or status >= 500 or status < 400)

    def _finish(self, request: _Request, sent: bool) -> None:
        with self._cond:
            if self._in_flight is request:
                self._in_flight = None
            self._update_depth()
        if sent and not request.dropped:
            self.metrics.samples_sent.inc(request.samples)
            self.metrics.last_success.set(time.time())
            for listener in self._listeners:
                try:
                    listener(request.batches)
                except Exception:  # noqa: BLE001 - a listener must not stop forwarding
                    log.exception("remote write listener failed")

    def _backoff(self, attempt: int) -> float:
        # Jitter keeps many servers from retrying in step after an outage.
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _wait(self, delay_s: float) -> None:
        with self._cond:
            deadline = min(time.monotonic() + delay_s, self._give_up_at)
            while not self._stop_now.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)
