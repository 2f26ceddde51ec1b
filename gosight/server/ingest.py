"""The ingest queue and the single writer thread that owns the metric store.

Receivers decode requests on their own threads, then `submit` the batch and wait
for the returned future: it completes once the batch is committed, so an
acknowledged batch survives a crash. The queue is bounded in samples; when it is
full `submit` raises QueueFull at once and the receiver tells the sender to retry.
The writer takes everything queued, up to a limit, and commits it in one
transaction, so many small requests share one commit.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gosight.logconfig import Throttle
from gosight.model import MetricMetadata, SampleBatch
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.metrics_duckdb import MetricStore

log = logging.getLogger(__name__)

MAX_COMMIT_SAMPLES = 500_000
COMPACT_EVERY_S = 600.0
RETENTION_EVERY_S = 3600.0


class QueueFull(Exception):
    """The ingest queue cannot take the batch now; the sender should retry later."""


class IngestClosed(Exception):
    """The server is shutting down and takes no more data."""


@dataclass
class _Item:
    batch: SampleBatch
    metadata: list[MetricMetadata]
    future: concurrent.futures.Future


class IngestPipeline:
    def __init__(self, store: MetricStore, metrics: ServerMetrics, *, capacity_samples: int,
                 retention_ms: int, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.metrics = metrics
        self.capacity_samples = capacity_samples
        self.retention_ms = retention_ms
        self._clock = clock
        self._items: deque[_Item] = deque()
        self._queued_samples = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._throttle = Throttle(60.0)
        self._listeners: list[Callable[[list[SampleBatch]], None]] = []
        self.drained = False
        # Set while the newest write failed, as on a full disk; the health check reports it.
        self.write_failing = False
        metrics.queue_capacity.set(capacity_samples)

    def add_listener(self, listener: Callable[[list[SampleBatch]], None]) -> None:
        """Call `listener` on the writer thread with every committed list of batches."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gosight-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: SampleBatch, metadata: Iterable[MetricMetadata] = ()) -> concurrent.futures.Future:
        """Queue a batch; the future completes with the samples stored once committed."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                raise IngestClosed("the server is shutting down")
            if self._queued_samples and self._queued_samples + batch.size > self.capacity_samples:
                self.metrics.queue_rejections.inc()
                raise QueueFull(
                    f"the ingest queue is full ({self._queued_samples} of {self.capacity_samples} samples)"
                )
            self._items.append(_Item(batch, list(metadata), future))
            self._queued_samples += batch.size
            self.metrics.queue_samples.set(self._queued_samples)
            self._cond.notify()
        return future

    @property
    def queued_samples(self) -> int:
        return self._queued_samples

    def close(self, timeout_s: float = 30.0) -> bool:
        """Stop taking batches, write what is queued and close the store; return True if drained in time."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        drained = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            drained = not self._thread.is_alive()
        self.drained = drained
        if drained:
            self.store.close()
        else:
            log.error("ingest queue not drained before the shutdown timeout",
                      extra={"fields": {"queued_samples": self._queued_samples}})
        return drained

    def _run(self) -> None:
        last_compaction = self._clock()
        last_retention = -RETENTION_EVERY_S
        while True:
            items = self._take(timeout_s=1.0)
            if items:
                self._write(items)
            now = self._clock()
            if now - last_retention >= RETENTION_EVERY_S:
                last_retention = now
                self._maintain("retention", lambda: self.store.apply_retention(self.retention_ms))
            if now - last_compaction >= COMPACT_EVERY_S:
                last_compaction = now
                self._maintain("compaction", self.store.compact)
            with self._cond:
                if self._closing and not self._items:
                    return

    def _take(self, timeout_s: float) -> list[_Item]:
        with self._cond:
            if not self._items and not self._closing:
                self._cond.wait(timeout_s)
            taken: list[_Item] = []
            samples = 0
            while self._items and (not taken or samples + self._items[0].batch.size <= MAX_COMMIT_SAMPLES):
                item = self._items.popleft()
                taken.append(item)
                samples += item.batch.size
            self._queued_samples -= samples
            self.metrics.queue_samples.set(self._queued_samples)
            return taken

    def _write(self, items: list[_Item]) -> None:
        batches = [item.batch for item in items]
        metadata = [entry for item in items for entry in item.metadata]
        started = time.perf_counter()
        try:
            stored = self.store.write(batches, metadata)
        except Exception as error:  # noqa: BLE001 - every failure must reach the waiting senders
            self.write_failing = True
            self.metrics.write_errors.inc()
            suppressed = self._throttle.allow("write")
            if suppressed is not None:
                log.error("store write failed", extra={"fields": {
                    "error": str(error), "batches": len(items), "suppressed": suppressed}})
            for item in items:
                item.future.set_exception(error)
            return
        self.write_failing = False
        elapsed = time.perf_counter() - started
        self.metrics.write_duration.observe(elapsed)
        self.metrics.samples_stored.inc(sum(batch.size for batch in stored))
        if len(stored) < len(batches):
            self.metrics.duplicate_batches.inc(len(batches) - len(stored))
        for item in items:
            item.future.set_result(item.batch.size)
        if not stored:
            return
        for listener in self._listeners:
            try:
                listener(stored)
            except Exception:  # noqa: BLE001 - a listener must not stop the writer
                log.exception("ingest listener failed")

    def _maintain(self, task: str, action: Callable[[], object]) -> None:
        started = time.perf_counter()
        try:
            result = action()
        except Exception as error:  # noqa: BLE001 - maintenance retries on its next turn
            suppressed = self._throttle.allow(task)
            if suppressed is not None:
                log.error("store maintenance failed", extra={"fields": {
                    "task": task, "error": str(error), "suppressed": suppressed}})
            return
        log.debug("store maintenance done", extra={"fields": {
            "task": task, "result": result, "seconds": round(time.perf_counter() - started, 3)}})
