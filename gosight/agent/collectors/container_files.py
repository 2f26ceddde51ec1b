"""Read a container's kernel counters on the host, through its main process in /proc.

The engine's stats reply lacks some of them: Podman's compatible API (4.x) leaves
out memory.stat and reports all interfaces as one, without packet counts. When the
agent runs on the container's host and can read /proc/<pid>, these files give the
same numbers the engine would read. A process id is only trusted when its cgroup
names the container, which rules out a recycled pid and another pid namespace.
"""

from __future__ import annotations

import os

from gosight.agent.collectors.container_samples import HostView

PROC = "/proc"
CGROUP_ROOT = "/sys/fs/cgroup"

# /proc/net/dev columns after the interface name, in the kernel's order; the
# engine's field names for the ones the collector reports.
_NET_DEV_COLUMNS = {0: "rx_bytes", 1: "rx_packets", 2: "rx_errors", 3: "rx_dropped",
                    8: "tx_bytes", 9: "tx_packets", 10: "tx_errors", 11: "tx_dropped"}


def read_host_view(pid: int, container_id: str, proc: str = PROC, cgroup_root: str = CGROUP_ROOT) -> HostView | None:
    """Read memory.stat and net/dev of the container whose main process is `pid`; None when not visible."""
    if pid <= 0:
        return None
    try:
        with open(f"{proc}/{pid}/cgroup", encoding="utf-8", errors="replace") as file:
            cgroups = file.read()
    except OSError:
        return None
    if container_id not in cgroups:
        return None
    return HostView(_read_memory_stat(cgroups, cgroup_root), _read_net_dev(f"{proc}/{pid}/net/dev"))


def memory_stat_path(cgroups: str, cgroup_root: str = CGROUP_ROOT) -> str | None:
    """Return the memory.stat file of the cgroup named in /proc/<pid>/cgroup text, v1 or v2."""
    unified = None
    for line in cgroups.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            return os.path.join(cgroup_root, "memory", path.lstrip("/"), "memory.stat")
        if controllers == "":
            unified = path
    if unified is None or not os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
        return None
    return os.path.join(cgroup_root, unified.lstrip("/"), "memory.stat")


def parse_memory_stat(text: str) -> dict[str, int]:
    values = {}
    for line in text.splitlines():
        key, _, number = line.partition(" ")
        if number.strip().isdigit():
            values[key] = int(number)
    return values


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """Parse /proc/<pid>/net/dev into counters per interface, named as in the engine's stats reply."""
    interfaces: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        columns = rest.split()
        if not sep or len(columns) < 12:
            continue
        interfaces[name.strip()] = {key: int(columns[index]) for index, key in _NET_DEV_COLUMNS.items()}
    return interfaces


def _read_memory_stat(cgroups: str, cgroup_root: str) -> dict[str, int] | None:
    path = memory_stat_path(cgroups, cgroup_root)
    if path is None:
        return None
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return parse_memory_stat(file.read())
    except OSError:
        return None


def _read_net_dev(path: str) -> dict[str, dict[str, int]] | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return parse_net_dev(file.read())
    except OSError:
        return None
