"""Aggregation operators (sum, avg, topk, quantile, count_values ...) with by/without.

Series are mapped to group ids once per query; every step is then aggregated at once.
Sequential algorithms (Kahan sums, Welford variance) run over a tensor of
[member rank, group, step], so each group's members are combined in input order, as
Prometheus combines them, while numpy processes all groups and steps together.
"""

from __future__ import annotations

import hashlib

import numpy as np

from gosight.model import METRIC_NAME, Labels
from gosight.store.promql import nodes, windows
from gosight.store.promql.context import EvalContext
from gosight.store.promql.errors import ExecutionError
from gosight.store.promql.format import go_float, label_float
from gosight.store.promql.values import (Vector, go_quote, is_valid_label_name, merge_same_labels,
                                         with_label)

# Largest tensor, in cells, built to run a sequential algorithm over all groups at once.
_TENSOR_CELLS = 1 << 24


class Groups:
    """Group ids of a vector's series and each group's labels."""

    def __init__(self, labels: list[Labels], grouping: tuple[str, ...], without: bool):
        index: dict[Labels, int] = {}
        self.keys: list[Labels] = []
        ids = np.empty(len(labels), dtype=np.int64)
        wanted = set(grouping)
        for row, item in enumerate(labels):
            if without:
                key = tuple(pair for pair in item if pair[0] not in wanted and pair[0] != METRIC_NAME)
            else:
                key = tuple(pair for pair in item if pair[0] in wanted)
            found = index.get(key)
            if found is None:
                found = index[key] = len(self.keys)
                self.keys.append(key)
            ids[row] = found
        self.ids = ids

    def __len__(self) -> int:
        return len(self.keys)


def aggregate(ctx: EvalContext, node: nodes.Aggregate, vector: Vector, param) -> Vector:
    """Apply `node.op` to `vector`; `param` is the evaluated parameter (a Scalar, a String or None)."""
    op = node.op
    steps = vector.steps

    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        return _select(ctx, node, vector, param.values)
    if op == "count_values":
        return _count_values(node, vector, param.value)
    if len(vector) == 0:
        return Vector.empty(steps)

    groups = Groups(vector.labels, node.grouping, node.without)
    counts = np.zeros((len(groups), steps))
    np.add.at(counts, groups.ids, vector.present.astype(np.float64))
    present = counts > 0

    with np.errstate(all="ignore"):
        if op == "count":
            values = counts
        elif op == "group":
            values = np.ones_like(counts)
        elif op in ("min", "max"):
            values = _min_max(vector, groups, op)
        elif op == "sum":
            values = _sequential(vector, groups, _sum_rows)
        elif op == "avg":
            values = _sequential(vector, groups, _mean_rows)
        elif op in ("stddev", "stdvar"):
            values = _sequential(vector, groups, windows.variance_rows)
            if op == "stddev":
                values = np.sqrt(values)
        elif op == "quantile":
            values = _quantile(ctx, node, vector, groups, param.values)
        else:
            raise ExecutionError(f"aggregation {op!r} is not supported")
    return merge_same_labels(list(groups.keys), values, present)


def _min_max(vector: Vector, groups: Groups, op: str) -> np.ndarray:
    # A NaN loses to any number, so NaN results only when every member is NaN.
    ufunc = np.fmin if op == "min" else np.fmax
    out = np.full((len(groups), vector.steps), np.nan)
    ufunc.at(out, groups.ids, np.where(vector.present, vector.values, np.nan))
    return out


def _sum_rows(matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    total, compensation = windows.neumaier_rows(matrix)
    return np.where(np.isinf(total), total, total + compensation)


def _mean_rows(matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return windows.mean_rows(matrix, mask, mask.sum(axis=1).astype(np.float64))


def _member_ranks(groups: Groups) -> np.ndarray:
    order = np.argsort(groups.ids, kind="stable")
    sorted_ids = groups.ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    sizes = np.diff(np.r_[starts, sorted_ids.shape[0]])
    ranks = np.empty(order.shape[0], dtype=np.int64)
    ranks[order] = np.arange(order.shape[0]) - np.repeat(starts, sizes)
    return ranks


def _sequential(vector: Vector, groups: Groups, reduce_rows) -> np.ndarray:
    """Run `reduce_rows(matrix, mask)` with one row per (group, step) and members as columns."""
    steps = vector.steps
    ranks = _member_ranks(groups)
    width = int(ranks.max()) + 1
    group_count = len(groups)
    out = np.empty((group_count, steps))
    # Build the tensor for a slice of steps at a time to bound memory.
    steps_per_block = max(1, _TENSOR_CELLS // max(1, width * group_count))
    for begin in range(0, steps, steps_per_block):
        end = min(steps, begin + steps_per_block)
        tensor = np.zeros((group_count, end - begin, width))
        mask = np.zeros((group_count, end - begin, width), dtype=bool)
        present = vector.present[:, begin:end]
        tensor[groups.ids, :, ranks] = np.where(present, vector.values[:, begin:end], 0.0)
        mask[groups.ids, :, ranks] = present
        flat = reduce_rows(tensor.reshape(-1, width), mask.reshape(-1, width))
        out[:, begin:end] = flat.reshape(group_count, end - begin)
    return out


def _quantile(ctx: EvalContext, node: nodes.Aggregate, vector: Vector, groups: Groups,
              q: np.ndarray) -> np.ndarray:
    if np.any(np.isnan(q) | (q < 0) | (q > 1)):
        bad = q[np.isnan(q) | (q < 0) | (q > 1)][0]
        ctx.warn(f"quantile value should be between 0 and 1, got {go_float(bad)}", node.param.pos)
    group_count = len(groups)

    def reduce_rows(matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ordered, nan_count = windows.sort_rows_nan_first(matrix, mask)
        per_row_q = np.tile(q_block, group_count)
        return windows.quantile_sorted(ordered, nan_count, mask.sum(axis=1).astype(np.float64), per_row_q)

    # The quantile differs per step, so run the tensor one step block at a time with its q values.
    out = np.empty((group_count, vector.steps))
    for step in range(vector.steps):
        q_block = q[step:step + 1]
        single = Vector(vector.labels, vector.values[:, step:step + 1], vector.present[:, step:step + 1])
        out[:, step] = _sequential(single, groups, reduce_rows)[:, 0]
    return out


def _select(ctx: EvalContext, node: nodes.Aggregate, vector: Vector, param: np.ndarray) -> Vector:
    """topk, bottomk, limitk and limit_ratio: keep some of the input series, labels unchanged."""
    op = node.op
    if op == "limit_ratio":
        if np.isnan(param).any():
            raise ExecutionError("Ratio value is NaN")
        for bad in np.unique(param[(param < -1) | (param > 1)]):
            capped = 1.0 if bad > 0 else -1.0
            ctx.warn(f"ratio value should be between -1 and 1, got {go_float(bad)}, capping to {go_float(capped)}",
                     node.param.pos)
        param = np.clip(param, -1.0, 1.0)
    elif np.isnan(param).any():
        raise ExecutionError("Parameter value is NaN")
    if len(vector) == 0:
        return vector

    groups = Groups(vector.labels, node.grouping, node.without)
    present = vector.present
    if op == "limit_ratio":
        position = np.array([_label_hash_fraction(item) for item in vector.labels])[:, None]
        keep = np.where(param >= 0, position < param, position >= 1.0 + param)
        return _filtered(vector, present & keep, None)

    k = np.where(param >= float(2 ** 62), float(2 ** 62), param)
    k = np.trunc(np.where(np.isfinite(k), k, -1.0))
    if op == "limitk":
        ranks = _ranks_in_row_order(groups, present)
        return _filtered(vector, present & (ranks < k[None, :]), None)

    values = vector.values
    nan = np.isnan(values)
    primary = np.where(present, np.where(nan, 1, 0), 2)
    secondary = -values if op == "topk" else values
    secondary = np.where(nan | ~present, 0.0, secondary)
    group_ids = np.broadcast_to(groups.ids[:, None], values.shape)
    order = np.lexsort((secondary, primary, group_ids), axis=0)
    sizes = np.bincount(groups.ids, minlength=len(groups))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    sorted_groups = np.take_along_axis(group_ids, order, axis=0)
    rank_sorted = np.arange(values.shape[0])[:, None] - starts[sorted_groups]
    ranks = np.empty_like(rank_sorted)
    np.put_along_axis(ranks, order, rank_sorted, axis=0)
    keep = present & (ranks < k[None, :])
    output_order = None
    if vector.steps == 1:
        rows = np.flatnonzero(keep[:, 0])
        first_seen = {}
        for group in groups.ids:
            first_seen.setdefault(int(group), len(first_seen))
        group_rank = np.array([first_seen[int(group)] for group in groups.ids[rows]])
        output_order = rows[np.lexsort((ranks[rows, 0], group_rank))] if rows.size else rows
    return _filtered(vector, keep, output_order)


def _filtered(vector: Vector, present: np.ndarray, order: np.ndarray | None) -> Vector:
    kept = present.any(axis=1)
    rows = np.flatnonzero(kept)
    result = Vector([vector.labels[int(row)] for row in rows], vector.values[rows], present[rows])
    if order is not None:
        position = np.full(len(vector.labels), -1)
        position[rows] = np.arange(rows.shape[0])
        result.order = position[order]
    return result


def _ranks_in_row_order(groups: Groups, present: np.ndarray) -> np.ndarray:
    """Rank each present series among the present members of its group, in input order, per step."""
    ranks = np.zeros(present.shape, dtype=np.int64)
    seen = np.zeros((len(groups), present.shape[1]), dtype=np.int64)
    for row in range(present.shape[0]):
        group = groups.ids[row]
        ranks[row] = seen[group]
        seen[group] += present[row]
    return ranks


def _label_hash_fraction(labels: Labels) -> float:
    """Map a label set to [0, 1) with a stable hash, for limit_ratio's sampling."""
    text = "\xff".join(f"{name}\xfe{value}" for name, value in labels)
    digest = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / float(2 ** 64)


def _count_values(node: nodes.Aggregate, vector: Vector, label: str) -> Vector:
    if not is_valid_label_name(label):
        raise ExecutionError(f"invalid label name {go_quote(label)}")
    steps = vector.steps
    if len(vector) == 0:
        return Vector.empty(steps)
    groups = Groups(vector.labels, node.grouping, node.without)
    rows, columns = np.nonzero(vector.present)
    picked = vector.values[rows, columns]
    # Equal values must share one label, so group by the bit pattern of the value.
    bits = picked.view(np.uint64)
    unique_bits, value_index = np.unique(bits, return_inverse=True)
    texts = [label_float(value) for value in unique_bits.view(np.float64)]

    out_index: dict[Labels, int] = {}
    out_labels: list[Labels] = []
    pair_to_out: dict[tuple[int, int], int] = {}
    out_rows = np.empty(rows.shape[0], dtype=np.int64)
    for position, (group, text_index) in enumerate(zip(groups.ids[rows].tolist(), value_index.tolist())):
        key = (group, text_index)
        found = pair_to_out.get(key)
        if found is None:
            labels = with_label(groups.keys[group], label, texts[text_index])
            found = out_index.get(labels)
            if found is None:
                found = out_index[labels] = len(out_labels)
                out_labels.append(labels)
            pair_to_out[key] = found
        out_rows[position] = found
    counts = np.zeros((len(out_labels), steps))
    np.add.at(counts, (out_rows, columns), 1.0)
    return Vector(out_labels, counts, counts > 0)

