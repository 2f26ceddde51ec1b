"""The in-memory registry of series: label set to stable series id, and back."""

from __future__ import annotations

import threading

import numpy as np

from gosight.model import Labels

_UNSET_FIRST = np.iinfo(np.int64).max
_UNSET_LAST = np.iinfo(np.int64).min


class SeriesRegistry:
    """Thread-safe map from label sets to series ids, with each series' time span.

    Ids are dense integers from 0, so per-series state lives in numpy arrays indexed
    by id. A new series is `pending` until the writer has stored it; `take_pending`
    hands the pending ones to the writer, and `restore_pending` puts them back when
    the write failed, so a series is stored exactly once.
    """

    def __init__(self) -> None:
        self.ids: dict[Labels, int] = {}
        self._labels: list[Labels] = []
        self._pending: list[int] = []
        self._lock = threading.Lock()
        self._first_ms = np.full(1024, _UNSET_FIRST, dtype=np.int64)
        self._last_ms = np.full(1024, _UNSET_LAST, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._labels)

    def get_or_create(self, labels: Labels) -> int:
        found = self.ids.get(labels)
        if found is not None:
            return found
        with self._lock:
            found = self.ids.get(labels)
            if found is not None:
                return found
            series_id = len(self._labels)
            self._labels.append(labels)
            self.ids[labels] = series_id
            self._pending.append(series_id)
            self._grow(series_id + 1)
            return series_id

    def load(self, series_id: int, labels: Labels, first_ms: int, last_ms: int) -> None:
        """Add a series read back from the store; ids must arrive as 0, 1, 2, ..."""
        with self._lock:
            if series_id != len(self._labels):
                raise ValueError(f"series id {series_id} out of order; expected {len(self._labels)}")
            self._labels.append(labels)
            self.ids[labels] = series_id
            self._grow(series_id + 1)
            self._first_ms[series_id] = first_ms
            self._last_ms[series_id] = last_ms

    def labels(self, series_id: int) -> Labels:
        return self._labels[series_id]

    def take_pending(self) -> list[tuple[int, Labels]]:
        with self._lock:
            pending, self._pending = self._pending, []
        return [(series_id, self._labels[series_id]) for series_id in pending]

    def restore_pending(self, items: list[tuple[int, Labels]]) -> None:
        with self._lock:
            self._pending[:0] = [series_id for series_id, _ in items]

    def note_samples(self, series_ids: np.ndarray, timestamps_ms: np.ndarray) -> None:
        """Widen each series' time span to cover the given samples."""
        if series_ids.size == 0:
            return
        with self._lock:
            np.minimum.at(self._first_ms, series_ids, timestamps_ms)
            np.maximum.at(self._last_ms, series_ids, timestamps_ms)

    def active_between(self, series_ids: np.ndarray, start_ms: int | None, end_ms: int | None) -> np.ndarray:
        """Keep the ids whose time span overlaps [start_ms, end_ms]; series without samples never match."""
        keep = self._last_ms[series_ids] != _UNSET_LAST
        if start_ms is not None:
            keep &= self._last_ms[series_ids] >= start_ms
        if end_ms is not None:
            keep &= self._first_ms[series_ids] <= end_ms
        return series_ids[keep]

    def span(self, series_id: int) -> tuple[int, int]:
        return int(self._first_ms[series_id]), int(self._last_ms[series_id])

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        count = len(self._labels)
        return self._first_ms[:count].copy(), self._last_ms[:count].copy()

    def _grow(self, size: int) -> None:
        if size <= self._first_ms.shape[0]:
            return
        capacity = max(size, self._first_ms.shape[0] * 2)
        self._first_ms = np.concatenate(
            [self._first_ms, np.full(capacity - self._first_ms.shape[0], _UNSET_FIRST, dtype=np.int64)]
        )
        self._last_ms = np.concatenate(
            [self._last_ms, np.full(capacity - self._last_ms.shape[0], _UNSET_LAST, dtype=np.int64)]
        )
