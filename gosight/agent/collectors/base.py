"""The interface every agent collector implements."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

from gosight.config import Config


# OTLP resource attributes as sorted (key, value) pairs, hashable so that samples
# can be grouped by resource.
ResourceKey = tuple[tuple[str, str], ...]


class Sample(NamedTuple):
    """One reading: a catalogue metric name, its labels, the value and its resource.

    `resource` is empty for the agent's own host. Otherwise it contains resource
    attributes that replace the host's for this sample, for something the host runs,
    such as a container. The runner adds `gosight.host.endpoint.id`, which links that
    resource to the host.
    """

    name: str
    labels: dict[str, str]
    value: float
    resource: ResourceKey = ()


class Collector(Protocol):
    """A source of samples. `collect` reads the current values; it may raise, and the
    runner then reports the collector as down and carries on with the others.

    A collector whose source can be absent for long, such as a container engine, may
    instead return no samples and set an attribute `up` to False. The runner reports
    that as down too, and the collector logs the outage itself, once.
    """

    name: str

    def __init__(self, config: Config) -> None: ...

    def collect(self) -> Iterable[Sample]: ...
