"""Functions over range vectors: rate, increase, the *_over_time family and friends.

Every kernel computes the result of all windows with enough samples at once. The
formulas follow Prometheus 3, including the extrapolation rules of rate and increase
and the Kahan summation of sums and means.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gosight.store.promql import nodes, windows
from gosight.store.promql.context import EvalContext
from gosight.store.promql.errors import ExecutionError
from gosight.store.promql.format import go_float
from gosight.store.promql.values import RangeVector, Vector, drop_metric_name, merge_same_labels

# Functions whose result keeps the metric name of the input series.
KEEPS_METRIC_NAME = frozenset({"last_over_time", "first_over_time"})

_COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


class Cells:
    """The windows of a range vector that hold at least a minimum number of samples, flattened."""

    def __init__(self, ctx: EvalContext, rv: RangeVector, minimum: int):
        counts = (rv.hi - rv.lo).ravel()
        self.ctx = ctx
        self.rv = rv
        self.index = np.flatnonzero(counts >= minimum)
        self.lo = rv.lo.ravel()[self.index]
        self.count = counts[self.index]
        self.hi = self.lo + self.count
        steps = rv.lo.shape[1]
        self.row = self.index // steps if steps else self.index
        self.step = self.index % steps if steps else self.index

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def blocks(self):
        """Yield (block slice, padded values, mask) over these windows."""
        for part, width in windows.window_blocks(self.count):
            # Long windows over many steps can take a while: honour the query deadline per block.
            self.ctx.check_deadline()
            matrix, mask = windows.padded(self.rv.values, self.lo[part], self.count[part], width)
            yield part, matrix, mask

    def padded_timestamps(self, part: slice, width: int) -> np.ndarray:
        matrix, _ = windows.padded(self.rv.timestamps_ms, self.lo[part], self.count[part], width, fill=0)
        return matrix


Kernel = Callable[[EvalContext, Cells, list[np.ndarray], np.ndarray, nodes.Call], np.ndarray]
_KERNELS: dict[str, tuple[int, Kernel]] = {}


def kernel(name: str, minimum: int = 1):
    def register(function: Kernel) -> Kernel:
        _KERNELS[name] = (minimum, function)
        return function

    return register


def is_range_function(name: str) -> bool:
    return name in _KERNELS


def evaluate(ctx: EvalContext, node: nodes.Call, rv: RangeVector, params: list[np.ndarray],
             times: np.ndarray) -> Vector:
    """Apply the range function `node.name` to every series and step of `rv`."""
    minimum, function = _KERNELS[node.name]
    series_count, steps = rv.lo.shape
    values = np.full((series_count, steps), np.nan)
    present = np.zeros((series_count, steps), dtype=bool)
    cells = Cells(ctx, rv, minimum)
    if len(cells):
        with np.errstate(all="ignore"):
            result = function(ctx, cells, params, times, node)
        values.ravel()[cells.index] = result
        present.ravel()[cells.index] = ~_dropped(result)
    labels = rv.labels if node.name in KEEPS_METRIC_NAME else [drop_metric_name(item) for item in rv.labels]
    return merge_same_labels(labels, values, present).compact()


# A kernel marks a window that yields no sample with this NaN payload, distinct from a
# computed NaN.
_DROP_BITS = np.uint64(0x7FF8DEADBEEF0001)


def _dropped(result: np.ndarray) -> np.ndarray:
    return result.view(np.uint64) == _DROP_BITS


def _drop_value() -> float:
    return float(np.array([_DROP_BITS], dtype=np.uint64).view(np.float64)[0])


DROP = _drop_value()


# Counting and selecting.

@kernel("count_over_time")
def _count(ctx, cells, params, times, node):
    return cells.count.astype(np.float64)


@kernel("present_over_time")
def _present(ctx, cells, params, times, node):
    return np.ones(len(cells))


@kernel("last_over_time")
def _last(ctx, cells, params, times, node):
    return cells.rv.values[cells.hi - 1]


@kernel("first_over_time")
def _first(ctx, cells, params, times, node):
    return cells.rv.values[cells.lo]


@kernel("ts_of_last_over_time")
def _ts_of_last(ctx, cells, params, times, node):
    return cells.rv.timestamps_ms[cells.hi - 1] / 1000.0


@kernel("ts_of_first_over_time")
def _ts_of_first(ctx, cells, params, times, node):
    return cells.rv.timestamps_ms[cells.lo] / 1000.0


# Sums, means and spreads.

@kernel("sum_over_time")
def _sum(ctx, cells, params, times, node):
    out = np.empty(len(cells))
    for part, matrix, _ in cells.blocks():
        total, compensation = windows.neumaier_rows(matrix)
        out[part] = np.where(np.isinf(total), total, total + compensation)
    return out


@kernel("avg_over_time")
def _avg(ctx, cells, params, times, node):
    out = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        out[part] = windows.mean_rows(matrix, mask, cells.count[part].astype(np.float64))
    return out


@kernel("min_over_time")
def _min(ctx, cells, params, times, node):
    return _reduce_ignoring_nan(cells, np.fmin)


@kernel("max_over_time")
def _max(ctx, cells, params, times, node):
    return _reduce_ignoring_nan(cells, np.fmax)


def _reduce_ignoring_nan(cells: Cells, ufunc: np.ufunc) -> np.ndarray:
    # Prometheus replaces a NaN by any later number, so NaN wins only when all values are NaN.
    out = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        matrix[~mask] = np.nan
        out[part] = ufunc.reduce(matrix, axis=1)
    return out


@kernel("stdvar_over_time")
def _stdvar(ctx, cells, params, times, node):
    out = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        out[part] = windows.variance_rows(matrix, mask)
    return out


@kernel("stddev_over_time")
def _stddev(ctx, cells, params, times, node):
    return np.sqrt(_stdvar(ctx, cells, params, times, node))


@kernel("quantile_over_time")
def _quantile(ctx, cells, params, times, node):
    q_per_step = params[0]
    q = q_per_step[cells.step]
    if np.any(np.isnan(q) | (q < 0) | (q > 1)):
        bad = q[np.isnan(q) | (q < 0) | (q > 1)][0]
        ctx.warn(f"quantile value should be between 0 and 1, got {go_float(bad)}", node.args[0].pos)
    out = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        ordered, nan_count = windows.sort_rows_nan_first(matrix, mask)
        out[part] = windows.quantile_sorted(ordered, nan_count, cells.count[part].astype(np.float64), q[part])
    return out


@kernel("mad_over_time")
def _mad(ctx, cells, params, times, node):
    out = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        count = cells.count[part].astype(np.float64)
        half = np.full(count.shape, 0.5)
        ordered, nan_count = windows.sort_rows_nan_first(matrix, mask)
        median = windows.quantile_sorted(ordered, nan_count, count, half)
        deviation = np.abs(matrix - median[:, None])
        ordered, nan_count = windows.sort_rows_nan_first(deviation, mask)
        result = windows.quantile_sorted(ordered, nan_count, count, half)
        # A NaN sample makes the deviation undefined rather than sorting to one end.
        out[part] = np.where(nan_count > 0, np.nan, result)
    return out


@kernel("ts_of_max_over_time")
def _ts_of_max(ctx, cells, params, times, node):
    return _timestamp_of_extreme(cells, np.greater_equal)


@kernel("ts_of_min_over_time")
def _ts_of_min(ctx, cells, params, times, node):
    return _timestamp_of_extreme(cells, np.less_equal)


def _timestamp_of_extreme(cells: Cells, better: np.ufunc) -> np.ndarray:
    # The newest of equal extremes wins, and a NaN only while nothing else was seen.
    out = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        stamps = cells.padded_timestamps(part, matrix.shape[1])
        best = matrix[:, 0].copy()
        best_ms = stamps[:, 0].copy()
        for column in range(1, matrix.shape[1]):
            value = matrix[:, column]
            take = mask[:, column] & (better(value, best) | np.isnan(best))
            best = np.where(take, value, best)
            best_ms = np.where(take, stamps[:, column], best_ms)
        out[part] = best_ms / 1000.0
    return out


# Changes between consecutive samples.

@kernel("changes")
def _changes(ctx, cells, params, times, node):
    values = cells.rv.values
    previous, current = values[:-1], values[1:]
    changed = (current != previous) & ~(np.isnan(current) & np.isnan(previous))
    return _pair_counts(cells, np.flatnonzero(changed) + 1)


@kernel("resets")
def _resets(ctx, cells, params, times, node):
    return _pair_counts(cells, _reset_positions(cells.rv.values))


def _reset_positions(values: np.ndarray) -> np.ndarray:
    """Return each j where values[j] < values[j - 1], in order: the sample after a counter reset."""
    return np.flatnonzero(values[1:] < values[:-1]) + 1


def _pairs_in_windows(cells: Cells, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, per window, where its flagged pairs begin in `positions` and how many it contains.

    Position j is the pair (j - 1, j). A window [lo, hi) contains the pairs lo+1 .. hi-1,
    so a pair across two series of the flat arrays never falls inside a window. Searching
    the few flagged positions costs far less than a running count over every sample.
    """
    first = np.searchsorted(positions, cells.lo + 1)
    return first, np.searchsorted(positions, cells.hi) - first


def _pair_counts(cells: Cells, positions: np.ndarray) -> np.ndarray:
    return _pairs_in_windows(cells, positions)[1].astype(np.float64)


# Rates.

@kernel("rate", minimum=2)
def _rate(ctx, cells, params, times, node):
    _note_non_counters(ctx, cells, node)
    return _extrapolated(cells, is_counter=True, is_rate=True)


@kernel("increase", minimum=2)
def _increase(ctx, cells, params, times, node):
    _note_non_counters(ctx, cells, node)
    return _extrapolated(cells, is_counter=True, is_rate=False)


@kernel("delta", minimum=2)
def _delta(ctx, cells, params, times, node):
    return _extrapolated(cells, is_counter=False, is_rate=False)


def _note_non_counters(ctx: EvalContext, cells: Cells, node: nodes.Call) -> None:
    # Usually every series is a counter, which a set of the distinct names shows at once.
    if all(not name or name.endswith(_COUNTER_SUFFIXES) for name in set(cells.rv.names)):
        return
    for row in np.unique(cells.row):
        name = cells.rv.names[row] if row < len(cells.rv.names) else ""
        if name and not name.endswith(_COUNTER_SUFFIXES):
            ctx.info("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "
                     f'"{name}"', node.args[0].pos)


def _extrapolated(cells: Cells, is_counter: bool, is_rate: bool) -> np.ndarray:
    rv = cells.rv
    first_value = rv.values[cells.lo]
    last_value = rv.values[cells.hi - 1]
    first_ms = rv.timestamps_ms[cells.lo]
    last_ms = rv.timestamps_ms[cells.hi - 1]
    result = last_value - first_value
    if is_counter:
        result = _add_reset_corrections(cells, result)

    range_end = rv.window_end_ms[cells.step]
    range_start = range_end - rv.range_ms
    to_start = (first_ms - range_start) / 1000.0
    to_end = (range_end - last_ms) / 1000.0
    sampled = (last_ms - first_ms) / 1000.0
    average_gap = sampled / (cells.count - 1)
    # Extrapolate to a range edge only when a sample is within 110% of the average gap
    # from it. Otherwise the series likely starts or ends inside the range, so extrapolate
    # by half a gap.
    threshold = average_gap * 1.1
    to_start = np.where(to_start >= threshold, average_gap / 2, to_start)
    if is_counter:
        # A counter cannot go below zero: stop the extrapolation where the line would cross it.
        to_zero = sampled * (first_value / result)
        limit = (result > 0) & (first_value >= 0) & (to_zero < to_start)
        to_start = np.where(limit, to_zero, to_start)
    to_end = np.where(to_end >= threshold, average_gap / 2, to_end)
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor = factor / (rv.range_ms / 1000.0)
    return result * factor


def _add_reset_corrections(cells: Cells, result: np.ndarray) -> np.ndarray:
    # At a counter reset the value before it is added back. The additions run one reset
    # after another in sample order, as in Prometheus, so the floating-point sums agree.
    values = cells.rv.values
    positions = _reset_positions(values)
    if positions.size == 0:
        return result
    first, count = _pairs_in_windows(cells, positions)
    windows_with_resets = np.flatnonzero(count)
    if windows_with_resets.size == 0:
        return result
    out = result.copy()
    corrections = values[positions - 1]
    first, count = first[windows_with_resets], count[windows_with_resets]
    for nth in range(int(count.max())):
        # One vectorised pass per reset rank: as many passes as the most resets in one window.
        active = count > nth
        out[windows_with_resets[active]] += corrections[first[active] + nth]
    return out


@kernel("irate", minimum=2)
def _irate(ctx, cells, params, times, node):
    return _instant_value(cells, is_rate=True)


@kernel("idelta", minimum=2)
def _idelta(ctx, cells, params, times, node):
    return _instant_value(cells, is_rate=False)


def _instant_value(cells: Cells, is_rate: bool) -> np.ndarray:
    rv = cells.rv
    last = rv.values[cells.hi - 1]
    previous = rv.values[cells.hi - 2]
    interval_ms = rv.timestamps_ms[cells.hi - 1] - rv.timestamps_ms[cells.hi - 2]
    if is_rate:
        # After a counter reset the new value itself is the increase.
        result = np.where(last < previous, last, last - previous)
        result = result / (interval_ms / 1000.0)
    else:
        result = last - previous
    return np.where(interval_ms == 0, DROP, result)


# Regression and smoothing.

@kernel("deriv", minimum=2)
def _deriv(ctx, cells, params, times, node):
    intercept_ms = cells.rv.timestamps_ms[cells.lo]
    slope, _ = _linear_regression(cells, intercept_ms)
    return slope


@kernel("predict_linear", minimum=2)
def _predict_linear(ctx, cells, params, times, node):
    duration_s = params[0][cells.step]
    slope, intercept = _linear_regression(cells, times[cells.step])
    return slope * duration_s + intercept


def _linear_regression(cells: Cells, intercept_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    slope = np.empty(len(cells))
    intercept = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        stamps = cells.padded_timestamps(part, matrix.shape[1])
        x = np.where(mask, (stamps - intercept_ms[part][:, None]) / 1e3, 0.0)
        n = cells.count[part].astype(np.float64)
        sum_x = np.add(*windows.neumaier_rows(x))
        sum_y = np.add(*windows.neumaier_rows(matrix))
        sum_xy = np.add(*windows.neumaier_rows(x * matrix))
        sum_x2 = np.add(*windows.neumaier_rows(x * x))
        cov_xy = sum_xy - sum_x * sum_y / n
        var_x = sum_x2 - sum_x * sum_x / n
        part_slope = cov_xy / var_x
        part_intercept = sum_y / n - part_slope * sum_x / n
        # Constant values give an exact flat line, unless they are infinite.
        first = matrix[:, :1]
        constant = np.all((matrix == first) | ~mask, axis=1)
        infinite = np.isinf(first[:, 0])
        part_slope = np.where(constant, np.where(infinite, np.nan, 0.0), part_slope)
        part_intercept = np.where(constant, np.where(infinite, np.nan, first[:, 0]), part_intercept)
        slope[part] = part_slope
        intercept[part] = part_intercept
    return slope, intercept


@kernel("double_exponential_smoothing", minimum=2)
def _double_exponential_smoothing(ctx, cells, params, times, node):
    smoothing = params[0][cells.step]
    trend = params[1][cells.step]
    bad_smoothing = (smoothing <= 0) | (smoothing >= 1) | np.isnan(smoothing)
    if bad_smoothing.any():
        raise ExecutionError("invalid smoothing factor. Expected: 0 < sf < 1, got: "
                             f"{go_float(smoothing[bad_smoothing][0])}")
    bad_trend = (trend <= 0) | (trend >= 1) | np.isnan(trend)
    if bad_trend.any():
        raise ExecutionError(f"invalid trend factor. Expected: 0 < tf < 1, got: {go_float(trend[bad_trend][0])}")
    out = np.empty(len(cells))
    for part, matrix, mask in cells.blocks():
        sf = smoothing[part]
        tf = trend[part]
        smoothed = matrix[:, 0].copy()
        previous = np.zeros_like(smoothed)
        slope = matrix[:, 1] - matrix[:, 0]
        for column in range(1, matrix.shape[1]):
            live = mask[:, column]
            scaled = sf * matrix[:, column]
            if column > 1:
                new_slope = tf * (smoothed - previous) + (1 - tf) * slope
            else:
                new_slope = slope
            new_smoothed = scaled + (1 - sf) * (smoothed + new_slope)
            slope = np.where(live, new_slope, slope)
            previous = np.where(live, smoothed, previous)
            smoothed = np.where(live, new_smoothed, smoothed)
        out[part] = smoothed
    return out
