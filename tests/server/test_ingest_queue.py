"""The ingest queue: bounded in samples, answered only after commit, drained on close."""

from pathlib import Path

import numpy as np
import pytest

from gosight.model import SampleBatch, make_labels
from gosight.server.ingest import IngestClosed, IngestPipeline, QueueFull
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.metrics_duckdb import MetricStore


def batch(store: MetricStore, size: int, first_ts: int, batch_id: str | None = None) -> SampleBatch:
    series_id = store.registry.get_or_create(make_labels({"__name__": "queued", "size": str(size)}))
    return SampleBatch(np.full(size, series_id, dtype=np.uint32),
                       np.arange(first_ts, first_ts + size, dtype=np.int64), np.ones(size), batch_id)


def metric_value(metrics: ServerMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_full_queue_rejects_then_drains(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    metrics = ServerMetrics()
    # The writer is not started yet, so nothing leaves the queue.
    pipeline = IngestPipeline(store, metrics, capacity_samples=1000, retention_ms=10**12)
    accepted = [pipeline.submit(batch(store, 400, 0)), pipeline.submit(batch(store, 400, 1000))]

    with pytest.raises(QueueFull, match="800 of 1000 samples"):
        pipeline.submit(batch(store, 400, 2000))
    queued = metric_value(metrics, "gosight_ingest_queue_samples")
    rejected = metric_value(metrics, "gosight_ingest_queue_full_total")
    pipeline.start()
    results = [future.result(timeout=30) for future in accepted]
    drained = pipeline.close(timeout_s=30)

    assert queued == 800
    assert rejected == 1
    assert results == [400, 400], "a future completes with its batch's size once committed"
    assert drained is True
    assert metric_value(metrics, "gosight_store_samples_written_total") == 800
    assert metric_value(metrics, "gosight_ingest_queue_samples") == 0


def test_first_batch_larger_than_capacity_is_taken(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    pipeline = IngestPipeline(store, ServerMetrics(), capacity_samples=1000, retention_ms=10**12)
    pipeline.start()

    stored = pipeline.submit(batch(store, 5000, 0)).result(timeout=30)
    pipeline.close(timeout_s=30)

    assert stored == 5000, "an empty queue takes any one batch, so a big sender is never locked out"


def test_closed_pipeline_rejects(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    pipeline = IngestPipeline(store, ServerMetrics(), capacity_samples=1000, retention_ms=10**12)
    pipeline.start()
    pipeline.close(timeout_s=30)

    with pytest.raises(IngestClosed):
        pipeline.submit(batch(store, 10, 0))


def test_duplicate_batches_counted_and_skipped(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    metrics = ServerMetrics()
    pipeline = IngestPipeline(store, metrics, capacity_samples=10_000, retention_ms=10**12)
    committed: list[list[SampleBatch]] = []
    pipeline.add_listener(committed.append)
    first = pipeline.submit(batch(store, 10, 0, "agent.e:1"))
    retry = pipeline.submit(batch(store, 10, 0, "agent.e:1"))
    pipeline.start()

    first.result(timeout=30)
    retry.result(timeout=30)
    pipeline.close(timeout_s=30)

    assert metric_value(metrics, "gosight_ingest_duplicate_batches_total") == 1
    assert metric_value(metrics, "gosight_store_samples_written_total") == 10
    assert [b.batch_id for group in committed for b in group] == ["agent.e:1"], "listeners see a batch once"
