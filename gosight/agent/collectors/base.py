"""The interface every agent collector implements."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

from gosight.config import Config


class Sample(NamedTuple):
    """One reading: a catalogue metric name, its labels and the value."""

    name: str
    labels: dict[str, str]
    value: float


class Collector(Protocol):
    """A source of samples. `collect` reads the current values; it may raise, and the
    runner then reports the collector as down and carries on with the others."""

    name: str

    def __init__(self, config: Config) -> None: ...

    def collect(self) -> Iterable[Sample]: ...
