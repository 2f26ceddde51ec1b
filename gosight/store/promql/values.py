"""Values of the evaluator: every expression is computed for all steps of a query at once.

An instant vector over n steps is a list of m label sets and two m x n arrays: the
sample values and a mask of which series has a sample at which step. A scalar is an
array of n values. A range vector (the argument of `rate` and friends) keeps the raw
samples of each series in flat arrays plus, per series and step, the bounds of the
window of samples that the step sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gosight.model import METRIC_NAME, Labels
from gosight.store.promql.errors import ExecutionError

DUPLICATE_LABELSET = "vector cannot contain metrics with the same labelset"


@dataclass
class Scalar:
    values: np.ndarray  # float64, one value per step


@dataclass
class String:
    value: str


@dataclass
class Vector:
    labels: list[Labels]
    values: np.ndarray  # float64 [series, steps]
    present: np.ndarray  # bool [series, steps]
    # Timestamps (ms) of the selected samples, kept only where `timestamp()` asked for them.
    sample_ms: np.ndarray | None = None
    # Output order of the series for an instant query, set by sort, topk and friends.
    order: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls, steps: int) -> Vector:
        return cls([], np.empty((0, steps)), np.zeros((0, steps), dtype=bool))

    def take(self, rows: np.ndarray) -> Vector:
        """Return the vector restricted to `rows` (an index array), in that order."""
        return Vector([self.labels[int(row)] for row in rows], self.values[rows], self.present[rows],
                      self.sample_ms[rows] if self.sample_ms is not None else None)

    def compact(self) -> Vector:
        """Drop the series that have no sample at any step."""
        keep = self.present.any(axis=1)
        if keep.all():
            return self
        return self.take(np.flatnonzero(keep))


@dataclass
class RangeVector:
    """Raw samples per series (staleness markers removed) and each step's window into them.

    Series i owns `timestamps_ms[offsets[i]:offsets[i + 1]]`. At step k it sees the
    samples with indexes `lo[i, k] <= j < hi[i, k]`. `window_end_ms[k]` is the right
    edge of step k's window (the evaluation time minus the offset, or the `@` time), and
    the window is `(window_end_ms - range_ms, window_end_ms]`.
    """

    labels: list[Labels]
    timestamps_ms: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    window_end_ms: np.ndarray
    range_ms: int
    # The metric names of the series, for annotations; from the selector or the subquery.
    names: list[str] = field(default_factory=list)

    @property
    def counts(self) -> np.ndarray:
        return self.hi - self.lo


Value = Scalar | String | Vector | RangeVector


def drop_metric_name(labels: Labels) -> Labels:
    if labels and labels[0][0] == METRIC_NAME:
        return labels[1:]
    for index, (name, _) in enumerate(labels):
        if name == METRIC_NAME:
            return labels[:index] + labels[index + 1:]
    return labels


def get_label(labels: Labels, name: str) -> str:
    for label, value in labels:
        if label == name:
            return value
    return ""


def with_label(labels: Labels, name: str, value: str) -> Labels:
    """Return `labels` with `name` set to `value`, or removed when `value` is empty."""
    rest = [(label, current) for label, current in labels if label != name]
    if value != "":
        rest.append((name, value))
        rest.sort()
    return tuple(rest)


def merge_same_labels(labels: list[Labels], values: np.ndarray, present: np.ndarray,
                      order: np.ndarray | None = None) -> Vector:
    """Build a vector whose label sets are unique, combining series that got equal labels.

    Series that end up with the same labels are merged when they never have a sample at
    the same step, as Prometheus does when it collects a range query's steps; otherwise
    the result would hold two samples of one series at one time, which is an error.
    """
    index: dict[Labels, int] = {}
    first: list[int] = []
    duplicates: list[tuple[int, int]] = []
    for row, item in enumerate(labels):
        found = index.get(item)
        if found is None:
            index[item] = len(first)
            first.append(row)
        else:
            duplicates.append((found, row))
    if not duplicates:
        return Vector(labels, values, present, order=order)

    out_values = values[first].copy()
    out_present = present[first].copy()
    for target, row in duplicates:
        if (out_present[target] & present[row]).any():
            raise ExecutionError(DUPLICATE_LABELSET)
        take = present[row]
        out_values[target, take] = values[row, take]
        out_present[target] |= take
    return Vector([labels[row] for row in first], out_values, out_present)


def format_labels(labels: Labels) -> str:
    """Format labels like Prometheus' Labels.String(): {__name__="x", a="b"}."""
    return "{" + ", ".join(f"{name}={go_quote(value)}" for name, value in labels) + "}"


def go_quote(text: str) -> str:
    """Quote a string as Go's strconv.Quote does, printing undecodable bytes as \\xNN."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def is_valid_label_name(name: str) -> bool:
    """Any non-empty valid UTF-8 string is a label name in Prometheus 3."""
    if not name:
        return False
    return not any(0xD800 <= ord(char) <= 0xDFFF for char in name)
