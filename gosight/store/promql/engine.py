"""The engine's entry points: instant and range queries with their limits."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np

from gosight.model import Labels
from gosight.store.metrics_duckdb import MetricStore
from gosight.store.promql import nodes
from gosight.store.promql.context import EvalContext
from gosight.store.promql.errors import BadQueryError
from gosight.store.promql.evaluator import Evaluator
from gosight.store.promql.parse import parse_query

# Dashboards send the same queries again on every refresh. Trees are never changed
# after parsing, so threads can share them; a failed parse is not cached.
_parse_cached = functools.lru_cache(maxsize=1024)(parse_query)
from gosight.store.promql.values import RangeVector, Scalar, String

VECTOR = "vector"
MATRIX = "matrix"
SCALAR = "scalar"
STRING = "string"


@dataclass
class Series:
    """One series of a result: its labels and its points (ms timestamps, float values)."""

    labels: Labels
    timestamps_ms: np.ndarray
    values: np.ndarray


@dataclass
class QueryResult:
    """The result of a query, shaped like Prometheus' API data.

    `result_type` is "vector" (each series has one point, at the query time), "matrix",
    "scalar" or "string". `value` is the scalar or string and `time_ms` its time.
    """

    result_type: str
    series: list[Series] = field(default_factory=list)
    value: float | str | None = None
    time_ms: int = 0
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)


class Engine:
    """Evaluates PromQL over a MetricStore; thread-safe, one evaluation per call."""

    def __init__(self, store: MetricStore, *, lookback_ms: int = 300_000, max_samples: int = 50_000_000,
                 timeout_s: float = 120.0, max_points_per_series: int = 11_000):
        self.store = store
        self.lookback_ms = int(lookback_ms)
        self.max_samples = int(max_samples)
        self.timeout_s = float(timeout_s)
        self.max_points_per_series = int(max_points_per_series)

    def parse(self, query: str) -> nodes.Node:
        return parse_query(query)

    def instant(self, query: str, time_ms: int, *, timeout_s: float | None = None,
                lookback_ms: int | None = None) -> QueryResult:
        """Evaluate `query` at one time; a range selector or subquery at the top gives a matrix."""
        tree = _parse_cached(query)
        ctx = self._context(query, time_ms, time_ms, 0, timeout_s, lookback_ms)
        times = np.array([time_ms], dtype=np.int64)
        value = Evaluator(ctx).evaluate(tree, times)
        result = _instant_result(value, time_ms)
        result.warnings, result.infos = ctx.warnings, ctx.infos
        return result

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int, *, timeout_s: float | None = None,
              lookback_ms: int | None = None) -> QueryResult:
        """Evaluate `query` at start, start + step, ... up to end; the result is a matrix."""
        if step_ms <= 0:
            raise BadQueryError("zero or negative query resolution step widths are not accepted. "
                                "Try a positive integer")
        if end_ms < start_ms:
            raise BadQueryError("end timestamp must not be before start time")
        # The same bound as Prometheus: the number of steps after the first may not exceed the limit.
        points = (end_ms - start_ms) // step_ms + 1
        if points - 1 > self.max_points_per_series:
            raise BadQueryError(f"exceeded maximum resolution of {self.max_points_per_series:,} points per "
                                "timeseries. Try decreasing the query resolution (?step=XX)")
        tree = _parse_cached(query)
        if tree.value_type not in (nodes.SCALAR, nodes.VECTOR):
            kind = "range vector" if tree.value_type == nodes.MATRIX else tree.value_type
            raise BadQueryError(f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector')
        ctx = self._context(query, start_ms, end_ms, step_ms, timeout_s, lookback_ms)
        times = start_ms + np.arange(points, dtype=np.int64) * step_ms
        value = Evaluator(ctx).evaluate(tree, times)
        result = _range_result(value, times)
        result.warnings, result.infos = ctx.warnings, ctx.infos
        return result

    def _context(self, query: str, start_ms: int, end_ms: int, step_ms: int, timeout_s: float | None,
                 lookback_ms: int | None) -> EvalContext:
        timeout = self.timeout_s if timeout_s is None else min(float(timeout_s), self.timeout_s)
        return EvalContext(store=self.store, query=query, start_ms=int(start_ms), end_ms=int(end_ms),
                           step_ms=int(step_ms), lookback_ms=int(lookback_ms or self.lookback_ms),
                           max_samples=self.max_samples, timeout_s=timeout,
                           deadline=time.monotonic() + timeout)


def _instant_result(value, time_ms: int) -> QueryResult:
    if isinstance(value, Scalar):
        return QueryResult(SCALAR, value=float(value.values[0]), time_ms=time_ms)
    if isinstance(value, String):
        return QueryResult(STRING, value=value.value, time_ms=time_ms)
    if isinstance(value, RangeVector):
        series = []
        for row, labels in enumerate(value.labels):
            begin, end = int(value.lo[row, 0]), int(value.hi[row, 0])
            if end > begin:
                series.append(Series(labels, value.timestamps_ms[begin:end], value.values[begin:end]))
        series.sort(key=lambda item: item.labels)
        return QueryResult(MATRIX, series, time_ms=time_ms)
    rows = value.order if value.order is not None else np.flatnonzero(value.present[:, 0])
    series = [Series(value.labels[int(row)], np.array([time_ms], dtype=np.int64), value.values[int(row), :1])
              for row in rows if value.present[int(row), 0]]
    if value.order is None:
        series.sort(key=lambda item: item.labels)
    return QueryResult(VECTOR, series, time_ms=time_ms)


def _range_result(value, times: np.ndarray) -> QueryResult:
    if isinstance(value, Scalar):
        return QueryResult(MATRIX, [Series((), times, value.values)])
    series = []
    for row, labels in enumerate(value.labels):
        present = value.present[row]
        if present.any():
            series.append(Series(labels, times[present], value.values[row][present]))
    series.sort(key=lambda item: item.labels)
    return QueryResult(MATRIX, series)
