"""The tree walker: evaluates each node of a query for an array of step times."""

from __future__ import annotations

import numpy as np

from gosight.store.promql import aggregations, binary, functions, nodes, selectors
from gosight.store.promql.context import DEFAULT_SUBQUERY_STEP_MS, EvalContext
from gosight.store.promql.errors import ExecutionError
from gosight.store.promql.selectors import SampleSet
from gosight.store.promql.values import RangeVector, Scalar, String, Value, Vector


class Evaluator:
    def __init__(self, ctx: EvalContext):
        self.ctx = ctx

    def evaluate(self, node: nodes.Node, times: np.ndarray) -> Value:
        """Evaluate `node` at every time in `times` (int64 ms, ascending)."""
        self.ctx.check_deadline()
        if node.step_invariant and times.shape[0] > 1 and not isinstance(
                node, (nodes.NumberLiteral, nodes.StringLiteral)):
            # The value does not depend on the step: compute it once and repeat it.
            return _repeat(self._dispatch(node, times[:1]), times.shape[0])
        return self._dispatch(node, times)

    def selector(self, node: nodes.VectorSelector, times: np.ndarray, keep_timestamps: bool = False) -> Vector:
        if node.step_invariant and times.shape[0] > 1:
            return _repeat(selectors.instant_selector(self.ctx, node, times[:1], keep_timestamps), times.shape[0])
        return selectors.instant_selector(self.ctx, node, times, keep_timestamps)

    def _dispatch(self, node: nodes.Node, times: np.ndarray) -> Value:
        if isinstance(node, nodes.NumberLiteral):
            return Scalar(np.full(times.shape[0], node.value))
        if isinstance(node, nodes.StringLiteral):
            return String(node.value)
        if isinstance(node, nodes.Paren):
            return self.evaluate(node.expr, times)
        if isinstance(node, nodes.Unary):
            return self._unary(node, times)
        if isinstance(node, nodes.VectorSelector):
            return selectors.instant_selector(self.ctx, node, times)
        if isinstance(node, nodes.MatrixSelector):
            return selectors.range_selector(self.ctx, node, times)
        if isinstance(node, nodes.Subquery):
            return self._subquery(node, times)
        if isinstance(node, nodes.Call):
            return functions.call(self, node, times)
        if isinstance(node, nodes.Aggregate):
            return self._aggregate(node, times)
        if isinstance(node, nodes.Binary):
            return self._binary(node, times)
        raise ExecutionError(f"unsupported expression {type(node).__name__}")

    def _unary(self, node: nodes.Unary, times: np.ndarray) -> Value:
        value = self.evaluate(node.expr, times)
        if isinstance(value, Scalar):
            return Scalar(-value.values)
        return binary.negate(value)

    def _aggregate(self, node: nodes.Aggregate, times: np.ndarray) -> Vector:
        param = self.evaluate(node.param, times) if node.param is not None else None
        vector = self.evaluate(node.expr, times)
        result = aggregations.aggregate(self.ctx, node, vector, param)
        self.ctx.count_samples(int(result.present.sum()))
        return result

    def _binary(self, node: nodes.Binary, times: np.ndarray) -> Value:
        left = self.evaluate(node.lhs, times)
        right = self.evaluate(node.rhs, times)
        if isinstance(left, Scalar) and isinstance(right, Scalar):
            return binary.scalar_scalar(node, left, right)
        if isinstance(left, Vector) and isinstance(right, Scalar):
            return binary.vector_scalar(node, left, right, scalar_on_left=False)
        if isinstance(left, Scalar) and isinstance(right, Vector):
            return binary.vector_scalar(node, right, left, scalar_on_left=True)
        if node.op in nodes.SET_OPS:
            return binary.set_operation(node, left, right)
        result = binary.vector_vector(node, left, right)
        self.ctx.count_samples(int(result.present.sum()))
        return result

    def _subquery(self, node: nodes.Subquery, times: np.ndarray) -> RangeVector:
        step = node.step_ms or DEFAULT_SUBQUERY_STEP_MS
        read_at = selectors.selector_times(self.ctx, node, times)
        # Every inner step costs at least one sample, so reject oversized subqueries before allocating them.
        self.ctx.count_samples(subquery_step_count(read_at, node.range_ms, step))
        inner_times = subquery_times(read_at, node.range_ms, step)
        if inner_times.shape[0] == 0:
            empty = SampleSet([], np.empty(0, dtype=np.int64), np.empty(0), np.zeros(1, dtype=np.int64))
            return selectors.windows_over(empty, read_at, node.range_ms)
        inner = self.evaluate(node.expr, inner_times)
        rows, columns = np.nonzero(inner.present)
        self.ctx.count_samples(rows.shape[0])
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(inner)))]).astype(np.int64)
        samples = SampleSet(inner.labels, inner_times[columns], inner.values[rows, columns], offsets)
        return selectors.windows_over(samples, read_at, node.range_ms)


def subquery_step_count(read_at: np.ndarray, range_ms: int, step_ms: int) -> int:
    """Return an upper bound of the number of inner evaluation times of a subquery."""
    first = (read_at - range_ms) // step_ms + 1
    last = read_at // step_ms
    return int(min(int((last - first + 1).sum()), int(last.max() - first.min() + 1)))


def subquery_times(read_at: np.ndarray, range_ms: int, step_ms: int) -> np.ndarray:
    """Return the inner evaluation times: multiples of the step inside some (t - range, t]."""
    first = (read_at - range_ms) // step_ms + 1
    last = read_at // step_ms
    if read_at.shape[0] > 1 and np.all(np.diff(read_at) <= range_ms):
        # Consecutive windows touch or overlap, so the times form one run.
        return np.arange(int(first.min()), int(last.max()) + 1, dtype=np.int64) * step_ms
    runs = [np.arange(begin, end + 1, dtype=np.int64) for begin, end in zip(first.tolist(), last.tolist())]
    return np.unique(np.concatenate(runs)) * step_ms if runs else np.empty(0, dtype=np.int64)


def _repeat(value: Value, steps: int) -> Value:
    if isinstance(value, Scalar):
        return Scalar(np.repeat(value.values, steps))
    if isinstance(value, Vector):
        sample_ms = np.repeat(value.sample_ms, steps, axis=1) if value.sample_ms is not None else None
        return Vector(value.labels, np.repeat(value.values, steps, axis=1), np.repeat(value.present, steps, axis=1),
                      sample_ms)
    if isinstance(value, RangeVector):
        return RangeVector(value.labels, value.timestamps_ms, value.values, value.offsets,
                           np.repeat(value.lo, steps, axis=1), np.repeat(value.hi, steps, axis=1),
                           np.repeat(value.window_end_ms, steps), value.range_ms, value.names)
    return value
