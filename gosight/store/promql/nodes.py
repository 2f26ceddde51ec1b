"""The engine's own syntax tree, built from promql-parser's tree by `parse.parse_query`.

Times and durations are integer milliseconds. `value_type` is one of "scalar",
"vector", "matrix" and "string". `pos` is the byte offset of the node in the query
text where the parse adapter could find it, else -1; it only feeds the positions
printed in warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gosight.model import Matcher

SCALAR = "scalar"
VECTOR = "vector"
MATRIX = "matrix"
STRING = "string"

# Values of AtModifier.kind: a fixed time, or the start or end of the query.
AT_TIME = "time"
AT_START = "start"
AT_END = "end"


@dataclass(frozen=True)
class AtModifier:
    kind: str
    time_ms: int = 0


@dataclass(eq=False)
class Node:
    pos: int = field(default=-1, kw_only=True)
    # True when the node's value is the same at every step of a range query, so the
    # evaluator computes it once; the rules follow Prometheus' step-invariant analysis.
    step_invariant: bool = field(default=False, kw_only=True)

    value_type: str = field(default=VECTOR, init=False)


@dataclass(eq=False)
class NumberLiteral(Node):
    value: float

    def __post_init__(self) -> None:
        self.value_type = SCALAR


@dataclass(eq=False)
class StringLiteral(Node):
    value: str

    def __post_init__(self) -> None:
        self.value_type = STRING


@dataclass(eq=False)
class VectorSelector(Node):
    name: str | None
    # Each inner tuple is one alternative of `{a="1" or b="2"}`; a plain selector has one.
    matcher_groups: tuple[tuple[Matcher, ...], ...]
    offset_ms: int = 0
    at: AtModifier | None = None

    def __post_init__(self) -> None:
        self.value_type = VECTOR

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        return self.matcher_groups[0] if self.matcher_groups else ()


@dataclass(eq=False)
class MatrixSelector(Node):
    selector: VectorSelector
    range_ms: int

    def __post_init__(self) -> None:
        self.value_type = MATRIX


@dataclass(eq=False)
class Subquery(Node):
    expr: Node
    range_ms: int
    step_ms: int  # 0 means the default subquery step
    offset_ms: int = 0
    at: AtModifier | None = None

    def __post_init__(self) -> None:
        self.value_type = MATRIX


@dataclass(eq=False)
class Call(Node):
    name: str
    args: list[Node]
    return_type: str = VECTOR

    def __post_init__(self) -> None:
        self.value_type = self.return_type


@dataclass(eq=False)
class Aggregate(Node):
    op: str
    expr: Node
    param: Node | None
    grouping: tuple[str, ...] = ()
    without: bool = False

    def __post_init__(self) -> None:
        self.value_type = VECTOR


@dataclass(eq=False)
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool = False
    # "one-to-one", "many-to-one" (group_left), "one-to-many" (group_right) or "many-to-many" (set operators).
    card: str = "one-to-one"
    matching_on: bool = False
    matching_labels: tuple[str, ...] = ()
    include_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        both_scalar = self.lhs.value_type == SCALAR and self.rhs.value_type == SCALAR
        self.value_type = SCALAR if both_scalar else VECTOR


@dataclass(eq=False)
class Unary(Node):
    expr: Node

    def __post_init__(self) -> None:
        self.value_type = self.expr.value_type


@dataclass(eq=False)
class Paren(Node):
    expr: Node

    def __post_init__(self) -> None:
        self.value_type = self.expr.value_type


ARITHMETIC_OPS = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
COMPARISON_OPS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPS = frozenset({"and", "or", "unless"})


def unwrap_parens(node: Node) -> Node:
    while isinstance(node, Paren):
        node = node.expr
    return node


def walk(node: Node):
    """Yield the node and every node below it, parents first."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Node) -> list[Node]:
    if isinstance(node, MatrixSelector):
        return [node.selector]
    if isinstance(node, (Subquery, Unary, Paren)):
        return [node.expr]
    if isinstance(node, Call):
        return list(node.args)
    if isinstance(node, Aggregate):
        return [node.param, node.expr] if node.param is not None else [node.expr]
    if isinstance(node, Binary):
        return [node.lhs, node.rhs]
    return []
