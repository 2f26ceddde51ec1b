"""Where each series' chunks are, and a bounded cache of decoded chunks.

`ChunkDirectory` is an in-memory copy of the `chunks` table without the blobs,
sorted by series id and then by `seq`, the order chunks were written. A query finds
the chunks overlapping its range with two binary searches instead of a SQL scan. Like `HeadRuns` it is immutable: the writer thread builds a new one after
each change and readers keep the one they started with.

`DecodedChunkCache` keeps decoded chunks by `seq`, least recently used first out,
bounded in bytes. A chunk's samples never change after it is written (late data,
merges and retention add or delete whole chunks), so an entry never goes stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

# Bytes a cache entry costs besides its arrays: the dictionary slot, the tuple and
# two array headers, rounded up.
_ENTRY_OVERHEAD_BYTES = 400


@dataclass(frozen=True)
class ChunkRefs:
    """Chunks selected for a read: `owner[i]` indexes the requested series of chunk `seq[i]`.

    Sorted by owner, then by the chunk's first timestamp.
    """

    owner: np.ndarray
    seq: np.ndarray


class ChunkDirectory:
    """Series id, time span and seq of every stored chunk."""

    __slots__ = ("series_ids", "min_ts", "max_ts", "seq")

    def __init__(self, series_ids: np.ndarray, min_ts: np.ndarray, max_ts: np.ndarray, seq: np.ndarray,
                 *, presorted: bool = False):
        if not presorted and series_ids.size:
            order = np.lexsort((seq, series_ids))
            series_ids, min_ts, max_ts, seq = series_ids[order], min_ts[order], max_ts[order], seq[order]
        self.series_ids = np.asarray(series_ids, dtype=np.uint32)
        self.min_ts = np.asarray(min_ts, dtype=np.int64)
        self.max_ts = np.asarray(max_ts, dtype=np.int64)
        self.seq = np.asarray(seq, dtype=np.int64)

    @classmethod
    def empty(cls) -> ChunkDirectory:
        return cls(np.empty(0, np.uint32), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))

    def __len__(self) -> int:
        return int(self.seq.size)

    def with_added(self, series_ids: np.ndarray, min_ts: np.ndarray, max_ts: np.ndarray,
                   seq: np.ndarray) -> ChunkDirectory:
        return ChunkDirectory(np.concatenate([self.series_ids, series_ids.astype(np.uint32)]),
                              np.concatenate([self.min_ts, min_ts]), np.concatenate([self.max_ts, max_ts]),
                              np.concatenate([self.seq, seq]))

    def without(self, keep: np.ndarray) -> ChunkDirectory:
        """Return a copy with only the entries where the boolean mask `keep` is true."""
        return ChunkDirectory(self.series_ids[keep], self.min_ts[keep], self.max_ts[keep], self.seq[keep],
                              presorted=True)

    def without_seqs(self, seqs: np.ndarray) -> ChunkDirectory:
        return self.without(~np.isin(self.seq, seqs))

    def lookup(self, wanted_ids: np.ndarray, start_ms: int, end_ms: int) -> ChunkRefs:
        """Return the chunks of the given series that overlap [start_ms, end_ms]."""
        wanted = wanted_ids.astype(np.uint32, copy=False)
        begin = np.searchsorted(self.series_ids, wanted, "left")
        end = np.searchsorted(self.series_ids, wanted, "right")
        counts = end - begin
        total = int(counts.sum())
        if total == 0:
            empty = np.empty(0, dtype=np.int64)
            return ChunkRefs(empty, empty)
        starts = np.cumsum(counts) - counts
        index = np.arange(total) - np.repeat(starts - begin, counts)
        owner = np.repeat(np.arange(wanted.size), counts)
        overlap = (self.max_ts[index] >= start_ms) & (self.min_ts[index] <= end_ms)
        owner, index = owner[overlap], index[overlap]
        # A merged day chunk is written after the two-hour chunks of the next day, so seq
        # order is not time order.
        order = np.lexsort((self.min_ts[index], owner))
        return ChunkRefs(owner[order], self.seq[index[order]])


class DecodedChunkCache:
    """Thread-safe LRU cache of decoded chunks (timestamps, values) keyed by seq, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get_many(self, seqs: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with self._lock:
            entries = self._entries
            for seq in seqs:
                entry = entries.get(seq)
                if entry is not None:
                    entries.move_to_end(seq)
                    found[seq] = entry
            self.hits += len(found)
            self.misses += len(seqs) - len(found)
        return found

    def put_many(self, decoded: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        if self.max_bytes <= 0:
            return
        with self._lock:
            for seq, (timestamps, values) in decoded.items():
                if seq in self._entries:
                    continue
                timestamps.flags.writeable = False
                values.flags.writeable = False
                self._entries[seq] = (timestamps, values)
                self._bytes += _entry_bytes(timestamps, values)
            while self._bytes > self.max_bytes and self._entries:
                _, (timestamps, values) = self._entries.popitem(last=False)
                self._bytes -= _entry_bytes(timestamps, values)

    def discard(self, seqs: np.ndarray) -> None:
        with self._lock:
            for seq in seqs.tolist():
                entry = self._entries.pop(seq, None)
                if entry is not None:
                    self._bytes -= _entry_bytes(*entry)


def _entry_bytes(timestamps: np.ndarray, values: np.ndarray) -> int:
    return timestamps.nbytes + values.nbytes + _ENTRY_OVERHEAD_BYTES
