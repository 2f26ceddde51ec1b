"""The embedded metric store on DuckDB.

Layout:
- `series`: one row per label set with a dense integer id.
- `samples`: the head, recent samples appended in arrival order as columns.
- `chunks`: older samples, one compressed row per series and two-hour block, so a
  query over days reads a few rows per series instead of scanning every sample.
  After each compaction, the chunks of one series within one UTC day are merged into
  one, so a week is seven or eight rows per series. `seq` numbers chunks in write order.
- `metric_metadata`: type, unit and help per metric name.
- `batch_streams`: the batch ledger, so a retried batch is stored once.

Reads need no SQL in the common case. Series are selected from in-memory label
postings, and head samples come from an in-memory copy of the head grouped by series
(`HeadRuns`). Chunks are found in an in-memory directory, and decoded chunks are
cached. The writer updates these after each commit, so they always describe
committed data.

Contract: one thread (the ingest writer) calls `write`, `compact`, `apply_retention`
and `close`; any thread may call the read methods, which see the last committed
state.

Columns reach DuckDB as dicts of numpy arrays held in local variables (`frame`,
`doomed`, ...) that the SQL names: DuckDB's replacement scan reads them from the
calling frame, so they look unused to linters but are not.
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
from gosight.store.chunkcache import ChunkDirectory, DecodedChunkCache
from gosight.store.head import HeadRuns
from gosight.store.ledger import BatchLedger, StreamState
from gosight.store.postings import LabelIndex
from gosight.store.series import SeriesRegistry

log = logging.getLogger(__name__)

BLOCK_MS = 2 * 3600 * 1000
DAY_MS = 86_400_000
# Samples stay in the head at least this long before compaction moves them to chunks.
HEAD_KEEP_MS = 3600 * 1000
# The in-memory head copy costs about 20 bytes a sample. Beyond this many samples (a
# large backfill) it is dropped and reads scan the head table until compaction has
# shrunk the head to half of it.
MAX_HEAD_COPY_SAMPLES = 16_000_000
DEFAULT_CHUNK_CACHE_BYTES = 256 << 20

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
    vals BLOB NOT NULL,
    seq BIGINT
);
CREATE TABLE IF NOT EXISTS metric_metadata (
    metric VARCHAR PRIMARY KEY, type VARCHAR NOT NULL, unit VARCHAR NOT NULL, help VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_streams (
    stream VARCHAR PRIMARY KEY, max_seq BIGINT NOT NULL, recent BLOB NOT NULL, last_ms BIGINT
);
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


class _ReadView:
    """The in-memory structures that readers use, replaced whole by the writer and never changed in place."""

    __slots__ = ("directory", "head")

    def __init__(self, directory: ChunkDirectory, head: HeadRuns | None):
        self.directory = directory
        # None while the head is too large to copy; reads then query the head table.
        self.head = head


# A part of a read: timestamps, values and the write rank that settles duplicate timestamps.
_Part = tuple[np.ndarray, np.ndarray, int]
# Head samples were written after every chunk: compaction moves all head samples of a block.
_HEAD_RANK = np.iinfo(np.int64).max


class _ChunkGone(Exception):
    """A chunk the read view listed was deleted meanwhile (merged or past retention)."""


class MetricStore:
    def __init__(self, path: str | Path | None, *, chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES):
        self.path = str(path) if path else ":memory:"
        self._con = duckdb.connect(self.path)
        self._con.execute(_SCHEMA)
        self.registry = SeriesRegistry()
        self.ledger = BatchLedger()
        self._metadata: dict[str, MetricMetadata] = {}
        self._closed = False
        self._cursor_lock = threading.Lock()
        self._postings = LabelIndex(self._regex_matches)
        self._chunk_cache = DecodedChunkCache(chunk_cache_bytes)
        self._view = _ReadView(ChunkDirectory.empty(), HeadRuns())
        self._next_seq = 0
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
        self._postings.add((series_id, self.registry.labels(series_id)) for series_id in range(len(self.registry)))
        self._reconcile_spans()
        self._number_chunks()
        self._view = _ReadView(self._load_directory(), self._load_head())

        for metric, kind, unit, help_text in self._con.execute("SELECT * FROM metric_metadata").fetchall():
            self._metadata[metric] = MetricMetadata(metric, kind, unit, help_text)
        columns = {row[0] for row in self._con.execute("SELECT name FROM pragma_table_info('batch_streams')").fetchall()}
        if "last_ms" not in columns:
            # Streams saved before the column existed count as used now, so retention keeps them a full period.
            self._con.execute("ALTER TABLE batch_streams ADD COLUMN last_ms BIGINT")
            self._con.execute("UPDATE batch_streams SET last_ms = ?", [_now_ms()])
        for stream, max_seq, recent in self._con.execute(
                "SELECT stream, max_seq, recent FROM batch_streams").fetchall():
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
            columns = self._insert_samples(fresh)
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
        if new_series:
            self._postings.add(new_series)
        self._add_to_head_copy(columns)
        return fresh

    def _add_to_head_copy(self, columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
        view = self._view
        if columns is None or view.head is None:
            return
        if view.head.size + columns[0].size > MAX_HEAD_COPY_SAMPLES:
            log.info("head too large to copy in memory, reads scan the head table until compaction",
                     extra={"fields": {"samples": view.head.size + columns[0].size}})
            self._view = _ReadView(view.directory, None)
            return
        self._view = _ReadView(view.directory, view.head.appended(*columns))

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

    def _insert_samples(self, batches: Sequence[SampleBatch]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Insert the batches' samples; return them as (series ids, timestamps, values) columns."""
        if not batches:
            return None
        series_ids = np.concatenate([batch.series_ids for batch in batches]).astype(np.uint32, copy=False)
        timestamps = np.concatenate([batch.timestamps_ms for batch in batches]).astype(np.int64, copy=False)
        values = np.concatenate([batch.values for batch in batches]).astype(np.float64, copy=False)
        if series_ids.size == 0:
            return None
        nan = np.isnan(values)
        if not nan.any():
            frame = {"series_id": series_ids, "ts": timestamps, "value": values}
            self._con.execute("INSERT INTO samples SELECT series_id, ts, value FROM frame")
            return series_ids, timestamps, values
        flags = np.where(nan, _FLAG_NAN, 0).astype(np.uint8)
        flags[stale_mask(values)] = _FLAG_STALE
        frame = {"series_id": series_ids, "ts": timestamps, "value": np.where(nan, 0.0, values), "flag": flags}
        self._con.execute(
            "INSERT INTO samples SELECT series_id, ts, "
            "CASE flag WHEN 1 THEN 'NaN'::DOUBLE WHEN 2 THEN NULL ELSE value END FROM frame"
        )
        return series_ids, timestamps, values

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
        self._con.execute("INSERT OR REPLACE INTO batch_streams (stream, max_seq, recent, last_ms) "
                          "SELECT stream, max_seq, recent, ? FROM frame", [_now_ms()])

    def compact(self, now_ms: int | None = None) -> int:
        """Move head samples of finished blocks into chunks, then merge chunks by day; return the samples moved."""
        now_ms = _now_ms() if now_ms is None else now_ms
        cutoff = ((now_ms - HEAD_KEEP_MS) // BLOCK_MS) * BLOCK_MS
        bounds = self._con.execute("SELECT min(ts) FROM samples WHERE ts < ?", [cutoff]).fetchone()
        moved = 0
        if bounds is not None and bounds[0] is not None:
            block_start = (bounds[0] // BLOCK_MS) * BLOCK_MS
            while block_start < cutoff:
                moved += self._compact_block(block_start, block_start + BLOCK_MS)
                block_start += BLOCK_MS
        self._merge_days()
        self._refresh_head_copy()
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
        parts = [(timestamps[begin:end], values[begin:end]) for begin, end in zip(starts.tolist(), ends.tolist())]
        self._replace_chunks(series_ids[starts], parts, np.empty(0, dtype=np.int64),
                             "DELETE FROM samples WHERE ts >= ? AND ts < ?", [start_ms, end_ms])
        # The new chunks are in the directory already, so readers never miss these samples.
        view = self._view
        if view.head is not None:
            self._view = _ReadView(view.directory, view.head.without_range(start_ms, end_ms))
        return int(series_ids.size)

    def _replace_chunks(self, series_ids: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]],
                        old_seqs: np.ndarray, delete_sql: str | None = None, delete_params: list | None = None) -> None:
        """In one transaction, write one chunk per (series, samples) part and delete the chunks `old_seqs`.

        `delete_sql` removes what the new chunks replace elsewhere (head samples). The
        directory is updated after the commit; the head copy is the caller's to update.
        """
        count = len(parts)
        seqs = np.arange(self._next_seq, self._next_seq + count, dtype=np.int64)
        out_ts = np.empty(count, dtype=object)
        out_vals = np.empty(count, dtype=object)
        for index, (timestamps, values) in enumerate(parts):
            out_ts[index] = chunks.encode_timestamps(timestamps)
            out_vals[index] = chunks.encode_values(values)
        frame = {"series_id": series_ids.astype(np.uint32), "min_ts": np.array([p[0][0] for p in parts], np.int64),
                 "max_ts": np.array([p[0][-1] for p in parts], np.int64),
                 "count": np.array([p[0].size for p in parts], np.uint32), "ts": out_ts, "vals": out_vals,
                 "seq": seqs}
        doomed = {"seq": old_seqs}
        con = self._con
        try:
            con.begin()
            con.execute("INSERT INTO chunks SELECT series_id, min_ts, max_ts, count, ts, vals, seq FROM frame")
            if old_seqs.size:
                con.execute("DELETE FROM chunks WHERE seq IN (SELECT seq FROM doomed)")
            if delete_sql is not None:
                con.execute(delete_sql, delete_params or [])
            con.commit()
        except BaseException:
            _rollback(con)
            raise
        self._next_seq += count
        directory = self._view.directory
        if old_seqs.size:
            directory = directory.without_seqs(old_seqs)
            self._chunk_cache.discard(old_seqs)
        directory = directory.with_added(frame["series_id"], frame["min_ts"], frame["max_ts"], seqs)
        self._view = _ReadView(directory, self._view.head)

    def _merge_days(self) -> None:
        """Merge the chunks of each series within one UTC day into one chunk.

        The current day is merged too, so a one-day query reads two chunks per series
        rather than a dozen. The price is rewriting the day so far once per block: an
        estimated six times the work of compacting that day's blocks once.
        """
        directory = self._view.directory
        first_day = directory.min_ts // DAY_MS
        candidate = first_day == directory.max_ts // DAY_MS
        if not candidate.any():
            return
        days = first_day[candidate]
        series_ids = directory.series_ids[candidate].astype(np.int64)
        seqs = directory.seq[candidate]
        # Several chunks of one series in one day: the day is not merged yet, or late data arrived.
        order = np.lexsort((seqs, series_ids, days))
        days, series_ids, seqs = days[order], series_ids[order], seqs[order]
        group_start = np.r_[True, (days[1:] != days[:-1]) | (series_ids[1:] != series_ids[:-1])]
        group_id = np.cumsum(group_start) - 1
        group_size = np.bincount(group_id)
        merge = group_size[group_id] > 1
        for day in np.unique(days[merge]).tolist():
            in_day = merge & (days == day)
            self._merge_day(series_ids[in_day], seqs[in_day])

    def _merge_day(self, series_ids: np.ndarray, seqs: np.ndarray) -> None:
        decoded = self._fetch_chunks(seqs)
        starts = np.flatnonzero(np.r_[True, series_ids[1:] != series_ids[:-1]])
        ends = np.r_[starts[1:], series_ids.size]
        parts = [_merge([decoded[seq] for seq in seqs[begin:end].tolist()])
                 for begin, end in zip(starts.tolist(), ends.tolist())]
        self._replace_chunks(series_ids[starts], parts, seqs)

    def apply_retention(self, retention_ms: int, now_ms: int | None = None) -> None:
        """Delete samples and chunks older than the retention period, and the ledger of idle senders.

        Chunks go whole, so a day chunk stays until its last sample is past the horizon. A
        batch stream unused for a whole period is forgotten: every agent start opens a new
        one, and a batch that old would be refused at ingest for its sample times anyway (bar
        the few minutes of clock skew that ingest accepts).
        """
        now_ms = _now_ms() if now_ms is None else now_ms
        horizon = now_ms - retention_ms
        con = self._con
        try:
            con.begin()
            con.execute("DELETE FROM chunks WHERE max_ts < ?", [horizon])
            con.execute("DELETE FROM samples WHERE ts < ?", [horizon])
            idle = [row[0] for row in con.execute(
                "DELETE FROM batch_streams WHERE last_ms < ? RETURNING stream", [horizon]).fetchall()]
            con.commit()
        except BaseException:
            _rollback(con)
            raise
        for stream in idle:
            self.ledger.streams.pop(stream, None)
        view = self._view
        expired = view.directory.max_ts < horizon
        directory = view.directory.without(~expired) if expired.any() else view.directory
        self._chunk_cache.discard(view.directory.seq[expired])
        head = view.head.without_before(horizon) if view.head is not None else None
        self._view = _ReadView(directory, head)

    # Start-up and refresh of the in-memory read structures.

    def _number_chunks(self) -> None:
        """Give a seq to chunks written before chunks had one, and find the next free seq."""
        columns = {row[0] for row in self._con.execute("SELECT name FROM pragma_table_info('chunks')").fetchall()}
        if "seq" not in columns:
            self._con.execute("ALTER TABLE chunks ADD COLUMN seq BIGINT")
        if self._con.execute("SELECT count(*) FROM chunks WHERE seq IS NULL").fetchone()[0]:
            top = self._con.execute("SELECT coalesce(max(seq), -1) FROM chunks").fetchone()[0]
            self._con.execute("UPDATE chunks SET seq = ? + rowid + 1 WHERE seq IS NULL", [top])
        self._next_seq = int(self._con.execute("SELECT coalesce(max(seq), -1) + 1 FROM chunks").fetchone()[0])

    def _load_directory(self) -> ChunkDirectory:
        rows = self._con.execute("SELECT series_id, min_ts, max_ts, seq FROM chunks ORDER BY series_id, seq").fetchnumpy()
        return ChunkDirectory(np.asarray(rows["series_id"]), np.asarray(rows["min_ts"]),
                              np.asarray(rows["max_ts"]), np.asarray(rows["seq"]), presorted=True)

    def _load_head(self) -> HeadRuns | None:
        count = self._con.execute("SELECT count(*) FROM samples").fetchone()[0]
        if count > MAX_HEAD_COPY_SAMPLES // 2:
            return None
        # rowid keeps arrival order within a series, so a rewritten timestamp still wins.
        rows = self._con.execute("SELECT series_id, ts, value FROM samples ORDER BY series_id, rowid").fetchnumpy()
        return HeadRuns.from_sorted(np.asarray(rows["series_id"], dtype=np.uint32),
                                    np.asarray(rows["ts"], dtype=np.int64), _values_from_column(rows["value"]))

    def _refresh_head_copy(self) -> None:
        view = self._view
        if view.head is None:
            head = self._load_head()
            if head is not None:
                log.info("head copied to memory again", extra={"fields": {"samples": head.size}})
        elif len(view.head.runs) > 1 and view.head.size <= MAX_HEAD_COPY_SAMPLES // 4:
            head = view.head.consolidated()
        else:
            return
        self._view = _ReadView(self._view.directory, head)

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
        ids = self._postings.select(matchers)
        ids = self.registry.active_between(ids, start_ms, end_ms)
        return [(series_id, self.registry.labels(series_id)) for series_id in ids.tolist()]

    def _regex_matches(self, pattern: str, values: list[str]) -> list[str]:
        """Return the values that RE2 matches fully, dot matching newline, as Prometheus does."""
        if not values:
            return []
        cursor = self.cursor()
        try:
            rows = cursor.execute(
                "SELECT v FROM (SELECT unnest(?::VARCHAR[]) AS v) WHERE regexp_full_match(v, ?, 's')",
                [values, pattern]).fetchall()
        finally:
            cursor.close()
        return [row[0] for row in rows]

    def read_samples(
        self, series: Sequence[tuple[int, Labels]], start_ms: int, end_ms: int
    ) -> list[SeriesData]:
        """Return each series' samples with start_ms <= t <= end_ms, in the order given."""
        timestamps, values, offsets = self.read_flat([series_id for series_id, _ in series], start_ms, end_ms)
        bounds = offsets.tolist()
        return [SeriesData(series_id, labels, timestamps[bounds[index]:bounds[index + 1]],
                           values[bounds[index]:bounds[index + 1]])
                for index, (series_id, labels) in enumerate(series)]

    def read_flat(self, series_ids: Sequence[int], start_ms: int,
                  end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the samples with start_ms <= t <= end_ms of the given series, in one set of flat arrays.

        Series i owns [offsets[i], offsets[i + 1]) of `timestamps` and `values`, sorted by
        time with one sample per timestamp. Of samples with equal timestamps, the last
        written wins.
        """
        ids = np.asarray(series_ids, dtype=np.int64)
        if ids.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64), np.zeros(1, np.int64)
        for attempt in range(3):
            view = self._view
            try:
                parts = self._read_parts(view, ids, start_ms, end_ms)
                break
            except _ChunkGone:
                # A merge or retention deleted a listed chunk; the newer view lists its replacement.
                if attempt == 2:
                    raise
        return _flatten(parts)

    def _read_parts(self, view: _ReadView, ids: np.ndarray, start_ms: int, end_ms: int) -> list[list[_Part]]:
        """Return per requested series its sample parts: chunks by first timestamp, then the head."""
        parts: list[list[_Part]] = [[] for _ in range(ids.size)]
        refs = view.directory.lookup(ids, start_ms, end_ms)
        bounds = np.array([start_ms, end_ms + 1], dtype=np.int64)
        if refs.seq.size:
            decoded = self._chunk_cache.get_many(refs.seq.tolist())
            missing = np.array([seq for seq in refs.seq.tolist() if seq not in decoded], dtype=np.int64)
            if missing.size:
                fetched = self._fetch_chunks(missing)
                self._chunk_cache.put_many(fetched)
                decoded.update(fetched)
            for owner, seq in zip(refs.owner.tolist(), refs.seq.tolist()):
                timestamps, values = decoded[seq]
                if timestamps[0] < start_ms or timestamps[-1] > end_ms:
                    # Timestamps are integers, so the first one after end_ms is the first >= end_ms + 1.
                    first, last = timestamps.searchsorted(bounds).tolist()
                    timestamps, values = timestamps[first:last], values[first:last]
                parts[owner].append((timestamps, values, seq))

        if view.head is not None:
            head = view.head.read(ids, start_ms, end_ms)
            owners, head_ts, head_values = head.owner, head.timestamps_ms, head.values
        else:
            owners, head_ts, head_values = self._read_head_table(ids, start_ms, end_ms)
        if owners.size:
            starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
            ends = np.r_[starts[1:], owners.size]
            for begin, end in zip(starts.tolist(), ends.tolist()):
                parts[int(owners[begin])].append((head_ts[begin:end], head_values[begin:end], _HEAD_RANK))
        return parts

    def _fetch_chunks(self, seqs: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Read and decode the chunks with the given seqs; raise _ChunkGone if one no longer exists."""
        wanted = {"seq": np.unique(seqs)}
        cursor = self.cursor()
        try:
            cursor.register("wanted_seq", wanted)
            # seq grows with every write, so the range lets DuckDB skip row groups by their zone maps.
            rows = cursor.execute(
                "SELECT chunks.seq, count, ts, vals FROM chunks JOIN wanted_seq ON chunks.seq = wanted_seq.seq "
                "WHERE chunks.seq >= ? AND chunks.seq <= ?",
                [int(wanted["seq"][0]), int(wanted["seq"][-1])]).fetchall()
            cursor.unregister("wanted_seq")
        finally:
            cursor.close()
        if len(rows) < wanted["seq"].size:
            raise _ChunkGone()
        decoded = chunks.decode_many(np.array([row[1] for row in rows], dtype=np.int64),
                                     [row[2] for row in rows], [row[3] for row in rows])
        return {int(row[0]): pair for row, pair in zip(rows, decoded)}

    def _read_head_table(self, ids: np.ndarray, start_ms: int,
                         end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read head samples with SQL, for when the head is too large to copy; owners index `ids`."""
        cursor = self.cursor()
        try:
            cursor.register("wanted", {"id": ids.astype(np.uint32), "owner": np.arange(ids.size, dtype=np.int64)})
            head = cursor.execute(
                "SELECT owner, ts, value FROM samples JOIN wanted ON samples.series_id = wanted.id "
                "WHERE ts >= ? AND ts <= ? ORDER BY owner, samples.rowid",
                [start_ms, end_ms],
            ).fetchnumpy()
            cursor.unregister("wanted")
        finally:
            cursor.close()
        return (np.asarray(head["owner"], dtype=np.int64), np.asarray(head["ts"], dtype=np.int64),
                _values_from_column(head["value"]))

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


def _values_from_column(column: np.ndarray) -> np.ndarray:
    """Turn a fetched value column into float64, NULL becoming the staleness marker."""
    if isinstance(column, np.ma.MaskedArray):
        values = np.asarray(column.data, dtype=np.float64).copy()
        mask = np.ma.getmaskarray(column)
        if mask.any():
            values.view(np.uint64)[mask] = np.uint64(STALE_NAN_BITS)
        return values
    return np.asarray(column, dtype=np.float64)


def _flatten(parts: list[list[_Part]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate each series' parts into flat arrays sorted by (series, time), one sample per timestamp.

    Where parts share a timestamp, the part written last (highest rank) wins; within a
    part, the later sample. The common case, parts already in time order, costs two
    concatenations.
    """
    pieces = [part for series_parts in parts for part in series_parts]
    sizes = np.array([part[0].size for part in pieces], dtype=np.int64)
    piece_owner = np.repeat(np.arange(len(parts)), [len(series_parts) for series_parts in parts])
    counts = np.bincount(piece_owner, weights=sizes, minlength=len(parts)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if not pieces:
        return np.empty(0, np.int64), np.empty(0, np.float64), offsets
    timestamps = np.concatenate([part[0] for part in pieces]).astype(np.int64, copy=False)
    values = np.concatenate([part[1] for part in pieces]).astype(np.float64, copy=False)
    if timestamps.size < 2:
        return timestamps, values, offsets
    # A step down or a repeat inside one series means late or rewritten samples.
    inside = np.ones(timestamps.size - 1, dtype=bool)
    inside[offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < timestamps.size)] - 1] = False
    if not np.any(inside & (timestamps[1:] <= timestamps[:-1])):
        return timestamps, values, offsets
    owner = np.repeat(np.arange(counts.size), counts)
    rank = np.repeat(np.array([part[2] for part in pieces], dtype=np.int64), sizes)
    order = np.lexsort((rank, timestamps, owner))  # stable, so arrival order breaks the remaining ties
    owner, timestamps, values = owner[order], timestamps[order], values[order]
    last_of_run = np.r_[(owner[1:] != owner[:-1]) | (timestamps[1:] != timestamps[:-1]), True]
    owner, timestamps, values = owner[last_of_run], timestamps[last_of_run], values[last_of_run]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=counts.size))]).astype(np.int64)
    return timestamps, values, offsets


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
