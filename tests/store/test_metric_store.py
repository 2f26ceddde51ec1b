import math
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from gosight.model import STALE_NAN, Matcher, MetricMetadata, SampleBatch, make_labels, stale_mask
from gosight.store import chunks
from gosight.store.ledger import parse_batch_id
from gosight.store.metrics_duckdb import BLOCK_MS, MetricStore

HOUR_MS = 3_600_000


def write(store: MetricStore, series: dict[str, str], points: list[tuple[int, float]], batch_id=None):
    series_id = store.registry.get_or_create(make_labels(series))
    ids = np.full(len(points), series_id, dtype=np.uint32)
    stamps = np.array([t for t, _ in points], dtype=np.int64)
    values = np.array([v for _, v in points], dtype=np.float64)
    return store.write([SampleBatch(ids, stamps, values, batch_id)])


def read_one(store: MetricStore, metric: str, start=0, end=2**62):
    found = store.read_samples(store.select_series([Matcher("__name__", "=", metric)]), start, end)
    assert len(found) == 1, f"expected one series of {metric}, got {found}"
    return found[0]


def test_samples_round_trip_with_nan_and_stale(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    write(store, {"__name__": "up", "job": "a"}, [(1000, 1.0), (2000, math.nan), (3000, STALE_NAN), (4000, math.inf)])

    series = read_one(store, "up")

    assert series.timestamps_ms.tolist() == [1000, 2000, 3000, 4000]
    assert series.values[0] == 1.0
    assert math.isnan(series.values[1]) and not stale_mask(series.values[1:2])[0], "plain NaN must stay plain"
    assert stale_mask(series.values[2:3])[0], "the staleness marker must keep its bit pattern"
    assert series.values[3] == math.inf


def test_compaction_keeps_every_sample(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    points = [(t, float(t % 7)) for t in range(0, 6 * HOUR_MS, 15_000)]
    points[10] = (points[10][0], STALE_NAN)
    write(store, {"__name__": "load", "host": "a"}, points)
    before = read_one(store, "load")

    moved = store.compact(now_ms=6 * HOUR_MS)
    after = read_one(store, "load")
    counts = store.counts()

    assert moved > 0
    assert counts["chunks"] == 1, "the blocks of one day are merged into one chunk"
    assert counts["head_samples"] < len(points), counts
    assert after.timestamps_ms.tolist() == before.timestamps_ms.tolist()
    assert np.array_equal(after.values.view(np.uint64), before.values.view(np.uint64))


def test_late_samples_merge_with_chunks(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    write(store, {"__name__": "x"}, [(1000, 1.0), (3000, 3.0)])
    store.compact(now_ms=BLOCK_MS * 3)
    write(store, {"__name__": "x"}, [(2000, 2.0), (3000, 30.0)])
    store.compact(now_ms=BLOCK_MS * 3)

    series = read_one(store, "x")

    assert series.timestamps_ms.tolist() == [1000, 2000, 3000]
    assert series.values.tolist() == [1.0, 2.0, 30.0], "a later write of the same timestamp wins"


def test_range_read_is_inclusive(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    write(store, {"__name__": "x"}, [(t, float(t)) for t in range(0, 10_000, 1000)])

    series = read_one(store, "x", start=2000, end=5000)

    assert series.timestamps_ms.tolist() == [2000, 3000, 4000, 5000]


@pytest.mark.parametrize("matchers, expected", [
    ([Matcher("job", "=", "api")], {"api-1", "api-2"}),
    ([Matcher("job", "!=", "api")], {"db-1", "none"}),
    ([Matcher("instance", "=~", "api-.*")], {"api-1", "api-2"}),
    ([Matcher("instance", "!~", "api-.*|db-1")], {"none"}),
    ([Matcher("job", "=", "")], {"none"}),
    ([Matcher("job", "=~", "db|")], {"db-1", "none"}),
    ([Matcher("instance", "=~", "API-1")], set()),
])
def test_select_series_matchers(tmp_path: Path, matchers, expected):
    store = MetricStore(tmp_path / "m.duckdb")
    for instance, job in [("api-1", "api"), ("api-2", "api"), ("db-1", "db"), ("none", "")]:
        write(store, {"__name__": "up", "instance": instance, "job": job}, [(1000, 1.0)])

    found = store.select_series([Matcher("__name__", "=", "up"), *matchers])

    assert {dict(labels)["instance"] for _, labels in found} == expected


def test_select_series_filters_by_time(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    write(store, {"__name__": "a"}, [(1000, 1.0)])
    write(store, {"__name__": "b"}, [(9000, 1.0)])

    found = store.select_series([], start_ms=5000, end_ms=10_000)

    assert [dict(labels)["__name__"] for _, labels in found] == ["b"]


def test_duplicate_batch_stored_once(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")

    first = write(store, {"__name__": "x"}, [(1000, 1.0)], batch_id="agent.e1:7")
    second = write(store, {"__name__": "x"}, [(1000, 1.0)], batch_id="agent.e1:7")
    other = write(store, {"__name__": "x"}, [(2000, 2.0)], batch_id="agent.e1:8")

    assert len(first) == 1
    assert second == [], "a retried batch must be skipped"
    assert len(other) == 1
    assert read_one(store, "x").timestamps_ms.tolist() == [1000, 2000]


def test_ledger_survives_reopen(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    write(store, {"__name__": "x", "a": "1"}, [(1000, 1.0)], batch_id="agent.e1:1")
    store.write([], [MetricMetadata("x", "gauge", "By", "A test gauge.")])
    store.close()

    reopened = MetricStore(tmp_path / "m.duckdb")
    retried = write(reopened, {"__name__": "x", "a": "1"}, [(1000, 1.0)], batch_id="agent.e1:1")

    assert retried == []
    assert reopened.is_stored("agent.e1:1")
    assert not reopened.is_stored("agent.e1:2")
    assert reopened.metadata("x") == [MetricMetadata("x", "gauge", "By", "A test gauge.")]
    assert reopened.label_names() == ["__name__", "a"]
    assert reopened.registry.span(0) == (1000, 1000)


def test_failed_write_keeps_series_pending(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    series_id = store.registry.get_or_create(make_labels({"__name__": "x"}))
    bad = SampleBatch(np.array([series_id], dtype=np.uint32), np.array([1000], dtype=np.int64),
                      np.array([1.0]), None)
    # Dropping the table makes the next write fail inside its transaction.
    store._con.execute("DROP TABLE samples")

    with pytest.raises(Exception):
        store.write([bad])
    store._con.execute("CREATE TABLE samples (series_id UINTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE)")
    stored = store.write([bad])

    assert len(stored) == 1
    assert read_one(store, "x").values.tolist() == [1.0]


def test_retention_deletes_old_samples(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    write(store, {"__name__": "x"}, [(1000, 1.0), (10 * HOUR_MS, 2.0)])
    store.compact(now_ms=5 * HOUR_MS)

    store.apply_retention(retention_ms=HOUR_MS, now_ms=10 * HOUR_MS)

    assert read_one(store, "x").timestamps_ms.tolist() == [10 * HOUR_MS]


def test_chunk_encoding_round_trips_bits():
    timestamps = np.array([0, 15_000, 30_000, 45_001, 10**12], dtype=np.int64)
    values = np.array([0.0, -0.0, 1e308, STALE_NAN, math.nan])

    decoded_ts = chunks.decode_timestamps(chunks.encode_timestamps(timestamps))
    decoded_values = chunks.decode_values(chunks.encode_values(values))

    assert decoded_ts.tolist() == timestamps.tolist()
    assert decoded_values.view(np.uint64).tolist() == values.view(np.uint64).tolist()


@pytest.mark.parametrize("text, expected", [
    ("abc.1234abcd:0", ("abc.1234abcd", 0)),
    ("a:18", ("a", 18)),
])
def test_parse_batch_id(text, expected):
    assert parse_batch_id(text) == expected


@pytest.mark.parametrize("text", ["", "nocolon", "a:-1", "a:b", "a b:1", "x" * 200 + ":1"])
def test_parse_batch_id_rejects(text):
    with pytest.raises(ValueError, match="invalid batch id"):
        parse_batch_id(text)


def test_retention_forgets_idle_batch_streams(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    now = int(time.time() * 1000)
    write(store, {"__name__": "x"}, [(now, 1.0)], batch_id="agent.old:3")

    store.apply_retention(retention_ms=HOUR_MS, now_ms=now + 2 * HOUR_MS)
    forgotten = not store.is_stored("agent.old:3")
    store.close()
    reopened = MetricStore(tmp_path / "m.duckdb")
    rows = reopened._con.execute("SELECT count(*) FROM batch_streams").fetchone()[0]
    reopened.close()

    assert forgotten
    assert rows == 0


def test_retention_keeps_active_batch_streams(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    now = int(time.time() * 1000)
    write(store, {"__name__": "x"}, [(now, 1.0)], batch_id="agent.new:3")

    store.apply_retention(retention_ms=HOUR_MS, now_ms=now + HOUR_MS // 2)

    assert store.is_stored("agent.new:3")
    store.close()


def test_ledger_without_last_use_column_is_upgraded(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb")
    write(store, {"__name__": "x"}, [(1000, 1.0)], batch_id="agent.e1:1")
    store.close()
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    con.execute("ALTER TABLE batch_streams DROP COLUMN last_ms")
    con.close()

    reopened = MetricStore(tmp_path / "m.duckdb")
    last_ms = reopened._con.execute("SELECT last_ms FROM batch_streams").fetchone()[0]
    stored = reopened.is_stored("agent.e1:1")
    reopened.close()

    assert stored
    assert abs(last_ms - time.time() * 1000) < 60_000
