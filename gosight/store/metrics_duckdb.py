"""The embedded metric store on DuckDB.

Layout:
- `series`: one row per label set with a dense integer id.
- `samples`: the head, recent samples appended in arrival order as columns.
- `chunks`: older samples, one compressed row per series and two-hour block, so a
  query over days reads a few rows per series instead of scanning every sample.
- `metric_metadata`: type, unit and help per metric name.
- `batch_streams`: the batch ledger, so a retried batch is stored once.

Contract: one thread (the ingest writer) calls `write`, `compact`, `apply_retention`
and `close`; any thread may call the read methods, each of which uses its own cursor
and sees the last committed state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import numpy as np

from gosight.model import STALE_NAN_BITS, Labels, Matcher, MetricMetadata, SampleBatch, make_labels, stale_mask
from gosight.store import chunks
from gosight.store.ledger import BatchLedger, StreamState
from gosight.store.series import SeriesRegistry

log = logging.getLogger(__name__)

BLOCK_MS = 2 * 3600 * 1000
# Samples stay in the head at least this long before compaction moves them to chunks.
HEAD_KEEP_MS = 3600 * 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id UINTEGER PRIMARY KEY,
    metric VARCHAR NOT NULL,
    labels MAP(VARCHAR, VARCHAR) NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (series_id UINTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE);
CREATE TABLE IF NOT EXISTS chunks (
    series_id UINTEGER NOT NULL,
    min_ts BIGINT NOT NULL,
    max_ts BIGINT NOT NULL,
    count UINTEGER NOT NULL,
    ts BLOB NOT NULL,
    vals BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS metric_metadata (
    metric VARCHAR PRIMARY KEY, type VARCHAR NOT NULL, unit VARCHAR NOT NULL, help VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_streams (stream VARCHAR PRIMARY KEY, max_seq BIGINT NOT NULL, recent BLOB NOT NULL);
"""

# NaN reaches DuckDB from numpy as NULL, so NaN and staleness markers travel in a
# flag column: 1 restores a NaN, 2 stores NULL, which reads back as a staleness marker.
_SEPARATOR = "\x1f"
_FLAG_NAN = 1
_FLAG_STALE = 2


class SeriesData:
    """Samples of one series over a time range, sorted by time."""

    __slots__ = ("series_id", "labels", "timestamps_ms", "values")

    def __init__(self, series_id: int, labels: Labels, timestamps_ms: np.ndarray, values: np.ndarray):
        self.series_id = series_id
        self.labels = labels
        self.timestamps_ms = timestamps_ms
        self.values = values


class MetricStore:
    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else ":memory:"
        self._con = duckdb.connect(self.path)
        self._con.execute(_SCHEMA)
        self.registry = SeriesRegistry()
        self.ledger = BatchLedger()
        self._metadata: dict[str, MetricMetadata] = {}
        self._closed = False
        self._cursor_lock = threading.Lock()
        self._load()

    # Start-up.

    def _load(self) -> None:
        rows = self._con.execute(
            "SELECT id, metric, map_keys(labels), map_values(labels), first_ms, last_ms FROM series ORDER BY id"
        ).fetchall()
        for series_id, metric, names, values, first_ms, last_ms in rows:
            pairs = dict(zip(names, values))
            pairs["__name__"] = metric
            self.registry.load(series_id, make_labels(pairs), first_ms, last_ms)
        self._reconcile_spans()

        for metric, kind, unit, help_text in self._con.execute("SELECT * FROM metric_metadata").fetchall():
            self._metadata[metric] = MetricMetadata(metric, kind, unit, help_text)
        for stream, max_seq, recent in self._con.execute("SELECT * FROM batch_streams").fetchall():
            self.ledger.streams[stream] = StreamState.decode(max_seq, bytes(recent))
        log.info("metric store opened", extra={"fields": {"path": self.path, "series": len(self.registry)}})

    def _reconcile_spans(self) -> None:
        # Spans are saved lazily; after a crash the head may hold newer samples.
        rows = self._con.execute(
            "SELECT series_id, min(ts), max(ts) FROM samples GROUP BY 1"
        ).fetchnumpy()
        if len(rows["series_id"]):
            ids = np.asarray(rows["series_id"], dtype=np.int64)
            self.registry.note_samples(ids, np.asarray(rows["min(ts)"], dtype=np.int64))
            self.registry.note_samples(ids, np.asarray(rows["max(ts)"], dtype=np.int64))

    # Writing (writer thread only).

    def is_stored(self, batch_id: str) -> bool:
        return self.ledger.contains(batch_id)

    def write(self, batches: Sequence[SampleBatch], metadata: Iterable[MetricMetadata] = ()) -> list[SampleBatch]:
        """Store batches, new series and metadata in one transaction; return the batches stored.

        A batch whose id the ledger already holds is skipped and left out of the result. On failure nothing is
        stored and the pending series stay pending for the next call.
        """
        fresh: list[SampleBatch] = []
        seen: set[str] = set()
        for batch in batches:
            if batch.batch_id is not None:
                if batch.batch_id in seen or self.ledger.contains(batch.batch_id):
                    continue
                seen.add(batch.batch_id)
            fresh.append(batch)

        changed_metadata = [item for item in metadata if self._metadata.get(item.metric) != item]
        new_series = self.registry.take_pending()
        con = self._con
        try:
            con.begin()
            if new_series:
                self._insert_series(new_series)
            self._insert_samples(fresh)
            if changed_metadata:
                con.executemany(
                    "INSERT OR REPLACE INTO metric_metadata VALUES (?, ?, ?, ?)",
                    [(m.metric, m.type, m.unit, m.help) for m in changed_metadata],
                )
            ledger_rows = self._ledger_rows(seen)
            if ledger_rows:
                self._save_ledger(ledger_rows)
            con.commit()
        except BaseException:
            _rollback(con)
            self.registry.restore_pending(new_series)
            raise

        for batch_id in seen:
            self.ledger.add(batch_id)
        self.ledger.dirty.clear()
        for item in changed_metadata:
            self._metadata[item.metric] = item
        for batch in fresh:
            self.registry.note_samples(batch.series_ids, batch.timestamps_ms)
        return fresh

    def _insert_series(self, new_series: list[tuple[int, Labels]]) -> None:
        # Label names and values travel as unit-separator-joined strings, so one
        # vectorised statement builds every map instead of one statement per series.
        count = len(new_series)
        ids = np.empty(count, dtype=np.uint32)
        metrics = np.empty(count, dtype=object)
        names = np.empty(count, dtype=object)
        values = np.empty(count, dtype=object)
        first = np.empty(count, dtype=np.int64)
        last = np.empty(count, dtype=np.int64)
        for index, (series_id, labels) in enumerate(new_series):
            ids[index] = series_id
            metrics[index] = next((value for name, value in labels if name == "__name__"), "")
            rest = [(name, value) for name, value in labels if name != "__name__"]
            names[index] = _SEPARATOR.join(name for name, _ in rest)
            values[index] = _SEPARATOR.join(value for _, value in rest)
            first[index], last[index] = self.registry.span(series_id)
        frame = {"id": ids, "metric": metrics, "names": names, "vals": values, "first_ms": first, "last_ms": last}
        self._con.execute(
            "INSERT OR REPLACE INTO series SELECT id, metric, "
            "CASE WHEN names = '' THEN MAP {} ELSE map(string_split(names, chr(31)), string_split(vals, chr(31))) END, "
            "first_ms, last_ms FROM frame"
        )

    def _insert_samples(self, batches: Sequence[SampleBatch]) -> None:
        if not batches:
            return
        series_ids = np.concatenate([batch.series_ids for batch in batches]).astype(np.uint32, copy=False)
        timestamps = np.concatenate([batch.timestamps_ms for batch in batches]).astype(np.int64, copy=False)
        values = np.concatenate([batch.values for batch in batches]).astype(np.float64, copy=False)
        if series_ids.size == 0:
            return
        nan = np.isnan(values)
        if not nan.any():
            frame = {"series_id": series_ids, "ts": timestamps, "value": values}
            self._con.execute("INSERT INTO samples SELECT series_id, ts, value FROM frame")
            return
        flags = np.where(nan, _FLAG_NAN, 0).astype(np.uint8)
        flags[stale_mask(values)] = _FLAG_STALE
        frame = {"series_id": series_ids, "ts": timestamps, "value": np.where(nan, 0.0, values), "flag": flags}
        self._con.execute(
            "INSERT INTO samples SELECT series_id, ts, "
            "CASE flag WHEN 1 THEN 'NaN'::DOUBLE WHEN 2 THEN NULL ELSE value END FROM frame"
        )

    def _ledger_rows(self, batch_ids: set[str]) -> list[tuple[str, int, bytes]]:
        if not batch_ids:
            return []
        # Work on copies: the live ledger changes only after the commit succeeds.
        staged = BatchLedger()
        for batch_id in batch_ids:
            stream = batch_id.rsplit(":", 1)[0]
            if stream not in staged.streams:
                current = self.ledger.streams.get(stream)
                staged.streams[stream] = (
                    StreamState(current.max_seq, set(current.recent)) if current else StreamState()
                )
            staged.add(batch_id)
        return staged.snapshot_dirty()

    def _save_ledger(self, rows: list[tuple[str, int, bytes]]) -> None:
        streams = np.empty(len(rows), dtype=object)
        blobs = np.empty(len(rows), dtype=object)
        for index, (stream, _, blob) in enumerate(rows):
            streams[index] = stream
            blobs[index] = blob
        frame = {"stream": streams, "max_seq": np.array([row[1] for row in rows], dtype=np.int64), "recent": blobs}
        self._con.execute("INSERT OR REPLACE INTO batch_streams SELECT stream, max_seq, recent FROM frame")

    def compact(self, now_ms: int | None = None) -> int:
        """Move head samples of finished blocks into chunks; return the samples moved."""
        now_ms = _now_ms() if now_ms is None else now_ms
        cutoff = ((now_ms - HEAD_KEEP_MS) // BLOCK_MS) * BLOCK_MS
        bounds = self._con.execute("SELECT min(ts) FROM samples WHERE ts < ?", [cutoff]).fetchone()
        if bounds is None or bounds[0] is None:
            return 0
        moved = 0
        block_start = (bounds[0] // BLOCK_MS) * BLOCK_MS
        while block_start < cutoff:
            moved += self._compact_block(block_start, block_start + BLOCK_MS)
            block_start += BLOCK_MS
        self.save_spans()
        return moved

    def _compact_block(self, start_ms: int, end_ms: int) -> int:
        con = self._con
        rows = con.execute(
            "SELECT series_id, ts, value FROM samples WHERE ts >= ? AND ts < ? ORDER BY series_id, ts",
            [start_ms, end_ms],
        ).fetchnumpy()
        series_ids = np.asarray(rows["series_id"], dtype=np.uint32)
        if series_ids.size == 0:
            return 0
        timestamps = np.asarray(rows["ts"], dtype=np.int64)
        values = _values_from_column(rows["value"])

        starts = np.flatnonzero(np.r_[True, series_ids[1:] != series_ids[:-1]])
        ends = np.r_[starts[1:], series_ids.size]
        count = starts.size
        out_ids = series_ids[starts]
        out_min = timestamps[starts]
        out_max = timestamps[ends - 1]
        out_count = (ends - starts).astype(np.uint32)
        out_ts = np.empty(count, dtype=object)
        out_vals = np.empty(count, dtype=object)
        for index in range(count):
            part = slice(starts[index], ends[index])
            out_ts[index] = chunks.encode_timestamps(timestamps[part])
            out_vals[index] = chunks.encode_values(values[part])

        frame = {"series_id": out_ids, "min_ts": out_min, "max_ts": out_max, "count": out_count,
                 "ts": out_ts, "vals": out_vals}
        try:
            con.begin()
            con.execute("INSERT INTO chunks SELECT series_id, min_ts, max_ts, count, ts, vals FROM frame")
            con.execute("DELETE FROM samples WHERE ts >= ? AND ts < ?", [start_ms, end_ms])
            con.commit()
        except BaseException:
            _rollback(con)
            raise
        return int(series_ids.size)

    def apply_retention(self, retention_ms: int, now_ms: int | None = None) -> None:
        """Delete samples and chunks older than the retention period."""
        now_ms = _now_ms() if now_ms is None else now_ms
        horizon = now_ms - retention_ms
        con = self._con
        try:
            con.begin()
            con.execute("DELETE FROM chunks WHERE max_ts < ?", [horizon])
            con.execute("DELETE FROM samples WHERE ts < ?", [horizon])
            con.commit()
        except BaseException:
            _rollback(con)
            raise

    def save_spans(self) -> None:
        first, last = self.registry.spans()
        if first.size == 0:
            return
        frame = {"id": np.arange(first.size, dtype=np.uint32), "first_ms": first, "last_ms": last}
        self._con.execute(
            "UPDATE series SET first_ms = frame.first_ms, last_ms = frame.last_ms FROM frame "
            "WHERE series.id = frame.id AND (series.first_ms <> frame.first_ms OR series.last_ms <> frame.last_ms)"
        )

    def checkpoint(self) -> None:
        self._con.execute("CHECKPOINT")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.save_spans()
            self._con.execute("CHECKPOINT")
        finally:
            self._con.close()
        log.info("metric store closed", extra={"fields": {"path": self.path}})

    # Reading (any thread).

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursor_lock:
            return self._con.cursor()

    def select_series(
        self, matchers: Sequence[Matcher], start_ms: int | None = None, end_ms: int | None = None
    ) -> list[tuple[int, Labels]]:
        """Return (id, labels) of the series that match all matchers and have samples in the range."""
        ids = self._matching_ids(matchers)
        ids = self.registry.active_between(ids, start_ms, end_ms)
        return [(int(series_id), self.registry.labels(int(series_id))) for series_id in ids]

    def _matching_ids(self, matchers: Sequence[Matcher]) -> np.ndarray:
        clauses, params = _where(matchers)
        sql = "SELECT id FROM series" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id"
        cursor = self.cursor()
        try:
            rows = cursor.execute(sql, params).fetchnumpy()
        finally:
            cursor.close()
        return np.asarray(rows["id"], dtype=np.int64)

    def read_samples(
        self, series: Sequence[tuple[int, Labels]], start_ms: int, end_ms: int
    ) -> list[SeriesData]:
        """Return each series' samples with start_ms <= t <= end_ms, in the order given."""
        if not series:
            return []
        ids = np.array([series_id for series_id, _ in series], dtype=np.uint32)
        parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {int(i): [] for i in ids}
        cursor = self.cursor()
        try:
            wanted = {"id": ids}
            cursor.register("wanted", wanted)
            chunk_rows = cursor.execute(
                "SELECT series_id, ts, vals FROM chunks JOIN wanted ON chunks.series_id = wanted.id "
                "WHERE max_ts >= ? AND min_ts <= ? ORDER BY series_id, min_ts",
                [start_ms, end_ms],
            ).fetchall()
            head = cursor.execute(
                "SELECT series_id, ts, value FROM samples JOIN wanted ON samples.series_id = wanted.id "
                "WHERE ts >= ? AND ts <= ? ORDER BY series_id, ts",
                [start_ms, end_ms],
            ).fetchnumpy()
            cursor.unregister("wanted")
        finally:
            cursor.close()

        for series_id, ts_blob, values_blob in chunk_rows:
            timestamps = chunks.decode_timestamps(bytes(ts_blob))
            values = chunks.decode_values(bytes(values_blob))
            keep = (timestamps >= start_ms) & (timestamps <= end_ms)
            parts[int(series_id)].append((timestamps[keep], values[keep]))

        head_ids = np.asarray(head["series_id"], dtype=np.int64)
        if head_ids.size:
            head_ts = np.asarray(head["ts"], dtype=np.int64)
            head_values = _values_from_column(head["value"])
            starts = np.flatnonzero(np.r_[True, head_ids[1:] != head_ids[:-1]])
            ends = np.r_[starts[1:], head_ids.size]
            for begin, end in zip(starts, ends):
                parts[int(head_ids[begin])].append((head_ts[begin:end], head_values[begin:end]))

        return [SeriesData(series_id, labels, *_merge(parts[series_id])) for series_id, labels in series]

    def label_names(
        self, matchers: Sequence[Matcher] = (), start_ms: int | None = None, end_ms: int | None = None
    ) -> list[str]:
        names: set[str] = set()
        for _, labels in self.select_series(matchers, start_ms, end_ms):
            names.update(name for name, _ in labels)
        return sorted(names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), start_ms: int | None = None, end_ms: int | None = None
    ) -> list[str]:
        values: set[str] = set()
        for _, labels in self.select_series(matchers, start_ms, end_ms):
            for label, value in labels:
                if label == name:
                    values.add(value)
        return sorted(values)

    def metadata(self, metric: str | None = None) -> list[MetricMetadata]:
        if metric is not None:
            found = self._metadata.get(metric)
            return [found] if found else []
        return [self._metadata[name] for name in sorted(self._metadata)]

    def counts(self) -> dict[str, int]:
        cursor = self.cursor()
        try:
            head = cursor.execute("SELECT count(*) FROM samples").fetchone()[0]
            chunk_rows, chunk_samples = cursor.execute("SELECT count(*), coalesce(sum(count), 0) FROM chunks").fetchone()
        finally:
            cursor.close()
        return {"series": len(self.registry), "head_samples": int(head), "chunks": int(chunk_rows),
                "chunk_samples": int(chunk_samples)}


def _where(matchers: Sequence[Matcher]) -> tuple[list[str], list[str]]:
    clauses: list[str] = []
    params: list[str] = []
    for matcher in matchers:
        if matcher.name == "__name__":
            column = "metric"
        else:
            column = "coalesce(element_at(labels, ?)[1], '')"
            params.append(matcher.name)
        if matcher.op == "=":
            clauses.append(f"{column} = ?")
        elif matcher.op == "!=":
            clauses.append(f"{column} <> ?")
        elif matcher.op == "=~":
            clauses.append(f"regexp_full_match({column}, ?, 's')")
        else:
            clauses.append(f"NOT regexp_full_match({column}, ?, 's')")
        params.append(matcher.value)
    return clauses, params


def _values_from_column(column: np.ndarray) -> np.ndarray:
    """Turn a fetched value column into float64, NULL becoming the staleness marker."""
    if isinstance(column, np.ma.MaskedArray):
        values = np.asarray(column.data, dtype=np.float64).copy()
        mask = np.ma.getmaskarray(column)
        if mask.any():
            values.view(np.uint64)[mask] = np.uint64(STALE_NAN_BITS)
        return values
    return np.asarray(column, dtype=np.float64)


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if len(parts) == 1:
        return parts[0]
    timestamps = np.concatenate([part[0] for part in parts])
    values = np.concatenate([part[1] for part in parts])
    if timestamps.size > 1 and np.any(timestamps[1:] <= timestamps[:-1]):
        # Chunks written after a late replay may overlap; sort and keep one sample per timestamp.
        order = np.argsort(timestamps, kind="stable")
        timestamps = timestamps[order]
        values = values[order]
        last_of_run = np.r_[timestamps[1:] != timestamps[:-1], True]
        timestamps = timestamps[last_of_run]
        values = values[last_of_run]
    return timestamps, values


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.rollback()
    except duckdb.Error:
        pass


def _now_ms() -> int:
    return int(time.time() * 1000)
