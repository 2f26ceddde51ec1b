"""The store's in-memory read path: postings, head copy, chunk directory and cache, day chunks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from gosight.model import STALE_NAN, Matcher, SampleBatch, make_labels, stale_mask
from gosight.store import chunks, metrics_duckdb
from gosight.store.head import HeadRuns
from gosight.store.metrics_duckdb import BLOCK_MS, DAY_MS, MetricStore

MINUTE_MS = 60_000


def write_points(store: MetricStore, labels: dict[str, str], stamps, values) -> int:
    series_id = store.registry.get_or_create(make_labels(labels))
    stamps = np.asarray(stamps, dtype=np.int64)
    store.write([SampleBatch(np.full(stamps.size, series_id, dtype=np.uint32), stamps,
                             np.asarray(values, dtype=np.float64), None)])
    return series_id


def read_all(store: MetricStore, name: str, start=0, end=2**62):
    series = store.select_series([Matcher("__name__", "=", name)])
    return store.read_samples(series, start, end)


def bits(values: np.ndarray) -> list[int]:
    return values.view(np.uint64).tolist()


@pytest.fixture
def store(tmp_path: Path):
    opened = MetricStore(tmp_path / "m.duckdb")
    yield opened
    opened.close()


# Series selection.

@pytest.mark.parametrize("matchers, expected", [
    ([Matcher("__name__", "=", "up")], ["a", "b", "c"]),
    ([Matcher("job", "=", "api")], ["a", "b"]),
    ([Matcher("job", "!=", "api")], ["c"]),
    ([Matcher("zone", "=", "")], ["b", "c"]),
    ([Matcher("zone", "!=", "")], ["a"]),
    ([Matcher("job", "=~", "ap.")], ["a", "b"]),
    ([Matcher("job", "=~", "(?i)API|db")], ["a", "b", "c"]),
    ([Matcher("job", "!~", "api")], ["c"]),
    ([Matcher("zone", "=~", "eu|")], ["a", "b", "c"]),
    ([Matcher("zone", "=~", ".+")], ["a"]),
    ([Matcher("job", "=", "api"), Matcher("zone", "=", "")], ["b"]),
    ([Matcher("job", "=", "none")], []),
])
def test_postings_match_like_prometheus(store: MetricStore, matchers, expected):
    write_points(store, {"__name__": "up", "inst": "a", "job": "api", "zone": "eu"}, [1000], [1.0])
    write_points(store, {"__name__": "up", "inst": "b", "job": "api"}, [1000], [1.0])
    write_points(store, {"__name__": "up", "inst": "c", "job": "db"}, [1000], [1.0])

    found = [dict(labels)["inst"] for _, labels in store.select_series([Matcher("__name__", "=", "up"), *matchers])]

    assert sorted(found) == expected


def test_postings_see_series_added_after_regex_cached(store: MetricStore):
    write_points(store, {"__name__": "up", "job": "api"}, [1000], [1.0])
    first = store.select_series([Matcher("job", "=~", "a.*")])

    write_points(store, {"__name__": "up", "job": "admin"}, [1000], [1.0])
    second = store.select_series([Matcher("job", "=~", "a.*")])

    assert len(first) == 1
    assert sorted(dict(labels)["job"] for _, labels in second) == ["admin", "api"]


def test_postings_survive_reopen(tmp_path: Path):
    first = MetricStore(tmp_path / "m.duckdb")
    write_points(first, {"__name__": "up", "job": "api"}, [1000], [1.0])
    first.close()

    reopened = MetricStore(tmp_path / "m.duckdb")
    found = reopened.select_series([Matcher("job", "=", "api")])
    reopened.close()

    assert len(found) == 1


# The head copy.

def test_head_copy_matches_head_table(store: MetricStore):
    stamps = np.arange(0, 50) * 15_000
    write_points(store, {"__name__": "x", "h": "1"}, stamps, stamps / 1000.0)
    write_points(store, {"__name__": "x", "h": "2"}, stamps[::2], [STALE_NAN] * 25)
    write_points(store, {"__name__": "x", "h": "1"}, [30_000], [99.0])  # rewrite of one timestamp

    from_copy = read_all(store, "x", 10_000, 400_000)
    store._view = metrics_duckdb._ReadView(store._view.directory, None)
    from_table = read_all(store, "x", 10_000, 400_000)

    assert len(from_copy) == 2
    for copied, scanned in zip(from_copy, from_table):
        assert copied.timestamps_ms.tolist() == scanned.timestamps_ms.tolist()
        assert bits(copied.values) == bits(scanned.values)
    assert from_copy[0].values[from_copy[0].timestamps_ms.tolist().index(30_000)] == 99.0, "later write wins"
    assert stale_mask(from_copy[1].values).all()


def test_head_copy_dropped_then_restored(store: MetricStore, monkeypatch):
    monkeypatch.setattr(metrics_duckdb, "MAX_HEAD_COPY_SAMPLES", 100)
    stamps = np.arange(0, 150) * MINUTE_MS
    write_points(store, {"__name__": "x"}, stamps, np.arange(150.0))

    dropped = store._view.head is None
    while_dropped = read_all(store, "x")
    store.compact(now_ms=int(stamps[-1]) + 4 * BLOCK_MS)
    after = read_all(store, "x")

    assert dropped
    assert while_dropped[0].values.tolist() == list(range(150))
    assert store._view.head is not None
    assert after[0].values.tolist() == list(range(150))


def test_head_runs_merge_keeps_arrival_order():
    head = HeadRuns()
    for commit in range(40):
        head = head.appended(np.array([commit % 3, 1], dtype=np.uint32), np.array([commit, 5], dtype=np.int64),
                             np.array([float(commit), float(commit)]))

    read = head.read(np.array([1]), 0, 100)
    merged = head.consolidated().read(np.array([1]), 0, 100)

    assert len(head.runs) < 40
    assert read.values[read.timestamps_ms == 5].tolist() == [float(c) for c in range(40)]
    assert merged.values.tolist() == read.values.tolist()


# Chunks: day merging, cache, late data.

def test_compaction_merges_chunks_by_day(store: MetricStore):
    stamps = np.arange(0, 2 * DAY_MS + 6 * 3_600_000, MINUTE_MS)
    values = np.sin(np.arange(stamps.size)) * 100
    values[10] = STALE_NAN
    write_points(store, {"__name__": "load", "h": "a"}, stamps, values)
    write_points(store, {"__name__": "load", "h": "b"}, stamps[::5], values[::5])

    store.compact(now_ms=int(stamps[-1]))
    rows = store._con.execute(
        "SELECT series_id, min_ts // ? AS day, count(*) FROM chunks GROUP BY 1, 2 ORDER BY 1, 2", [DAY_MS]).fetchall()
    series = read_all(store, "load")

    assert [row[2] for row in rows] == [1, 1, 1, 1, 1, 1], rows
    assert series[0].timestamps_ms.tolist() == stamps.tolist()
    assert bits(series[0].values) == bits(values)
    assert series[1].timestamps_ms.tolist() == stamps[::5].tolist()


def test_late_data_after_day_merge_wins(store: MetricStore):
    stamps = np.arange(0, DAY_MS, 10 * MINUTE_MS)
    write_points(store, {"__name__": "x"}, stamps, np.ones(stamps.size))
    store.compact(now_ms=DAY_MS + 4 * BLOCK_MS)
    read_all(store, "x")  # fills the cache with the merged day

    write_points(store, {"__name__": "x"}, [stamps[3], stamps[3] + 1], [7.0, 8.0])
    from_head = read_all(store, "x")
    store.compact(now_ms=DAY_MS + 4 * BLOCK_MS)
    merged_again = read_all(store, "x")

    for series in (from_head[0], merged_again[0]):
        index = series.timestamps_ms.tolist().index(int(stamps[3]))
        assert series.values[index] == 7.0
        assert series.values[index + 1] == 8.0
        assert series.timestamps_ms.size == stamps.size + 1
    assert store.counts()["chunks"] == 1, "the late chunk is merged into the day"


def test_chunk_cache_serves_repeated_reads_within_its_bound(tmp_path: Path):
    store = MetricStore(tmp_path / "m.duckdb", chunk_cache_bytes=100_000)
    stamps = np.arange(0, 3 * DAY_MS, MINUTE_MS)
    for host in range(4):
        write_points(store, {"__name__": "x", "h": str(host)}, stamps, np.full(stamps.size, float(host)))
    store.compact(now_ms=int(stamps[-1]))

    read_all(store, "x", 0, DAY_MS // 2)
    misses = store._chunk_cache.misses
    again = read_all(store, "x", 0, DAY_MS // 2)
    read_all(store, "x")
    size = store._chunk_cache.size_bytes
    store.close()

    assert store._chunk_cache.misses >= misses
    assert [series.values[0] for series in again] == [0.0, 1.0, 2.0, 3.0]
    assert store._chunk_cache.hits >= 4
    assert size <= 100_000


def test_read_retries_when_merge_deletes_listed_chunk(store: MetricStore):
    stamps = np.arange(0, DAY_MS, 10 * MINUTE_MS)
    series_id = write_points(store, {"__name__": "x"}, stamps, np.arange(stamps.size, dtype=np.float64))
    store.compact(now_ms=DAY_MS - BLOCK_MS)  # two-hour chunks only: the day is not finished
    old_view = store._view
    store.compact(now_ms=DAY_MS + 4 * BLOCK_MS)  # merges the day, deleting those chunks

    with pytest.raises(metrics_duckdb._ChunkGone):
        store._read_parts(old_view, np.array([series_id]), 0, DAY_MS)
    assert read_all(store, "x")[0].values.tolist() == list(range(stamps.size))


def test_retention_updates_memory_structures(store: MetricStore):
    stamps = np.arange(0, 3 * DAY_MS, 30 * MINUTE_MS)
    write_points(store, {"__name__": "x"}, stamps, np.ones(stamps.size))
    store.compact(now_ms=int(stamps[-1]))

    store.apply_retention(retention_ms=DAY_MS, now_ms=3 * DAY_MS)
    series = read_all(store, "x")

    assert series[0].timestamps_ms.min() >= DAY_MS, "the first day is gone from chunks and the head copy"


def test_chunks_without_seq_are_numbered_on_open(tmp_path: Path):
    path = tmp_path / "old.duckdb"
    store = MetricStore(path)
    write_points(store, {"__name__": "x"}, np.arange(0, 6) * DAY_MS // 2, np.arange(6.0))
    store.compact(now_ms=4 * DAY_MS)
    store.close()
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE chunks DROP COLUMN seq")
    con.close()

    reopened = MetricStore(path)
    seqs = reopened._con.execute("SELECT seq FROM chunks ORDER BY seq").fetchall()
    values = read_all(reopened, "x")[0].values.tolist()
    reopened.close()

    assert len(seqs) >= 2 and len({row[0] for row in seqs}) == len(seqs)
    assert values == list(range(6))


def test_decode_many_matches_single_decoding():
    rng = np.random.default_rng(3)
    parts = []
    for size in (1, 2, 700, 5):
        stamps = np.sort(rng.integers(4_000_000_000_000, 9_000_000_000_000, size)).astype(np.int64)
        values = rng.normal(size=size)
        values[0] = STALE_NAN
        parts.append((stamps, values))
    blobs_ts = [chunks.encode_timestamps(stamps) for stamps, _ in parts]
    blobs_values = [chunks.encode_values(values) for _, values in parts]

    decoded = chunks.decode_many(np.array([stamps.size for stamps, _ in parts]), blobs_ts, blobs_values)

    for (stamps, values), (got_stamps, got_values) in zip(parts, decoded):
        assert got_stamps.tolist() == stamps.tolist()
        assert bits(got_values) == bits(values)
