"""Readers of Linux /proc files and helpers shared by the host collectors.

Each reader returns the kernel's numbers unchanged apart from unit scaling, so the
collectors emit the same values as node_exporter, which reads the same files.
"""

from __future__ import annotations

import os
import re
import sys
from typing import NamedTuple

PROC = "/proc"

IS_LINUX = sys.platform.startswith("linux")


class KernelStat(NamedTuple):
    """The parts of /proc/stat that the collectors use.

    `cpu_ticks` maps a CPU number ("0", "1", ...) to its time columns in USER_HZ
    ticks, in the kernel's order: user, nice, system, idle, iowait, irq, softirq,
    steal, guest, guest_nice. Older kernels have fewer columns. `counters` contains
    the single-value lines (ctxt, btime, processes, procs_running, procs_blocked)
    and `intr`, the first number of the intr line, which is the total of all
    interrupts.
    """

    cpu_ticks: dict[str, list[int]]
    counters: dict[str, int]


def read_stat(path: str = PROC + "/stat") -> KernelStat:
    """Read and parse /proc/stat."""
    with open(path, "rb") as file:
        text = file.read()

    cpu_ticks: dict[str, list[int]] = {}
    counters: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = fields[0].decode("ascii", "replace")
        if key.startswith("cpu"):
            # The line without a number is the sum over all CPUs, which
            # node_exporter does not report.
            if len(key) > 3:
                cpu_ticks[key[3:]] = [int(value) for value in fields[1:]]
        elif len(fields) >= 2 and key in _STAT_COUNTERS:
            counters[key] = int(fields[1])
    return KernelStat(cpu_ticks, counters)


_STAT_COUNTERS = frozenset({"intr", "ctxt", "btime", "processes", "procs_running", "procs_blocked"})


def read_meminfo(path: str = PROC + "/meminfo") -> dict[str, int]:
    """Read /proc/meminfo into a map of field name to value.

    Fields given in kB are converted to bytes, because the kernel's kB is 1024
    bytes. Fields without a unit, such as HugePages_Total, are page counts and stay
    as they are.
    """
    values: dict[str, int] = {}
    with open(path, "rb") as file:
        for line in file:
            name, _, rest = line.partition(b":")
            parts = rest.split()
            if not parts:
                continue
            value = int(parts[0])
            if len(parts) > 1 and parts[1] == b"kB":
                value *= 1024
            values[name.decode("ascii", "replace")] = value
    return values


class LoadAvg(NamedTuple):
    """The fields of /proc/loadavg."""

    load1: float
    load5: float
    load15: float
    runnable: int  # tasks runnable now
    threads: int  # all tasks (processes and threads) on the host


def read_loadavg(path: str = PROC + "/loadavg") -> LoadAvg:
    """Read /proc/loadavg, for example `0.20 0.15 0.07 1/88 7537`."""
    with open(path, "rb") as file:
        fields = file.read().split()
    runnable, _, threads = fields[3].partition(b"/")
    return LoadAvg(float(fields[0]), float(fields[1]), float(fields[2]), int(runnable), int(threads))


def read_int(path: str) -> int:
    """Read a file that contains a single integer, such as /proc/sys/kernel/pid_max."""
    with open(path, "rb") as file:
        return int(file.read().split()[0])


def clock_ticks_per_second() -> int:
    """Return USER_HZ, the unit of the CPU times in /proc/stat (100 on common Linux builds)."""
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 100


def compile_exclude(pattern: str) -> re.Pattern[str] | None:
    """Compile an exclude setting, or return None for an empty pattern, which excludes nothing.

    Callers match with `search` because node_exporter's exclude flags are unanchored
    Go regular expressions. The default patterns anchor themselves with ^ and $.
    """
    if not pattern:
        return None
    return re.compile(pattern)


def is_excluded(exclude: re.Pattern[str] | None, name: str) -> bool:
    return exclude is not None and exclude.search(name) is not None
