"""Turn PromQL text into the engine's syntax tree, using the promql-parser package."""

from __future__ import annotations

import datetime
import re

import promql_parser

from gosight.model import Matcher
from gosight.store.promql import nodes
from gosight.store.promql.errors import BadQueryError

_MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
_VALUE_TYPES = {"ValueType.Scalar": nodes.SCALAR, "ValueType.Vector": nodes.VECTOR,
                "ValueType.Matrix": nodes.MATRIX, "ValueType.String": nodes.STRING}
_CARDINALITIES = {"VectorMatchCardinality.OneToOne": "one-to-one", "VectorMatchCardinality.ManyToOne": "many-to-one",
                  "VectorMatchCardinality.OneToMany": "one-to-many", "VectorMatchCardinality.ManyToMany": "many-to-many"}

# Functions whose value depends on the evaluation time, so a call is never step-invariant
# even when its arguments are (the same list as Prometheus' engine).
TIME_DEPENDENT_FUNCTIONS = frozenset({
    "days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year",
    "predict_linear", "time",
})

# A Go string literal may hold single bytes that are not valid UTF-8 ("\xff"), while
# promql-parser decodes "\xff" as the character U+00FF. Such escapes are rewritten to a
# private-use character before parsing and mapped back to lone surrogates afterwards,
# the way Python's "surrogateescape" error handler represents undecodable bytes.
_BYTE_ESCAPE_BASE = 0x10FF00
_HIGH_BYTE_ESCAPE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")


def parse_query(text: str) -> nodes.Node:
    """Parse a query; raise BadQueryError with the parser's message on invalid input."""
    if not text.strip():
        raise BadQueryError("parse error: no expression found in input")
    prepared = _escape_high_bytes(text)
    try:
        tree = promql_parser.parse(prepared)
    except (ValueError, TypeError, OverflowError) as error:
        raise BadQueryError(f"parse error: {error}") from None
    try:
        return _Converter(prepared).convert(tree)
    except (ValueError, OverflowError) as error:
        # The binding converts durations and times lazily; out-of-range ones fail here.
        raise BadQueryError(f"parse error: {error}") from None


def parse_duration_ms(text: str) -> int:
    """Parse a Prometheus duration such as 1m30s; raise ValueError when invalid."""
    delta = promql_parser.parse_duration(text)
    return timedelta_ms(delta)


def timedelta_ms(delta: datetime.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def restore_bytes(text: str) -> str:
    """Map the private-use characters of `_escape_high_bytes` back to surrogate escapes."""
    if not any(ord(char) >= _BYTE_ESCAPE_BASE for char in text):
        return text
    return "".join(chr(0xDC00 + ord(char) - _BYTE_ESCAPE_BASE) if ord(char) >= _BYTE_ESCAPE_BASE + 0x80 else char
                   for char in text)


def _escape_high_bytes(text: str) -> str:
    if "\\x" not in text:
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char not in "\"'":
            out.append(char)
            index += 1
            continue
        end = index + 1
        while end < len(text) and text[end] != char:
            end += 2 if text[end] == "\\" else 1
        literal = text[index:end + 1]
        out.append(_HIGH_BYTE_ESCAPE.sub(lambda match: f"\\U{_BYTE_ESCAPE_BASE + int(match[1], 16):08X}", literal))
        index = end + 1
    return "".join(out)


class _Converter:
    def __init__(self, text: str):
        self.text = text
        self.cursor = 0

    def convert(self, expr: object) -> nodes.Node:
        kind = type(expr).__name__
        method = getattr(self, "_convert_" + kind, None)
        if method is None:
            raise BadQueryError(f"unsupported expression type {kind}")
        start = re.compile(r"\s*").match(self.text, self.cursor).end()
        node = method(expr)
        node.step_invariant = _is_step_invariant(node)
        if node.pos < 0:
            node.pos = start
        return node

    # Leaves.

    def _convert_NumberLiteral(self, expr) -> nodes.Node:
        return nodes.NumberLiteral(float(expr.val))

    def _convert_StringLiteral(self, expr) -> nodes.Node:
        return nodes.StringLiteral(restore_bytes(expr.val))

    def _convert_VectorSelector(self, expr) -> nodes.VectorSelector:
        pos = self._find(re.escape(expr.name) if expr.name else r"\{")
        groups = [list(expr.matchers.matchers)] if expr.matchers.matchers else []
        groups += [list(group) for group in expr.matchers.or_matchers]
        matcher_groups = []
        for group in groups or [[]]:
            matchers = [Matcher(matcher.name, _MATCH_OPS[str(matcher.op)], restore_bytes(matcher.value))
                        for matcher in group]
            if expr.name:
                matchers.insert(0, Matcher("__name__", "=", expr.name))
            matcher_groups.append(tuple(matchers))
        return nodes.VectorSelector(expr.name, tuple(matcher_groups), _offset_ms(expr.offset), _at(expr.at), pos=pos)

    def _convert_MatrixSelector(self, expr) -> nodes.MatrixSelector:
        selector = self._convert_VectorSelector(expr.vector_selector)
        return nodes.MatrixSelector(selector, timedelta_ms(expr.range), pos=selector.pos)

    # Composite expressions.

    def _convert_ParenExpr(self, expr) -> nodes.Node:
        pos = self._find(r"\(")
        return nodes.Paren(self.convert(expr.expr), pos=pos)

    def _convert_UnaryExpr(self, expr) -> nodes.Node:
        pos = self._find(r"-")
        return nodes.Unary(self.convert(expr.expr), pos=pos)

    def _convert_SubqueryExpr(self, expr) -> nodes.Node:
        inner = self.convert(expr.expr)
        step = timedelta_ms(expr.step) if expr.step is not None else 0
        return nodes.Subquery(inner, timedelta_ms(expr.range), step, _offset_ms(expr.offset), _at(expr.at),
                              pos=inner.pos)

    def _convert_Call(self, expr) -> nodes.Node:
        name = expr.func.name
        pos = self._find(re.escape(name) + r"\s*\(", advance_to_end=True)
        args = [self.convert(arg) for arg in expr.args]
        return nodes.Call(name, args, _VALUE_TYPES[str(expr.func.return_type)], pos=pos)

    def _convert_AggregateExpr(self, expr) -> nodes.Node:
        op = str(expr.op).lower()
        pos = self._find(r"(?i:" + re.escape(op) + r")\b", advance_to_end=True)
        if pos >= 0:
            self._skip_grouping_clause()
        param = None
        if expr.param is not None:
            param = self.convert(expr.param)
        inner = self.convert(expr.expr)
        grouping: tuple[str, ...] = ()
        without = False
        if expr.modifier is not None:
            grouping = tuple(expr.modifier.labels)
            without = str(expr.modifier.type) == "AggModifierType.Without"
        return nodes.Aggregate(op, inner, param, grouping, without, pos=pos)

    def _convert_BinaryExpr(self, expr) -> nodes.Node:
        lhs = self.convert(expr.lhs)
        rhs = self.convert(expr.rhs)
        op = str(expr.op).lower()
        modifier = expr.modifier
        if modifier is None:
            card = "many-to-many" if op in nodes.SET_OPS else "one-to-one"
            return nodes.Binary(op, lhs, rhs, card=card, pos=lhs.pos)
        fill = modifier.fill_values
        if fill is not None and (fill.lhs is not None or fill.rhs is not None):
            raise BadQueryError("the fill() modifier of binary operators is not supported")
        matching = modifier.matching
        on = matching is not None and str(matching.type) == "LabelModifierType.Include"
        labels = tuple(matching.labels) if matching is not None else ()
        card = _CARDINALITIES[str(modifier.card)]
        if op in nodes.SET_OPS:
            card = "many-to-many"
        return nodes.Binary(op, lhs, rhs, return_bool=bool(modifier.return_bool), card=card, matching_on=on,
                            matching_labels=labels, include_labels=tuple(modifier.group_labels or ()),
                            pos=lhs.pos)

    # Positions, for the messages of warnings.

    def _find(self, pattern: str, advance_to_end: bool = False) -> int:
        match = re.compile(pattern).search(self.text, self.cursor)
        if match is None:
            return -1
        self.cursor = match.end() if advance_to_end else match.start() + 1
        return match.start()

    def _skip_grouping_clause(self) -> None:
        match = re.compile(r"\s*(?i:by|without)\s*\(").match(self.text, self.cursor)
        if match is not None:
            close = self.text.find(")", match.end())
            self.cursor = close + 1 if close >= 0 else match.end()
        match = re.compile(r"\s*\(\s*").match(self.text, self.cursor)
        if match is not None:
            self.cursor = match.end()


def _offset_ms(offset: datetime.timedelta | None) -> int:
    return timedelta_ms(offset) if offset is not None else 0


def _at(at) -> nodes.AtModifier | None:
    if at is None:
        return None
    kind = str(at.type)
    if kind == "AtModifierType.Start":
        return nodes.AtModifier(nodes.AT_START)
    if kind == "AtModifierType.End":
        return nodes.AtModifier(nodes.AT_END)
    # NOTE: promql-parser 0.12 turns a negative `@` time into 0, so `x @ -5` reads at 0.
    moment: datetime.datetime = at.at
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return nodes.AtModifier(nodes.AT_TIME, timedelta_ms(moment - epoch))


def _is_step_invariant(node: nodes.Node) -> bool:
    if isinstance(node, (nodes.NumberLiteral, nodes.StringLiteral)):
        return True
    if isinstance(node, nodes.VectorSelector):
        return node.at is not None
    if isinstance(node, nodes.MatrixSelector):
        return node.selector.at is not None
    if isinstance(node, nodes.Subquery):
        return node.at is not None
    if isinstance(node, (nodes.Paren, nodes.Unary)):
        return node.expr.step_invariant
    if isinstance(node, nodes.Binary):
        return node.lhs.step_invariant and node.rhs.step_invariant
    if isinstance(node, nodes.Aggregate):
        return node.expr.step_invariant and (node.param is None or node.param.step_invariant)
    if isinstance(node, nodes.Call):
        return node.name not in TIME_DEPENDENT_FUNCTIONS and all(arg.step_invariant for arg in node.args)
    return False


def position_text(query: str, pos: int) -> str:
    """Format a byte offset as Prometheus prints positions in annotations: line:column, both from 1."""
    if pos < 0:
        return "1:1"
    line = query.count("\n", 0, pos) + 1
    column = pos - (query.rfind("\n", 0, pos) + 1) + 1
    return f"{line}:{column}"


def format_query(text: str) -> str:
    """Return the query in promql-parser's canonical layout; raise BadQueryError when invalid."""
    parse_query(text)
    return promql_parser.parse(_escape_high_bytes(text)).prettify()


def parse_selector(text: str) -> nodes.VectorSelector:
    """Parse a series selector such as `up{job="node"}`, as the match[] parameter takes."""
    node = parse_query(text)
    if not isinstance(node, nodes.VectorSelector) or node.offset_ms or node.at is not None:
        raise BadQueryError(f"parse error: expected a series selector such as up{{job=\"node\"}}, got {text!r}")
    return node
