"""Function calls: argument evaluation, and the functions over instant vectors and scalars."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from gosight.model import METRIC_NAME, Labels
from gosight.store.promql import histograms, nodes, rangefuncs
from gosight.store.promql.errors import ExecutionError
from gosight.store.promql.values import (Scalar, Vector, drop_metric_name, get_label, go_quote,
                                         is_valid_label_name, merge_same_labels, with_label)

if TYPE_CHECKING:
    from gosight.store.promql.evaluator import Evaluator

_MATH = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "sqrt": np.sqrt, "ln": np.log,
    "log2": np.log2, "log10": np.log10, "sgn": np.sign, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "deg": lambda values: values * 180 / np.pi, "rad": lambda values: values * np.pi / 180,
}
_DATE_FUNCTIONS = frozenset({"minute", "hour", "day_of_week", "day_of_month", "day_of_year", "days_in_month",
                             "month", "year"})
# Native-histogram functions: float samples are ignored, so over GoSight's data they return nothing.
_NATIVE_HISTOGRAM_ONLY = frozenset({"histogram_count", "histogram_sum", "histogram_avg", "histogram_stddev",
                                    "histogram_stdvar"})
_SORT_FUNCTIONS = frozenset({"sort", "sort_desc", "sort_by_label", "sort_by_label_desc"})


def call(ev: Evaluator, node: nodes.Call, times: np.ndarray):
    """Evaluate a function call for all steps."""
    name = node.name
    if name in _SORT_FUNCTIONS and ev.ctx.is_range_query:
        ev.ctx.warn("sort is ineffective for range queries since results are always ordered by labels", node.pos)
    if rangefuncs.is_range_function(name) or name == "absent_over_time":
        return _range_function(ev, node, times)
    if name == "timestamp":
        return _timestamp(ev, node, times)

    args = [ev.evaluate(arg, times) for arg in node.args]
    steps = times.shape[0]
    if name in _MATH:
        return _map_values(args[0], _MATH[name])
    if name in _DATE_FUNCTIONS:
        vector = args[0] if args else Vector([()], (times / 1000.0)[None, :], np.ones((1, steps), dtype=bool))
        return _map_values(vector, lambda values: date_part(name, values))
    handler = _HANDLERS.get(name)
    if handler is None:
        if name in _NATIVE_HISTOGRAM_ONLY:
            return Vector.empty(steps)
        raise ExecutionError(f"function {name}() is not supported by GoSight's PromQL engine")
    return handler(ev, node, args, times)


def _range_function(ev: Evaluator, node: nodes.Call, times: np.ndarray):
    matrix_index = next(index for index, arg in enumerate(node.args) if arg.value_type == nodes.MATRIX)
    params = [ev.evaluate(arg, times).values for index, arg in enumerate(node.args) if index != matrix_index]
    range_vector = ev.evaluate(node.args[matrix_index], times)
    if node.name == "absent_over_time":
        seen = (range_vector.hi > range_vector.lo).any(axis=0)
        return _absent_result(node.args[0], ~seen)
    return rangefuncs.evaluate(ev.ctx, node, range_vector, params, times)


def _timestamp(ev: Evaluator, node: nodes.Call, times: np.ndarray) -> Vector:
    # For a plain selector the sample's own time is wanted, not the step time.
    inner = nodes.unwrap_parens(node.args[0])
    if isinstance(inner, nodes.VectorSelector):
        vector = ev.selector(inner, times, keep_timestamps=True)
        values = vector.sample_ms / 1000.0
    else:
        vector = ev.evaluate(node.args[0], times)
        values = np.broadcast_to(times / 1000.0, vector.values.shape).copy()
    labels = [drop_metric_name(item) for item in vector.labels]
    return merge_same_labels(labels, values, vector.present.copy())


def _map_values(vector: Vector, function) -> Vector:
    with np.errstate(all="ignore"):
        values = function(vector.values)
    labels = [drop_metric_name(item) for item in vector.labels]
    return merge_same_labels(labels, values, vector.present.copy())


def date_part(name: str, seconds: np.ndarray) -> np.ndarray:
    """Extract a UTC calendar field from Unix times in seconds, truncated like Go's time.Unix(int64(v), 0)."""
    finite = np.isfinite(seconds)
    whole = np.where(finite, np.trunc(np.where(finite, seconds, 0)), 0).astype(np.int64)
    if name == "minute":
        result = (whole // 60) % 60
    elif name == "hour":
        result = (whole // 3600) % 24
    elif name == "day_of_week":
        result = (whole // 86400 + 4) % 7
    else:
        day = whole.astype("datetime64[s]").astype("datetime64[D]")
        month = day.astype("datetime64[M]")
        year = day.astype("datetime64[Y]")
        if name == "year":
            result = year.astype(np.int64) + 1970
        elif name == "month":
            result = (month - year.astype("datetime64[M]")).astype(np.int64) + 1
        elif name == "day_of_month":
            result = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
        elif name == "day_of_year":
            result = (day - year.astype("datetime64[D]")).astype(np.int64) + 1
        else:
            result = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    return np.where(finite, result.astype(np.float64), np.nan)


# Handlers take (evaluator, node, evaluated arguments, step times).

def _vector(ev, node, args, times) -> Vector:
    values = args[0].values[None, :]
    return Vector([()], values.copy(), np.ones(values.shape, dtype=bool))


def _scalar(ev, node, args, times) -> Scalar:
    vector: Vector = args[0]
    if len(vector) == 0:
        return Scalar(np.full(times.shape[0], np.nan))
    count = vector.present.sum(axis=0)
    single = np.where(vector.present, vector.values, 0.0).sum(axis=0)
    return Scalar(np.where(count == 1, single, np.nan))


def _time(ev, node, args, times) -> Scalar:
    return Scalar(times / 1000.0)


def _constant(value_of):
    def handler(ev, node, args, times) -> Scalar:
        return Scalar(np.full(times.shape[0], float(value_of(ev.ctx))))

    return handler


def _min_max_of(function):
    def handler(ev, node, args, times) -> Scalar:
        return Scalar(function(args[0].values, args[1].values))

    return handler


def _clamp(ev, node, args, times) -> Vector:
    vector: Vector = args[0]
    low = args[1].values if node.name in ("clamp", "clamp_min") else np.full(times.shape[0], -np.inf)
    if node.name == "clamp":
        high = args[2].values
    elif node.name == "clamp_max":
        high = args[1].values
    else:
        high = np.full(times.shape[0], np.inf)
    with np.errstate(invalid="ignore"):
        values = np.maximum(low[None, :], np.minimum(high[None, :], vector.values))
        # clamp() with max below min returns nothing for that step.
        valid_step = ~(high < low) if node.name == "clamp" else np.ones(times.shape[0], dtype=bool)
    labels = [drop_metric_name(item) for item in vector.labels]
    return merge_same_labels(labels, values, vector.present & valid_step[None, :]).compact()


def _round(ev, node, args, times) -> Vector:
    to_nearest = args[1].values if len(args) > 1 else np.ones(times.shape[0])
    with np.errstate(divide="ignore"):
        inverse = 1.0 / to_nearest

    def round_values(values: np.ndarray) -> np.ndarray:
        return np.floor(values * inverse[None, :] + 0.5) / inverse[None, :]

    return _map_values(args[0], round_values)


def _absent(ev, node, args, times) -> Vector:
    vector: Vector = args[0]
    empty = ~vector.present.any(axis=0) if len(vector) else np.ones(times.shape[0], dtype=bool)
    return _absent_result(node.args[0], empty)


def _absent_result(arg: nodes.Node, absent: np.ndarray) -> Vector:
    """Build absent()'s result: one series, value 1 at the steps where `absent` is true.

    Its labels come from the equality matchers of the argument's selector.
    """
    if not absent.any():
        return Vector.empty(absent.shape[0])
    selector = None
    if isinstance(arg, nodes.VectorSelector):
        selector = arg
    elif isinstance(arg, nodes.MatrixSelector):
        selector = arg.selector
    labels: dict[str, str] = {}
    if selector is not None:
        # A label matched twice, or matched other than by equality, is left out.
        seen: set[str] = set()
        for matcher in selector.matchers:
            if matcher.name == METRIC_NAME:
                continue
            if matcher.op == "=" and matcher.name not in seen:
                labels[matcher.name] = matcher.value
                seen.add(matcher.name)
            else:
                labels.pop(matcher.name, None)
                seen.add(matcher.name)
    label_set = tuple(sorted((name, value) for name, value in labels.items() if value != ""))
    return Vector([label_set], np.ones((1, absent.shape[0])), absent[None, :].copy())


def _label_replace(ev, node, args, times) -> Vector:
    vector: Vector = args[0]
    destination, replacement, source, pattern = (arg.value for arg in args[1:5])
    try:
        regex = re.compile(pattern, re.DOTALL)
    except re.error as error:
        raise ExecutionError(f"invalid regular expression in label_replace(): {pattern}: {error}") from None
    if not is_valid_label_name(destination):
        raise ExecutionError(f"invalid destination label name in label_replace(): {go_quote(destination)}")
    labels: list[Labels] = []
    for item in vector.labels:
        match = regex.fullmatch(get_label(item, source))
        if match is None:
            labels.append(item)
        else:
            labels.append(with_label(item, destination, expand_template(replacement, match)))
    return merge_same_labels(labels, vector.values, vector.present)


def expand_template(template: str, match: re.Match) -> str:
    """Expand $1, ${1}, $name and ${name} as Go's regexp.Expand does; `$$` is a literal dollar."""
    out: list[str] = []
    index = 0
    groups = match.re.groupindex
    while index < len(template):
        char = template[index]
        if char != "$" or index + 1 >= len(template):
            out.append(char)
            index += 1
            continue
        following = template[index + 1]
        if following == "$":
            out.append("$")
            index += 2
            continue
        if following == "{":
            close = template.find("}", index + 2)
            name = template[index + 2:close] if close >= 0 else ""
            if close < 0 or not re.fullmatch(r"\w+", name):
                out.append(char)
                index += 1
                continue
            index = close + 1
        else:
            found = re.match(r"\w+", template[index + 1:])
            if found is None:
                out.append(char)
                index += 1
                continue
            name = found.group(0)
            index += 1 + len(name)
        out.append(_group_text(match, name, groups))
    return "".join(out)


def _group_text(match: re.Match, name: str, groups) -> str:
    if name.isdigit():
        number = int(name)
        if number <= match.re.groups:
            return match.group(number) or ""
        return ""
    if name in groups:
        return match.group(name) or ""
    return ""


def _label_join(ev, node, args, times) -> Vector:
    vector: Vector = args[0]
    destination, separator = args[1].value, args[2].value
    sources = [arg.value for arg in args[3:]]
    if not is_valid_label_name(destination):
        raise ExecutionError(f"invalid destination label name in label_join(): {go_quote(destination)}")
    for source in sources:
        if not is_valid_label_name(source):
            raise ExecutionError(f"invalid source label name in label_join(): {go_quote(source)}")
    labels = [with_label(item, destination, separator.join(get_label(item, source) for source in sources))
              for item in vector.labels]
    return merge_same_labels(labels, vector.values, vector.present)


def _sort(ev, node, args, times) -> Vector:
    vector: Vector = args[0]
    if vector.steps != 1 or len(vector) == 0:
        return vector
    values = vector.values[:, 0]
    nan = np.isnan(values)
    key = values if node.name == "sort" else -values
    order = np.lexsort((np.where(nan, 0.0, key), nan))
    vector.order = order[vector.present[order, 0]]
    return vector


def _sort_by_label(ev, node, args, times) -> Vector:
    vector: Vector = args[0]
    if vector.steps != 1 or len(vector) == 0:
        return vector
    names = [arg.value for arg in args[1:]]
    descending = node.name == "sort_by_label_desc"

    def key(row: int):
        labels = vector.labels[row]
        return ([natural_key(get_label(labels, name)) for name in names], labels)

    rows = sorted(np.flatnonzero(vector.present[:, 0]).tolist(), key=key, reverse=descending)
    vector.order = np.array(rows, dtype=np.int64)
    return vector


def natural_key(text: str) -> tuple:
    """Sort key that orders runs of digits by number: "cpu2" before "cpu10"."""
    parts = re.findall(r"\d+|\D+", text)
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part) for part in parts)


def _histogram_quantile(ev, node, args, times) -> Vector:
    return histograms.histogram_quantile(ev.ctx, node, args[0].values, args[1])


def _histogram_fraction(ev, node, args, times) -> Vector:
    return histograms.histogram_fraction(ev.ctx, node, args[0].values, args[1].values, args[2])


def _not_supported(ev, node, args, times):
    raise ExecutionError(f"function {node.name}() is not supported by GoSight's PromQL engine")


_HANDLERS = {
    "vector": _vector,
    "scalar": _scalar,
    "time": _time,
    "pi": _constant(lambda ctx: np.pi),
    "step": _constant(lambda ctx: ctx.step_ms / 1000.0),
    "range": _constant(lambda ctx: (ctx.end_ms - ctx.start_ms) / 1000.0),
    "start": _constant(lambda ctx: ctx.start_ms / 1000.0),
    "end": _constant(lambda ctx: ctx.end_ms / 1000.0),
    "min_of": _min_max_of(np.minimum),
    "max_of": _min_max_of(np.maximum),
    "clamp": _clamp,
    "clamp_min": _clamp,
    "clamp_max": _clamp,
    "round": _round,
    "absent": _absent,
    "label_replace": _label_replace,
    "label_join": _label_join,
    "sort": _sort,
    "sort_desc": _sort,
    "sort_by_label": _sort_by_label,
    "sort_by_label_desc": _sort_by_label,
    "histogram_quantile": _histogram_quantile,
    "histogram_fraction": _histogram_fraction,
    "info": _not_supported,
}
