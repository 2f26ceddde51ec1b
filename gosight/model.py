"""Core types shared by the agent, the server and the stores."""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

# Prometheus marks the end of a series with this NaN payload; PromQL skips it.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

METRIC_NAME = "__name__"
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Labels every stored series carries, naming the endpoint that reported it.
IDENTITY_LABELS = ("endpoint_id", "host", "instance", "job")

# OTLP resource attributes that describe an endpoint other than a host, such as a
# container: its kind, and the endpoint id of the host it runs on.
ENDPOINT_KIND_ATTRIBUTE = "gosight.endpoint.kind"
HOST_ENDPOINT_ATTRIBUTE = "gosight.host.endpoint.id"

# A label set: (name, value) pairs sorted by name, `__name__` included. Tuples hash
# fast and compare by value, so they key the series registry directly.
Labels = tuple[tuple[str, str], ...]


def make_labels(pairs: dict[str, str]) -> Labels:
    """Build a label set, dropping empty values as Prometheus does."""
    return tuple(sorted((name, value) for name, value in pairs.items() if value != ""))


def labels_dict(labels: Labels) -> dict[str, str]:
    return dict(labels)


def metric_name(labels: Labels) -> str:
    for name, value in labels:
        if name == METRIC_NAME:
            return value
    return ""


def is_stale_nan(value: float) -> bool:
    return math.isnan(value) and struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


def stale_mask(values: np.ndarray) -> np.ndarray:
    """Return a boolean mask of the staleness markers in a float64 array."""
    import numpy as np  # noqa: PLC0415 - the agent imports this module and never needs numpy

    return values.view(np.uint64) == np.uint64(STALE_NAN_BITS)


MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a PromQL selector; regular expressions are anchored at both ends."""

    name: str
    op: MatchOp
    value: str

    def matches(self, actual: str) -> bool:
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual, re.DOTALL) is not None
        return found if self.op == "=~" else not found


@dataclass
class SampleBatch:
    """Samples in columns, ready for the store: series id, timestamp in ms, value."""

    series_ids: np.ndarray
    timestamps_ms: np.ndarray
    values: np.ndarray
    batch_id: str | None = None

    @property
    def size(self) -> int:
        return int(self.series_ids.shape[0])

    @classmethod
    def empty(cls, batch_id: str | None = None) -> SampleBatch:
        import numpy as np  # noqa: PLC0415 - see stale_mask

        return cls(
            np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64), batch_id
        )


@dataclass(frozen=True)
class MetricMetadata:
    """What a metric is, as Prometheus' metadata API reports it."""

    metric: str
    type: str  # counter, gauge, histogram, summary, unknown
    unit: str = ""
    help: str = ""


@dataclass
class Endpoint:
    """A monitored host or container, as the server tracks it.

    `parent` is the endpoint id of the host a container runs on, empty for hosts.
    `gone_ms` is when the host's agent last reported the container as removed, 0
    while it exists. `claimed_id` is the endpoint id a host's agent reported, when the
    server stores its data under this id instead because another agent already used
    that one. It is empty otherwise.
    """

    endpoint_id: str
    kind: str = "host"
    hostname: str = ""
    agent_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    last_data_ms: int = 0
    connected: bool = False
    parent: str = ""
    gone_ms: int = 0
    claimed_id: str = ""
