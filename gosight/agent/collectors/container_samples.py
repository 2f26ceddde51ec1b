"""Turn the Docker Engine API's replies about one container into samples.

Pure functions: each call gets the replies of one container and returns its samples,
so nothing derived from one container or metric can leak into another. Counters are
the engine's cumulative values, converted to base units and otherwise unchanged.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gosight.agent.collectors.base import ResourceKey, Sample
from gosight.model import ENDPOINT_KIND_ATTRIBUTE

# Docker's container states, in the order of its documentation. Podman's compatible
# API maps its own states onto these.
STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
HEALTH_STATUSES = ("starting", "healthy", "unhealthy")
# States in which the container has a cgroup, so its statistics mean something.
STATS_STATES = frozenset({"running", "paused"})

ENDPOINT_PREFIX = "ctr-"
_NS_PER_S = 1e9
_NO_TIME = "0001-01-01T00:00:00Z"
_INVALID_LABEL_CHARACTERS = re.compile(r"[^a-zA-Z0-9_]")

# (engine or /proc/net/dev field, metric) for every network counter.
NETWORK_FIELDS = (
    ("rx_bytes", "container_network_receive_bytes_total"),
    ("tx_bytes", "container_network_transmit_bytes_total"),
    ("rx_packets", "container_network_receive_packets_total"),
    ("tx_packets", "container_network_transmit_packets_total"),
    ("rx_errors", "container_network_receive_errors_total"),
    ("tx_errors", "container_network_transmit_errors_total"),
    ("rx_dropped", "container_network_receive_packets_dropped_total"),
    ("tx_dropped", "container_network_transmit_packets_dropped_total"),
)


@dataclass(frozen=True)
class ContainerInfo:
    """The facts about one container from the container list and its inspect reply."""

    container_id: str
    name: str
    image: str
    state: str
    labels: dict[str, str] = field(default_factory=dict)
    health: str = ""
    memory_limit_bytes: int = 0
    started_at_s: float | None = None
    pid: int = 0
    host_network: bool = False

    @property
    def endpoint_id(self) -> str:
        return endpoint_id(self.container_id)


class MemoryBreakdown(NamedTuple):
    """Parts of a cgroup's memory.stat, in bytes."""

    rss: int
    cache: int
    inactive_file: int


class HostView(NamedTuple):
    """Per-container kernel files read on the host; None where they could not be read."""

    memory_stat: dict[str, int] | None
    net_dev: dict[str, dict[str, int]] | None


def endpoint_id(container_id: str) -> str:
    """Return the endpoint id of a container: ctr- and the first 12 characters of its id."""
    return ENDPOINT_PREFIX + container_id[:12]


def describe(entry: Mapping[str, Any], inspect: Mapping[str, Any] | None) -> ContainerInfo:
    """Combine an entry of GET /containers/json with the container's inspect reply, when there is one."""
    names = entry.get("Names") or []
    name = names[0].lstrip("/") if names else ""
    inspect = inspect or {}
    state = inspect.get("State") or {}
    host_config = inspect.get("HostConfig") or {}
    health = state.get("Health") or {}
    return ContainerInfo(
        container_id=entry["Id"],
        name=name,
        image=entry.get("Image") or (inspect.get("Config") or {}).get("Image", ""),
        state=str(entry.get("State", "")).lower(),
        labels=dict(entry.get("Labels") or {}),
        health=str(health.get("Status") or "").lower(),
        memory_limit_bytes=int(host_config.get("Memory") or 0),
        started_at_s=parse_time(state.get("StartedAt")),
        pid=int(state.get("Pid") or 0),
        host_network=host_config.get("NetworkMode") == "host",
    )


def parse_time(text: str | None) -> float | None:
    """Parse the engine's RFC 3339 time with up to nanoseconds; None for its zero time or no time."""
    if not text or text.startswith(_NO_TIME[:4]):
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    moment = datetime.datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def label_name(container_label: str) -> str:
    """Return the metric label for a container label: container_label_ and the name with invalid characters as _."""
    return "container_label_" + _INVALID_LABEL_CHARACTERS.sub("_", container_label)


def series_labels(info: ContainerInfo, label_names: tuple[str, ...]) -> dict[str, str]:
    """Return the labels of every series of the container: id, name, image and the chosen container labels."""
    labels = {"id": info.container_id, "name": info.name, "image": info.image}
    for container_label in label_names:
        value = info.labels.get(container_label)
        if value:
            labels[label_name(container_label)] = value
    return labels


def resource_key(info: ContainerInfo, runtime: str) -> ResourceKey:
    """Return the OTLP resource attributes of the container's endpoint, following OpenTelemetry's container.*."""
    return tuple(sorted({
        "container.id": info.container_id,
        "container.name": info.name,
        "container.image.name": info.image,
        "container.runtime": runtime,
        "gosight.endpoint.id": info.endpoint_id,
        ENDPOINT_KIND_ATTRIBUTE: "container",
    }.items()))


def info_samples(info: ContainerInfo, labels: dict[str, str], resource: ResourceKey) -> Iterator[Sample]:
    """Yield the samples every container has, whatever its state: state, health, limit and start time."""
    known_state = info.state in STATES
    for state in STATES if known_state else (*STATES, info.state):
        yield Sample("container_state", {**labels, "state": state}, 1.0 if state == info.state else 0.0, resource)
    if info.health in HEALTH_STATUSES:
        for status in HEALTH_STATUSES:
            yield Sample("container_health_status", {**labels, "status": status},
                         1.0 if status == info.health else 0.0, resource)
    yield Sample("container_spec_memory_limit_bytes", labels, float(info.memory_limit_bytes), resource)
    if info.started_at_s is not None:
        yield Sample("container_start_time_seconds", labels, info.started_at_s, resource)


def stats_samples(stats: Mapping[str, Any], host: HostView | None, info: ContainerInfo, labels: dict[str, str],
                  resource: ResourceKey) -> Iterator[Sample]:
    """Yield the resource usage samples of a running container from its stats reply and the host's files."""
    yield from _cpu_samples(stats.get("cpu_stats") or {}, labels, resource)
    yield from _memory_samples(stats.get("memory_stats") or {}, host, labels, resource)
    if not info.host_network:
        # A container on the host's network shares its interfaces, which the network
        # collector reports already.
        yield from _network_samples(stats.get("networks"), host, labels, resource)
    yield from _block_io_samples(stats.get("blkio_stats") or {}, labels, resource)
    threads = (stats.get("pids_stats") or {}).get("current")
    if threads is not None:
        yield Sample("container_threads", labels, float(threads), resource)


def _cpu_samples(cpu: Mapping[str, Any], labels: dict[str, str], resource: ResourceKey) -> Iterator[Sample]:
    usage = cpu.get("cpu_usage") or {}
    # The engine reports CPU time in nanoseconds, on cgroup v1 and v2 alike.
    for key, name in (("total_usage", "container_cpu_usage_seconds_total"),
                      ("usage_in_usermode", "container_cpu_user_seconds_total"),
                      ("usage_in_kernelmode", "container_cpu_system_seconds_total")):
        if usage.get(key) is not None:
            yield Sample(name, labels, usage[key] / _NS_PER_S, resource)


def _memory_samples(memory: Mapping[str, Any], host: HostView | None, labels: dict[str, str],
                    resource: ResourceKey) -> Iterator[Sample]:
    usage = memory.get("usage")
    if usage is None:
        return
    yield Sample("container_memory_usage_bytes", labels, float(usage), resource)
    # Docker copies memory.stat into its reply. Podman's compatible API leaves it out,
    # so the collector then uses the host's file when the agent can read it.
    stat = memory.get("stats") or (host.memory_stat if host else None)
    breakdown = memory_breakdown(stat) if stat else None
    if breakdown is None:
        return
    yield Sample("container_memory_rss", labels, float(breakdown.rss), resource)
    yield Sample("container_memory_cache", labels, float(breakdown.cache), resource)
    working_set = max(0, int(usage) - breakdown.inactive_file)
    yield Sample("container_memory_working_set_bytes", labels, float(working_set), resource)


def memory_breakdown(stat: Mapping[str, int]) -> MemoryBreakdown | None:
    """Read RSS, page cache and inactive file pages from memory.stat of cgroup v1 or v2, as cAdvisor does."""
    if "anon" in stat:  # cgroup v2
        return MemoryBreakdown(int(stat["anon"]), int(stat.get("file", 0)), int(stat.get("inactive_file", 0)))
    if "total_rss" in stat:  # cgroup v1, counting the cgroup's descendants as well
        return MemoryBreakdown(int(stat["total_rss"]), int(stat.get("total_cache", 0)),
                               int(stat.get("total_inactive_file", 0)))
    if "rss" in stat:  # cgroup v1 without hierarchy totals
        return MemoryBreakdown(int(stat["rss"]), int(stat.get("cache", 0)), int(stat.get("inactive_file", 0)))
    return None


def _network_samples(engine_networks: Mapping[str, Any] | None, host: HostView | None, labels: dict[str, str],
                     resource: ResourceKey) -> Iterator[Sample]:
    # The container's own /proc/<pid>/net/dev names the real interfaces; Podman's
    # compatible API sums them under one name "network" and reports no packet counts.
    interfaces = host.net_dev if host and host.net_dev is not None else engine_networks or {}
    for interface, counters in interfaces.items():
        if interface == "lo":
            continue
        interface_labels = {**labels, "interface": interface}
        for key, name in NETWORK_FIELDS:
            if counters.get(key) is not None:
                yield Sample(name, interface_labels, float(counters[key]), resource)


def _block_io_samples(blkio: Mapping[str, Any], labels: dict[str, str], resource: ResourceKey) -> Iterator[Sample]:
    totals: dict[tuple[str, str], float] = {}
    for entry in blkio.get("io_service_bytes_recursive") or ():
        operation = str(entry.get("op", "")).lower()
        if operation not in ("read", "write"):
            continue
        device = device_name(int(entry.get("major", 0)), int(entry.get("minor", 0)))
        totals[(device, operation)] = totals.get((device, operation), 0.0) + float(entry.get("value", 0))
    for (device, operation), value in sorted(totals.items()):
        name = "container_fs_reads_bytes_total" if operation == "read" else "container_fs_writes_bytes_total"
        yield Sample(name, {**labels, "device": device}, value, resource)


@functools.lru_cache(maxsize=256)
def device_name(major: int, minor: int, sys_root: str = "/sys") -> str:
    """Return /dev/<name> of a block device from sysfs, or major:minor when sysfs does not name it."""
    try:
        text = Path(f"{sys_root}/dev/block/{major}:{minor}/uevent").read_text(encoding="ascii", errors="replace")
    except OSError:
        return f"{major}:{minor}"
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "DEVNAME" and value:
            return "/dev/" + value
    return f"{major}:{minor}"
