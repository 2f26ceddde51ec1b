"""Vectorised kernels over the sample windows of a range vector.

A kernel gets many windows at once as a padded matrix: one row per window, one column
per position in the window, with a mask of the real samples. Running a loop over the
columns (or a numpy accumulate along them) processes every window in the same order as
Prometheus walks a window's samples, so sequential algorithms such as Kahan summation
give the same floating-point results, while the Python loop runs once per column rather
than once per window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

# Upper bound on the cells of one padded block, to keep memory flat for long windows.
BLOCK_CELLS = 1 << 22


def window_blocks(count: np.ndarray) -> Iterator[tuple[slice, int]]:
    """Split windows, given as one flat array of sample counts, into row blocks of at most BLOCK_CELLS cells.

    Yield each block's slice and its width (the longest window in it, at least 1).
    """
    total = count.shape[0]
    widest = max(1, int(count.max(initial=1)))
    rows = max(1, BLOCK_CELLS // widest)
    for start in range(0, total, rows):
        part = slice(start, min(total, start + rows))
        yield part, max(1, int(count[part].max(initial=1)))


def padded(source: np.ndarray, lo: np.ndarray, count: np.ndarray, width: int,
           fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Gather windows into a [windows, width] matrix; cells past a window's end hold `fill`."""
    columns = np.arange(width)
    mask = columns[None, :] < count[:, None]
    index = np.where(mask, lo[:, None] + columns[None, :], 0)
    if source.shape[0] == 0:
        matrix = np.full(mask.shape, fill, dtype=source.dtype)
    else:
        matrix = source[index]
        if fill is not None:
            matrix[~mask] = fill
    return matrix, mask


def neumaier_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kahan-Neumaier sums along each row; return (sum, compensation) per row.

    The running sums are a plain cumulative sum, and each step's rounding error follows
    from consecutive running sums, so both accumulate in the same order as the scalar
    algorithm. Zero padding leaves both results unchanged.
    """
    running = np.cumsum(matrix, axis=1)
    previous = np.empty_like(running)
    previous[:, 0] = 0.0
    previous[:, 1:] = running[:, :-1]
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.where(np.abs(previous) >= np.abs(matrix), (previous - running) + matrix,
                         (matrix - running) + previous)
        compensation = np.cumsum(error, axis=1)
    return running[:, -1], compensation[:, -1]


def kahan_sum_inc(increment: float, total: float, compensation: float) -> tuple[float, float]:
    """Add `increment` to a Kahan-Neumaier sum; return the new sum and compensation, as Prometheus' kahanSumInc."""
    new_total = total + increment
    if math.isinf(new_total):
        return new_total, 0.0
    if abs(total) >= abs(increment):
        compensation += (total - new_total) + increment
    else:
        compensation += (increment - new_total) + total
    return new_total, compensation


def kahan_sum_inc_arrays(increment: np.ndarray, total: np.ndarray,
                         compensation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise `kahan_sum_inc` over arrays."""
    with np.errstate(invalid="ignore", over="ignore"):
        new_total = total + increment
        step = np.where(np.abs(total) >= np.abs(increment), (total - new_total) + increment,
                        (increment - new_total) + total)
        new_compensation = np.where(np.isinf(new_total), 0.0, compensation + step)
    return new_total, new_compensation


def sum_values(values: list[float]) -> float:
    """Kahan-Neumaier sum of a sequence, returning the sum alone when it is infinite."""
    total, compensation = 0.0, 0.0
    for value in values:
        total, compensation = kahan_sum_inc(value, total, compensation)
    if math.isinf(total):
        return total
    return total + compensation


def mean_values(values: list[float]) -> float:
    """Mean of a non-empty sequence as Prometheus computes avg and avg_over_time.

    The direct sum / count is used while the running sum stays finite; from the first
    overflow on, an incremental mean takes over.
    """
    total, compensation = values[0], 0.0
    mean = 0.0
    incremental = False
    count = 1.0
    for value in values[1:]:
        count += 1.0
        if not incremental:
            new_total, new_compensation = kahan_sum_inc(value, total, compensation)
            if not math.isinf(new_total):
                total, compensation = new_total, new_compensation
                continue
            incremental = True
            mean = total / (count - 1)
            compensation /= count - 1
        ratio = (count - 1) / count
        mean, compensation = kahan_sum_inc(value / count, ratio * mean, ratio * compensation)
    if incremental:
        return mean + compensation
    return total / count + compensation / count


def mean_rows(matrix: np.ndarray, mask: np.ndarray, count: np.ndarray) -> np.ndarray:
    """`mean_values` for every row of a zero-padded matrix."""
    total, compensation = neumaier_rows(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = total / count + compensation / count
    # A non-finite running sum without NaN inputs means an overflow or an infinite input:
    # redo those rows with the exact sequential algorithm, which switches to an
    # incremental mean. A NaN input makes the mean NaN either way.
    has_nan = (np.isnan(matrix) & mask).any(axis=1)
    for row in np.flatnonzero(~np.isfinite(total) & ~has_nan):
        result[row] = mean_values(matrix[row][mask[row]].tolist())
    return result


def variance_rows(matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Population variance per row, with Welford's algorithm and Kahan-compensated mean."""
    rows = matrix.shape[0]
    count = np.zeros(rows)
    mean = np.zeros(rows)
    mean_c = np.zeros(rows)
    aux = np.zeros(rows)
    aux_c = np.zeros(rows)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for column in range(matrix.shape[1]):
            live = mask[:, column]
            if not live.any():
                break
            value = matrix[:, column]
            new_count = count + 1
            delta = value - (mean + mean_c)
            new_mean, new_mean_c = kahan_sum_inc_arrays(delta / new_count, mean, mean_c)
            new_aux, new_aux_c = kahan_sum_inc_arrays(delta * (value - (new_mean + new_mean_c)), aux, aux_c)
            count = np.where(live, new_count, count)
            mean = np.where(live, new_mean, mean)
            mean_c = np.where(live, new_mean_c, mean_c)
            aux = np.where(live, new_aux, aux)
            aux_c = np.where(live, new_aux_c, aux_c)
        return (aux + aux_c) / count


def quantile_sorted(sorted_values: np.ndarray, nan_count: np.ndarray, count: np.ndarray,
                    q: np.ndarray) -> np.ndarray:
    """Compute Prometheus' quantile per row, with NaNs sorting before all numbers.

    `sorted_values` contains each row's non-NaN values ascending, padded with NaN.
    `nan_count` is the number of NaNs of the row, `count` the number of all its values,
    and `q` has one value per row.
    """
    with np.errstate(invalid="ignore"):
        rank = q * (count - 1)
        lower = np.maximum(0, np.floor(rank))
        upper = np.minimum(count - 1, lower + 1)
        weight = rank - np.floor(rank)
    lower_value = _value_at_rank(sorted_values, nan_count, lower)
    upper_value = _value_at_rank(sorted_values, nan_count, upper)
    with np.errstate(invalid="ignore"):
        result = lower_value * (1 - weight) + upper_value * weight
    result = np.where(np.isnan(q) | (count == 0), np.nan, result)
    result = np.where(q < 0, -np.inf, result)
    return np.where(q > 1, np.inf, result)


def _value_at_rank(sorted_values: np.ndarray, nan_count: np.ndarray, rank: np.ndarray) -> np.ndarray:
    safe_rank = np.where(np.isfinite(rank), rank, 0).astype(np.int64)
    position = np.clip(safe_rank - nan_count, 0, max(0, sorted_values.shape[1] - 1))
    if sorted_values.shape[1] == 0:
        return np.full(rank.shape, np.nan)
    picked = np.take_along_axis(sorted_values, position[:, None], axis=1)[:, 0]
    return np.where(safe_rank < nan_count, np.nan, picked)


def sort_rows_nan_first(matrix: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row's real values; return (sorted non-NaN values with NaN padding, NaN count)."""
    nan = np.isnan(matrix) & mask
    nan_count = nan.sum(axis=1)
    keyed = np.where(mask & ~nan, matrix, np.nan)
    return np.sort(keyed, axis=1), nan_count


def scan_rows(matrix: np.ndarray, mask: np.ndarray, step: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> None:
    """Call `step(column_values, live_mask, column_index)` for each column that has a live cell."""
    for column in range(matrix.shape[1]):
        live = mask[:, column]
        if not live.any():
            break
        step(matrix[:, column], live, column)
