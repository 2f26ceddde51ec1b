"""Binary operators: arithmetic, comparisons and set operators, with vector matching.

Matching pairs the series of both sides once per query by signature: the `on` labels,
or all labels except the `ignoring` ones and the metric name. Prometheus' per-step
rules (a unique "one" side, no duplicate results) are then checked with presence
counts per signature and step.
"""

from __future__ import annotations

import numpy as np

from gosight.model import METRIC_NAME, Labels
from gosight.store.promql import nodes
from gosight.store.promql.errors import ExecutionError
from gosight.store.promql.values import (Scalar, Vector, drop_metric_name, format_labels, get_label,
                                         merge_same_labels)


def apply_op(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Apply an arithmetic or comparison operator elementwise; comparisons give booleans."""
    with np.errstate(all="ignore"):
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return left / right
        if op == "%":
            return np.fmod(left, right)
        if op == "^":
            return np.power(left, right)
        if op == "atan2":
            return np.arctan2(left, right)
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op == ">":
            return left > right
        if op == "<":
            return left < right
        if op == ">=":
            return left >= right
        if op == "<=":
            return left <= right
    raise ExecutionError(f"operator {op!r} is not supported")


def scalar_scalar(node: nodes.Binary, left: Scalar, right: Scalar) -> Scalar:
    result = apply_op(node.op, left.values, right.values)
    return Scalar(result.astype(np.float64))


def vector_scalar(node: nodes.Binary, vector: Vector, scalar: Scalar, scalar_on_left: bool) -> Vector:
    values = vector.values
    other = np.broadcast_to(scalar.values[None, :], values.shape)
    left, right = (other, values) if scalar_on_left else (values, other)
    result = apply_op(node.op, left, right)
    if node.op in nodes.COMPARISON_OPS:
        if node.return_bool:
            labels = [drop_metric_name(item) for item in vector.labels]
            return merge_same_labels(labels, result.astype(np.float64), vector.present.copy())
        # A filtering comparison keeps the vector's own value, whichever side it is on.
        return Vector(vector.labels, values, vector.present & result).compact()
    labels = [drop_metric_name(item) for item in vector.labels]
    return merge_same_labels(labels, result, vector.present.copy())


def negate(vector: Vector) -> Vector:
    labels = [drop_metric_name(item) for item in vector.labels]
    return merge_same_labels(labels, -vector.values, vector.present.copy())


def _signature(labels: Labels, on: bool, names: tuple[str, ...]) -> Labels:
    if on:
        wanted = set(names)
        return tuple(pair for pair in labels if pair[0] in wanted)
    excluded = set(names)
    excluded.add(METRIC_NAME)
    return tuple(pair for pair in labels if pair[0] not in excluded)


def _signature_ids(left: list[Labels], right: list[Labels], node: nodes.Binary) -> tuple[np.ndarray, np.ndarray, list[Labels]]:
    index: dict[Labels, int] = {}
    keys: list[Labels] = []

    def ids(labels: list[Labels]) -> np.ndarray:
        out = np.empty(len(labels), dtype=np.int64)
        for row, item in enumerate(labels):
            key = _signature(item, node.matching_on, node.matching_labels)
            found = index.get(key)
            if found is None:
                found = index[key] = len(keys)
                keys.append(key)
            out[row] = found
        return out

    return ids(left), ids(right), keys


def _presence_by_signature(ids: np.ndarray, present: np.ndarray, signature_count: int) -> np.ndarray:
    counts = np.zeros((signature_count, present.shape[1]), dtype=np.int64)
    np.add.at(counts, ids, present.astype(np.int64))
    return counts


def set_operation(node: nodes.Binary, left: Vector, right: Vector) -> Vector:
    left_ids, right_ids, keys = _signature_ids(left.labels, right.labels, node)
    if node.op == "or":
        left_by_sig = _presence_by_signature(left_ids, left.present, len(keys)) > 0
        right_present = right.present & ~left_by_sig[right_ids]
        labels = left.labels + right.labels
        values = np.concatenate([left.values, right.values])
        present = np.concatenate([left.present, right_present])
        return merge_same_labels(labels, values, present).compact()
    right_by_sig = _presence_by_signature(right_ids, right.present, len(keys)) > 0
    matched = right_by_sig[left_ids] if len(left) else np.zeros(left.present.shape, dtype=bool)
    keep = matched if node.op == "and" else ~matched
    return Vector(left.labels, left.values, left.present & keep).compact()


def vector_vector(node: nodes.Binary, left: Vector, right: Vector) -> Vector:
    steps = left.steps
    if len(left) == 0 or len(right) == 0:
        return Vector.empty(steps)
    swapped = node.card == "one-to-many"
    many, one = (right, left) if swapped else (left, right)
    many_ids, one_ids, keys = _signature_ids(many.labels, one.labels, node)
    both_sides = left.present.any(axis=0) & right.present.any(axis=0)

    one_counts = _presence_by_signature(one_ids, one.present, len(keys))
    duplicate = (one_counts > 1) & both_sides[None, :]
    if duplicate.any():
        _raise_duplicate_one_side(node, one, one_ids, keys, duplicate, swapped)

    many_rows, one_rows = _pairs(many_ids, one_ids, many.present, one.present)
    if many_rows.size == 0:
        return Vector.empty(steps)
    paired = many.present[many_rows] & one.present[one_rows] & both_sides[None, :]

    labels = [_result_labels(node, many.labels[i], one.labels[j]) for i, j in zip(many_rows.tolist(),
                                                                                   one_rows.tolist())]
    _check_unique_matches(node, many_ids[many_rows], labels, paired)

    many_values = many.values[many_rows]
    one_values = one.values[one_rows]
    left_values, right_values = (one_values, many_values) if swapped else (many_values, one_values)
    result = apply_op(node.op, left_values, right_values)
    if node.op in nodes.COMPARISON_OPS:
        if node.return_bool:
            values = result.astype(np.float64)
        else:
            values = left_values
            paired = paired & result
    else:
        values = result
    return merge_same_labels(labels, values, paired).compact()


def _pairs(many_ids: np.ndarray, one_ids: np.ndarray, many_present: np.ndarray,
           one_present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (many row, one row) for every pair with equal signatures that share a step."""
    signature_count = int(max(many_ids.max(initial=-1), one_ids.max(initial=-1))) + 1
    per_signature = np.bincount(one_ids, minlength=signature_count)
    if per_signature.max(initial=0) <= 1:
        # The usual case: at most one series per signature on the "one" side.
        one_of = np.full(signature_count, -1, dtype=np.int64)
        one_of[one_ids] = np.arange(one_ids.shape[0])
        candidates = one_of[many_ids]
        many_rows = np.flatnonzero(candidates >= 0)
        one_rows = candidates[many_rows]
    else:
        members: dict[int, list[int]] = {}
        for row, signature in enumerate(one_ids.tolist()):
            members.setdefault(signature, []).append(row)
        pairs = [(i, j) for i, signature in enumerate(many_ids.tolist()) for j in members.get(signature, ())]
        many_rows = np.array([i for i, _ in pairs], dtype=np.int64)
        one_rows = np.array([j for _, j in pairs], dtype=np.int64)
    if many_rows.size == 0:
        return many_rows, one_rows
    overlap = (many_present[many_rows] & one_present[one_rows]).any(axis=1)
    return many_rows[overlap], one_rows[overlap]


def _result_labels(node: nodes.Binary, many: Labels, one: Labels) -> Labels:
    labels = dict(many)
    if node.op in nodes.ARITHMETIC_OPS or node.return_bool:
        labels.pop(METRIC_NAME, None)
    if node.card == "one-to-one":
        if node.matching_on:
            wanted = set(node.matching_labels)
            labels = {name: value for name, value in labels.items() if name in wanted}
        else:
            for name in node.matching_labels:
                labels.pop(name, None)
    for name in node.include_labels:
        value = get_label(one, name)
        if value:
            labels[name] = value
        else:
            labels.pop(name, None)
    return tuple(sorted(labels.items()))


def _check_unique_matches(node: nodes.Binary, signatures: np.ndarray, labels: list[Labels],
                          paired: np.ndarray) -> None:
    if node.card == "one-to-one":
        keys = signatures
        message = "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    else:
        index: dict[tuple[int, Labels], int] = {}
        keys = np.array([index.setdefault((int(signature), item), len(index))
                         for signature, item in zip(signatures.tolist(), labels)], dtype=np.int64)
        message = "multiple matches for labels: grouping labels must ensure unique matches"
    counts = _presence_by_signature(keys, paired, int(keys.max(initial=-1)) + 1)
    if (counts > 1).any():
        raise ExecutionError(message)


def _raise_duplicate_one_side(node: nodes.Binary, one: Vector, one_ids: np.ndarray, keys: list[Labels],
                              duplicate: np.ndarray, swapped: bool) -> None:
    signature, step = (int(axis[0]) for axis in np.nonzero(duplicate))
    rows = [row for row in np.flatnonzero(one_ids == signature) if one.present[row, step]]
    first, second = sorted(one.labels[row] for row in rows[:2])
    side = "left" if swapped else "right"
    if node.matching_on:
        wanted = set(node.matching_labels)
        matched = tuple(pair for pair in first if pair[0] in wanted)
    else:
        matched = keys[signature]
    raise ExecutionError(
        f"found duplicate series for the match group {format_labels(matched)} on the {side} hand-side of the "
        f"operation: [{format_labels(first)}, {format_labels(second)}];many-to-many matching not allowed: "
        "matching labels must be unique on one side"
    )
