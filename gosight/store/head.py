"""An in-memory copy of the head table, grouped by series, for reads without SQL.

The `samples` table is appended in arrival order, so DuckDB must scan every recent
row to find one series' samples: several milliseconds per query on a fleet. This
copy contains the same samples in runs, each sorted by series id. The sort is
stable, so a series' samples keep arrival order within a run. A binary search finds
a series.

Each commit adds one run. Small runs are merged sixteen at a time, so steady
ingest of small commits does not pile up runs, while large commits (a backfill)
stay as they are: merging large runs would cost the writer more than it saves
readers. After each compaction the remaining runs are merged into one. Merging
uses a counting sort by series id, linear in the samples merged.

`HeadRuns` values are immutable: every change returns a new value, so a reader that
keeps one sees a consistent state while the writer moves on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MERGE_FANOUT = 16
# Runs of this many samples or more are only merged by `consolidated`.
_LARGE_RUN_SAMPLES = 65_536


@dataclass(frozen=True)
class _Run:
    ids: np.ndarray  # uint32, sorted
    timestamps_ms: np.ndarray  # int64
    values: np.ndarray  # float64

    @property
    def size(self) -> int:
        return int(self.ids.size)



@dataclass(frozen=True)
class HeadRead:
    """Head samples of the series asked for, flat: `owner[i]` indexes the requested id of sample i.

    Samples of one series appear in arrival order.
    """

    owner: np.ndarray
    timestamps_ms: np.ndarray
    values: np.ndarray


class HeadRuns:
    """Immutable set of sorted runs holding the head's samples."""

    __slots__ = ("runs", "size")

    def __init__(self, runs: tuple[_Run, ...] = ()):
        self.runs = runs
        self.size = sum(run.size for run in runs)

    @classmethod
    def from_sorted(cls, ids: np.ndarray, timestamps_ms: np.ndarray, values: np.ndarray) -> HeadRuns:
        """Build from samples already sorted by series id (and by time within a series)."""
        if ids.size == 0:
            return cls()
        return cls((_Run(ids.astype(np.uint32, copy=False), timestamps_ms, values),))

    def appended(self, ids: np.ndarray, timestamps_ms: np.ndarray, values: np.ndarray) -> HeadRuns:
        """Return a copy with one committed batch added, merging the small runs once there are enough."""
        if ids.size == 0:
            return self
        order = np.argsort(ids, kind="stable")
        runs = list(self.runs)
        runs.append(_Run(ids[order].astype(np.uint32, copy=False), timestamps_ms[order], values[order]))
        small = 0
        for run in reversed(runs):
            if run.size >= _LARGE_RUN_SAMPLES:
                break
            small += 1
        if small >= _MERGE_FANOUT:
            runs[-small:] = [_merge_runs(runs[-small:])]
        return HeadRuns(tuple(runs))

    def consolidated(self) -> HeadRuns:
        """Return a copy with all runs merged into one."""
        if len(self.runs) <= 1:
            return self
        return HeadRuns((_merge_runs(list(self.runs)),))

    def without_before(self, cutoff_ms: int) -> HeadRuns:
        """Return a copy without samples older than cutoff_ms (moved to chunks, or past retention)."""
        kept = []
        for run in self.runs:
            keep = run.timestamps_ms >= cutoff_ms
            if keep.all():
                kept.append(run)
            elif keep.any():
                kept.append(_Run(run.ids[keep], run.timestamps_ms[keep], run.values[keep]))
        return HeadRuns(tuple(kept))

    def without_range(self, start_ms: int, end_ms: int) -> HeadRuns:
        """Return a copy without samples with start_ms <= t < end_ms."""
        kept = []
        for run in self.runs:
            keep = (run.timestamps_ms < start_ms) | (run.timestamps_ms >= end_ms)
            if keep.all():
                kept.append(run)
            elif keep.any():
                kept.append(_Run(run.ids[keep], run.timestamps_ms[keep], run.values[keep]))
        return HeadRuns(tuple(kept))

    def read(self, wanted_ids: np.ndarray, start_ms: int, end_ms: int) -> HeadRead:
        """Return the samples with start_ms <= t <= end_ms of the given series ids."""
        owners, stamps, values = [], [], []
        wanted = wanted_ids.astype(np.uint32, copy=False)
        for run in self.runs:
            begin = np.searchsorted(run.ids, wanted, "left")
            end = np.searchsorted(run.ids, wanted, "right")
            counts = end - begin
            total = int(counts.sum())
            if total == 0:
                continue
            owner = np.repeat(np.arange(wanted.size), counts)
            # Position of each gathered sample in the run: its group's start plus its rank.
            starts = np.cumsum(counts) - counts
            index = np.arange(total) - np.repeat(starts - begin, counts)
            run_stamps = run.timestamps_ms[index]
            keep = (run_stamps >= start_ms) & (run_stamps <= end_ms)
            owners.append(owner[keep])
            stamps.append(run_stamps[keep])
            values.append(run.values[index[keep]])
        if not owners:
            empty = np.empty(0, dtype=np.int64)
            return HeadRead(empty, empty, np.empty(0, dtype=np.float64))
        owner = np.concatenate(owners)
        # Group by owner while keeping run order (older runs first), so arrival order survives.
        order = np.argsort(owner, kind="stable")
        return HeadRead(owner[order], np.concatenate(stamps)[order], np.concatenate(values)[order])


def _merge_runs(runs: list[_Run]) -> _Run:
    """Merge runs sorted by id into one, keeping older runs' samples first within a series."""
    size = sum(run.size for run in runs)
    groups = int(max(run.ids[-1] for run in runs if run.size)) + 1
    counts = [np.bincount(run.ids, minlength=groups) for run in runs]
    next_slot = np.cumsum(sum(counts)) - sum(counts)
    ids = np.empty(size, dtype=np.uint32)
    stamps = np.empty(size, dtype=np.int64)
    values = np.empty(size, dtype=np.float64)
    for run, run_counts in zip(runs, counts):
        if not run.size:
            continue
        boundaries = np.flatnonzero(np.r_[True, run.ids[1:] != run.ids[:-1]])
        group_start = np.repeat(boundaries, np.diff(np.r_[boundaries, run.size]))
        destination = next_slot[run.ids] + (np.arange(run.size) - group_start)
        ids[destination] = run.ids
        stamps[destination] = run.timestamps_ms
        values[destination] = run.values
        next_slot += run_counts
    return _Run(ids, stamps, values)
