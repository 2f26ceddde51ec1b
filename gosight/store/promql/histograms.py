"""histogram_quantile and histogram_fraction over classic histograms (`le` bucket series)."""

from __future__ import annotations

import math

import numpy as np

from gosight.model import METRIC_NAME, Labels
from gosight.store.promql import nodes
from gosight.store.promql.context import EvalContext
from gosight.store.promql.format import go_float
from gosight.store.promql.values import Vector, get_label, go_quote

BUCKET_LABEL = "le"
# Bucket counts closer than this relative difference are treated as equal, which hides
# rounding noise from rate() over the buckets.
SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308
_MONOTONICITY_INFO = ("input to histogram_quantile needed to be fixed for monotonicity (see "
                      "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
                      "for metric name ")


class BucketGroups:
    """The bucket series of a vector grouped into histograms, bounds ascending."""

    def __init__(self, ctx: EvalContext, node: nodes.Call, vector: Vector):
        index: dict[Labels, int] = {}
        self.labels: list[Labels] = []
        self.names: list[str] = []
        members: list[list[tuple[float, int]]] = []
        for row, labels in enumerate(vector.labels):
            name = get_label(labels, METRIC_NAME)
            bound = _parse_bound(get_label(labels, BUCKET_LABEL))
            if bound is None:
                ctx.warn(f'bucket label "le" is missing or has a malformed value of '
                         f'{go_quote(get_label(labels, BUCKET_LABEL))} for metric name {go_quote(name)}',
                         node.args[-1].pos)
                continue
            key = tuple(pair for pair in labels if pair[0] not in (METRIC_NAME, BUCKET_LABEL))
            group = index.get(key)
            if group is None:
                group = index[key] = len(self.labels)
                self.labels.append(key)
                self.names.append(name)
                members.append([])
            members[group].append((bound, row))
        self.members = [sorted(group) for group in members]


def _parse_bound(text: str) -> float | None:
    try:
        return float(text.strip().replace("Inf", "inf")) if text else None
    except ValueError:
        return None


def _almost_equal(a: np.ndarray, b: np.ndarray, epsilon: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        total = np.abs(a) + np.abs(b)
        diff = np.abs(a - b)
        tiny = (a == 0) | (b == 0) | (total < _MIN_NORMAL)
        relative = diff / np.minimum(total, np.finfo(np.float64).max)
        return (a == b) | np.where(tiny, diff < epsilon * _MIN_NORMAL, relative < epsilon)


def _coalesce(bounds: list[float], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the rows of buckets with equal bounds; `counts` is [buckets, steps]."""
    unique_bounds: list[float] = []
    rows: list[np.ndarray] = []
    for bound, row in zip(bounds, counts):
        if unique_bounds and unique_bounds[-1] == bound:
            rows[-1] = rows[-1] + row
        else:
            unique_bounds.append(bound)
            rows.append(row.astype(np.float64).copy())
    return np.array(unique_bounds), np.array(rows)


def _make_monotonic(counts: np.ndarray) -> np.ndarray:
    """Remove decreases between buckets in place; return which columns needed a forced fix."""
    forced = np.zeros(counts.shape[1], dtype=bool)
    previous = counts[0].copy()
    for row in range(1, counts.shape[0]):
        current = counts[row]
        same = current == previous
        close = ~same & _almost_equal(previous, current, SMALL_DELTA_TOLERANCE)
        lower = ~same & ~close & (current < previous)
        fix = close | lower
        counts[row] = np.where(fix, previous, current)
        forced |= lower
        previous = np.where(same | fix, previous, current)
    return forced


def bucket_quantile(q: np.ndarray, bounds: list[float], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of one classic histogram per column of `counts` ([buckets, steps], bounds ascending).

    Return the values and, per column, whether bucket counts had to be made monotonic.
    """
    steps = counts.shape[1]
    forced = np.zeros(steps, dtype=bool)
    result = np.full(steps, np.nan)
    if bounds[-1] != math.inf:
        return _edge_quantiles(q, result), forced
    bound_array, counts = _coalesce(bounds, counts)
    if bound_array.shape[0] < 2:
        return _edge_quantiles(q, result), forced
    forced = _make_monotonic(counts)
    observations = counts[-1]
    with np.errstate(all="ignore"):
        rank = q * observations
        # The first bucket, among all but the last, whose cumulative count reaches the rank.
        reached = counts[:-1] >= rank[None, :]
        bucket = np.where(reached.any(axis=0), reached.argmax(axis=0), bound_array.shape[0] - 1)
        last = bound_array.shape[0] - 1
        start = np.where(bucket > 0, bound_array[np.maximum(bucket - 1, 0)], 0.0)
        end = bound_array[bucket]
        below = np.where(bucket > 0, counts[np.maximum(bucket - 1, 0), np.arange(steps)], 0.0)
        in_bucket = counts[bucket, np.arange(steps)] - below
        value = start + (end - start) * ((rank - below) / in_bucket)
        value = np.where(bucket == last, bound_array[last - 1], value)
        value = np.where((bucket == 0) & (bound_array[0] <= 0), bound_array[0], value)
        value = np.where((observations == 0) | np.isnan(observations), np.nan, value)
    return _edge_quantiles(q, value), forced


def _edge_quantiles(q: np.ndarray, value: np.ndarray) -> np.ndarray:
    value = np.where(q < 0, -np.inf, value)
    value = np.where(q > 1, np.inf, value)
    return np.where(np.isnan(q), np.nan, value)


def histogram_quantile(ctx: EvalContext, node: nodes.Call, q: np.ndarray, vector: Vector) -> Vector:
    invalid = np.isnan(q) | (q < 0) | (q > 1)
    if invalid.any() and len(vector):
        ctx.warn(f"quantile value should be between 0 and 1, got {go_float(q[invalid][0])}", node.args[0].pos)
    return _per_histogram(ctx, node, vector, lambda bounds, counts, columns: bucket_quantile(q[columns], bounds,
                                                                                             counts))


def histogram_fraction(ctx: EvalContext, node: nodes.Call, lower: np.ndarray, upper: np.ndarray,
                       vector: Vector) -> Vector:
    def fraction(bounds: list[float], counts: np.ndarray, columns: np.ndarray):
        return bucket_fraction(lower[columns], upper[columns], bounds, counts), np.zeros(columns.shape, dtype=bool)

    return _per_histogram(ctx, node, vector, fraction)


def bucket_fraction(lower: np.ndarray, upper: np.ndarray, bounds: list[float], counts: np.ndarray) -> np.ndarray:
    """Estimate the share of observations in (lower, upper] of classic histograms.

    Observations are assumed to spread linearly inside each bucket. The first bucket
    starts at 0 when its bound is positive. The +Inf bucket's observations count as
    above every finite x.
    """
    steps = counts.shape[1]
    if bounds[-1] != math.inf:
        return np.full(steps, np.nan)
    bound_array, counts = _coalesce(bounds, counts)
    _make_monotonic(counts)
    total = counts[-1]
    below_upper = _cumulative_at(upper, bound_array, counts)
    below_lower = _cumulative_at(lower, bound_array, counts)
    with np.errstate(all="ignore"):
        share = (below_upper - below_lower) / total
    return np.where((total == 0) | np.isnan(lower) | np.isnan(upper), np.nan, share)


def _cumulative_at(x: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Estimated number of observations <= x per column, for ascending bounds ending in +Inf."""
    finite = bounds[:-1]
    out = np.zeros(counts.shape[1])
    for column in range(counts.shape[1]):
        value = float(x[column])
        cumulative = counts[:, column]
        if value == math.inf:
            out[column] = cumulative[-1]
            continue
        if value == -math.inf or finite.size == 0:
            continue
        if value >= finite[-1]:
            out[column] = cumulative[-2]
            continue
        index = int(np.searchsorted(finite, value, side="left"))
        below = cumulative[index - 1] if index > 0 else 0.0
        if index > 0:
            edge = finite[index - 1]
        elif finite[0] > 0:
            edge = 0.0
        else:
            edge = -math.inf
        if not math.isfinite(edge) or value <= edge:
            out[column] = below
            continue
        out[column] = below + (cumulative[index] - below) * ((value - edge) / (finite[index] - edge))
    return out


def _per_histogram(ctx: EvalContext, node: nodes.Call, vector: Vector, compute) -> Vector:
    groups = BucketGroups(ctx, node, vector)
    steps = vector.steps
    values = np.full((len(groups.labels), steps), np.nan)
    present = np.zeros((len(groups.labels), steps), dtype=bool)
    for group, members in enumerate(groups.members):
        rows = np.array([row for _, row in members])
        bounds = [bound for bound, _ in members]
        member_present = vector.present[rows]
        # Columns with the same set of buckets present are computed together.
        patterns: dict[bytes, list[int]] = {}
        for column in np.flatnonzero(member_present.any(axis=0)):
            patterns.setdefault(member_present[:, column].tobytes(), []).append(int(column))
        for key, columns in patterns.items():
            used = np.frombuffer(key, dtype=bool)
            column_array = np.array(columns)
            result, forced = compute([b for b, keep in zip(bounds, used) if keep],
                                     vector.values[rows[used]][:, column_array], column_array)
            values[group, column_array] = result
            present[group, column_array] = True
            if forced.any():
                ctx.info(_MONOTONICITY_INFO + go_quote(groups.names[group]), node.args[-1].pos)
    return Vector(groups.labels, values, present).compact()
