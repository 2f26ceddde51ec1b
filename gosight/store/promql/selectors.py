"""Series selection and sample lookup: instant selectors with lookback, and range windows.

Each selector reads its series' samples once, for the span that all steps of the query
need, and then locates every step's sample or window with one vectorised binary search
over all series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gosight.model import Labels, Matcher, metric_name, stale_mask
from gosight.store.promql import nodes
from gosight.store.promql.context import EvalContext
from gosight.store.promql.values import RangeVector, Vector


@dataclass
class SampleSet:
    """Samples of several series in flat arrays; series i owns [offsets[i], offsets[i + 1])."""

    labels: list[Labels]
    timestamps_ms: np.ndarray
    values: np.ndarray
    offsets: np.ndarray

    def without_stale(self) -> SampleSet:
        stale = stale_mask(self.values)
        if not stale.any():
            return self
        keep = ~stale
        kept_before = np.concatenate([[0], np.cumsum(keep)])
        return SampleSet(self.labels, self.timestamps_ms[keep], self.values[keep], kept_before[self.offsets])


def resolve_at(ctx: EvalContext, at: nodes.AtModifier | None) -> int | None:
    if at is None:
        return None
    if at.kind == nodes.AT_START:
        return ctx.start_ms
    if at.kind == nodes.AT_END:
        return ctx.end_ms
    return at.time_ms


def selector_times(ctx: EvalContext, selector: nodes.VectorSelector | nodes.Subquery,
                   times: np.ndarray) -> np.ndarray:
    """Return the time each step reads at: the `@` time or the step time, minus the offset."""
    at_ms = resolve_at(ctx, selector.at)
    base = np.full(times.shape, at_ms, dtype=np.int64) if at_ms is not None else times
    return base - selector.offset_ms


def fetch(ctx: EvalContext, selector: nodes.VectorSelector, start_ms: int, end_ms: int) -> SampleSet:
    """Read the samples with start_ms <= t <= end_ms of every series the selector matches."""
    found: dict[int, Labels] = {}
    for group in selector.matcher_groups:
        matchers = _usable_matchers(group)
        if matchers is None:
            continue
        for series_id, labels in ctx.store.select_series(matchers, start_ms, end_ms):
            found[series_id] = labels
    series = sorted(found.items(), key=lambda item: item[1])
    timestamps, values, offsets = ctx.store.read_flat([series_id for series_id, _ in series], start_ms, end_ms)
    ctx.count_samples(int(offsets[-1]))
    return SampleSet([labels for _, labels in series], timestamps, values, offsets)


def _usable_matchers(group: tuple[Matcher, ...]) -> tuple[Matcher, ...] | None:
    """Drop matchers whose value contains bytes that are not UTF-8; return None when nothing can match.

    Stored labels are always valid UTF-8, so such an equality is always false and such an
    inequality always true.
    """
    kept = []
    for matcher in group:
        if not any(0xDC80 <= ord(char) <= 0xDCFF for char in matcher.value):
            kept.append(matcher)
        elif matcher.op in ("=", "=~"):
            # NOTE: a regular expression that mixes such bytes with alternatives is treated
            # as matching nothing.
            return None
    return tuple(kept)


def search(samples: SampleSet, queries: np.ndarray, side: str) -> np.ndarray:
    """Binary-search each series' timestamps for its row of `queries` ([series, steps]).

    Return global indexes into the flat arrays, as np.searchsorted would within each
    series, shifted by the series' offset.
    """
    series_count = len(samples.labels)
    if series_count == 0 or queries.size == 0:
        return np.zeros(queries.shape, dtype=np.int64)
    timestamps = samples.timestamps_ms
    low = min(int(queries.min()), int(timestamps.min()) if timestamps.size else int(queries.min())) - 1
    high = max(int(queries.max()), int(timestamps.max()) if timestamps.size else int(queries.max())) + 1
    span = high - low + 1
    # One search per series costs a few microseconds. The banded search below costs a few
    # nanoseconds per sample, so it is faster only when series have few samples.
    per_series = timestamps.size >= 1000 * series_count
    if not per_series and span * series_count < (1 << 62):
        # One search over all series: shift series i's timestamps into their own band.
        band = np.repeat(np.arange(series_count, dtype=np.int64), np.diff(samples.offsets)) * span
        keys = (timestamps - low) + band
        query_keys = (queries - low) + (np.arange(series_count, dtype=np.int64) * span)[:, None]
        return np.searchsorted(keys, query_keys.ravel(), side=side).reshape(queries.shape)
    result = np.empty(queries.shape, dtype=np.int64)
    offsets = samples.offsets.tolist()
    for row in range(series_count):
        begin, end = offsets[row], offsets[row + 1]
        result[row] = timestamps[begin:end].searchsorted(queries[row], side=side)
        result[row] += begin
    return result


def instant_selector(ctx: EvalContext, selector: nodes.VectorSelector, times: np.ndarray,
                     keep_timestamps: bool = False) -> Vector:
    """Evaluate an instant vector selector: each step takes the newest sample in (t - lookback, t]."""
    read_at = selector_times(ctx, selector, times)
    samples = fetch(ctx, selector, int(read_at.min()) - ctx.lookback_ms + 1, int(read_at.max()))
    series_count = len(samples.labels)
    if series_count == 0:
        return Vector.empty(times.shape[0])

    queries = np.broadcast_to(read_at, (series_count, times.shape[0]))
    index = search(samples, queries, "right") - 1
    first = samples.offsets[:-1][:, None]
    found = index >= first
    safe = np.where(found, index, 0)
    if samples.values.size == 0:
        return Vector.empty(times.shape[0])
    sample_ms = samples.timestamps_ms[safe]
    values = samples.values[safe]
    present = found & (sample_ms > queries - ctx.lookback_ms) & ~stale_mask(values)
    ctx.count_samples(int(present.sum()))
    vector = Vector(samples.labels, values, present, sample_ms if keep_timestamps else None)
    return vector.compact()


def range_selector(ctx: EvalContext, node: nodes.MatrixSelector, times: np.ndarray) -> RangeVector:
    """Evaluate a range selector: each step's window is (t - range, t], without staleness markers."""
    read_at = selector_times(ctx, node.selector, times)
    samples = fetch(ctx, node.selector, int(read_at.min()) - node.range_ms + 1, int(read_at.max()))
    return windows_over(samples.without_stale(), read_at, node.range_ms)


def windows_over(samples: SampleSet, window_end_ms: np.ndarray, range_ms: int) -> RangeVector:
    series_count = len(samples.labels)
    steps = window_end_ms.shape[0]
    ends = np.broadcast_to(window_end_ms, (series_count, steps))
    # Both edges in one search per series: each call has a fixed cost worth halving.
    edges = search(samples, np.concatenate([ends - range_ms, ends], axis=1), "right")
    lo, hi = edges[:, :steps], edges[:, steps:]
    return RangeVector(samples.labels, samples.timestamps_ms, samples.values, samples.offsets, lo, hi,
                       window_end_ms, range_ms, [metric_name(labels) for labels in samples.labels])
