"""In-memory postings: for each label name and value, the ids of the series that carry it.

Series selection is the first step of every query, so it must not cost a database
round trip: equality matchers become dictionary lookups, and regular expressions
run once per distinct value of a label rather than once per series. Regular
expressions are evaluated by DuckDB's RE2, the engine Prometheus uses, and the
matching values are cached per pattern.

Contract: one writer thread calls `add`; any thread may call `select`. Readers see
series added before their call started, or a consistent subset of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from gosight.model import Labels, Matcher

# Evaluates a regular expression (fully anchored, dot matches newline) against many
# strings and returns the ones that match.
RegexFilter = Callable[[str, list[str]], list[str]]


class _Posting:
    __slots__ = ("ids", "_array")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self._array: np.ndarray | None = None

    def add(self, series_id: int) -> None:
        self.ids.append(series_id)
        self._array = None

    def array(self) -> np.ndarray:
        array = self._array
        if array is None:
            array = np.unique(np.asarray(self.ids, dtype=np.int64))
            self._array = array
        return array


class LabelIndex:
    """Label postings of every stored series."""

    def __init__(self, regex_filter: RegexFilter):
        self._regex_filter = regex_filter
        self._postings: dict[str, dict[str, _Posting]] = {}
        self._size = 0  # one more than the highest id added
        self._known = np.zeros(0, dtype=bool)  # ids added so far
        self._regex_cache: dict[tuple[str, str], tuple[int, frozenset[str]]] = {}
        self._empty_matches: dict[str, bool] = {}
        self._lock = threading.Lock()

    def add(self, items: Iterable[tuple[int, Labels]]) -> None:
        """Index stored series; each id is added once."""
        with self._lock:
            for series_id, labels in items:
                for name, value in labels:
                    values = self._postings.get(name)
                    if values is None:
                        values = self._postings[name] = {}
                    posting = values.get(value)
                    if posting is None:
                        posting = values[value] = _Posting()
                    posting.add(series_id)
                if series_id >= self._size:
                    self._size = series_id + 1
                if series_id >= self._known.size:
                    grown = np.zeros(max(series_id + 1, self._known.size * 2, 1024), dtype=bool)
                    grown[: self._known.size] = self._known
                    self._known = grown
                self._known[series_id] = True

    def select(self, matchers: Sequence[Matcher]) -> np.ndarray:
        """Return the sorted ids of the series that match every matcher."""
        with self._lock:
            size = self._size
            known = self._known[:size].copy()
            # A missing label reads as "", so the positive, non-empty matchers narrow fastest.
            ordered = sorted(matchers, key=lambda matcher: not _requires_label(matcher))
            selected: np.ndarray | None = None
            for matcher in ordered:
                mask = self._matcher_mask(matcher, size)
                selected = mask if selected is None else selected & mask
                if not selected.any():
                    break
        if selected is None:
            selected = known
        else:
            selected &= known
        return np.flatnonzero(selected).astype(np.int64)

    def _matcher_mask(self, matcher: Matcher, size: int) -> np.ndarray:
        values = self._postings.get(matcher.name, {})
        if matcher.op in ("=", "!="):
            matching = [matcher.value] if matcher.value in values else []
            matches_empty = matcher.value == ""
        else:
            matching = self._regex_values(matcher.name, matcher.value, values)
            matches_empty = self._empty_matches.get(matcher.value)
            if matches_empty is None:
                matches_empty = self._empty_matches[matcher.value] = bool(self._regex_filter(matcher.value, [""]))
        mask = np.zeros(size, dtype=bool)
        for value in matching:
            mask[values[value].array()] = True
        if matches_empty:
            # Series without the label have the value "", so they match too.
            has_label = np.zeros(size, dtype=bool)
            for posting in values.values():
                has_label[posting.array()] = True
            mask |= ~has_label
        if matcher.op in ("!=", "!~"):
            mask = ~mask
        return mask

    def _regex_values(self, name: str, pattern: str, values: dict[str, _Posting]) -> list[str]:
        cached = self._regex_cache.get((name, pattern))
        # Values of a label are only ever added, so only the new ones need matching.
        if cached is not None and cached[0] == len(values):
            return list(cached[1])
        all_values = list(values)
        checked = cached[0] if cached else 0
        found = set(cached[1]) if cached else set()
        found.update(self._regex_filter(pattern, all_values[checked:]))
        self._regex_cache[(name, pattern)] = (len(all_values), frozenset(found))
        if len(self._regex_cache) > 10_000:
            self._regex_cache.clear()
            self._empty_matches.clear()
        return list(found)


def _requires_label(matcher: Matcher) -> bool:
    return matcher.op == "=" and matcher.value != ""
