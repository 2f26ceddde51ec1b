"""CPU time per CPU and mode, as node_exporter's cpu collector reports it."""

from __future__ import annotations

from collections.abc import Iterator

import psutil

from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config

# Columns of a /proc/stat cpu line, in the kernel's order.
STAT_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

# The kernel counts guest time in user, and guest_nice time in nice, as well.
# node_exporter's Linux cpu collector does not subtract it, and neither does this
# one: node_cpu_seconds_total{mode="user"} includes time spent running guests, and
# node_cpu_guest_seconds_total shows that share.
GUEST_MODES = (("guest", "user"), ("guest_nice", "nice"))

# A CPU whose idle time drops by this much was taken offline and brought back, so
# its counters restarted from zero. node_exporter uses the same limit.
HOTPLUG_JUMP_BACK_S = 3.0


class CpuCollector:
    name = "cpu"

    def __init__(self, config: Config) -> None:
        self._previous: dict[str, dict[str, float]] = {}

    def collect(self) -> Iterator[Sample]:
        for cpu, times in read_cpu_times().items():
            times = self._keep_monotonic(cpu, times)
            for mode in MODES:
                if mode in times:
                    yield Sample("node_cpu_seconds_total", {"cpu": cpu, "mode": mode}, times[mode])
            for column, mode in GUEST_MODES:
                if column in times:
                    yield Sample("node_cpu_guest_seconds_total", {"cpu": cpu, "mode": mode}, times[column])

    def _keep_monotonic(self, cpu: str, times: dict[str, float]) -> dict[str, float]:
        """Keep each counter at the highest value seen, so that it never goes back.

        The kernel's CPU counters, iowait and idle above all, can step back by a
        tick, which a rate() would read as a counter reset. node_exporter keeps them
        monotonic the same way. After a hotplug the counters restart from zero and
        are taken as they are.
        """
        previous = self._previous.get(cpu)
        if previous is not None and previous.get("idle", 0.0) - times.get("idle", 0.0) >= HOTPLUG_JUMP_BACK_S:
            previous = None
        if previous is not None:
            times = {column: max(value, previous.get(column, value)) for column, value in times.items()}
        self._previous[cpu] = times
        return times


def read_cpu_times() -> dict[str, dict[str, float]]:
    """Return the seconds each CPU spent in each mode, keyed by CPU number and psutil field name."""
    if procfs.IS_LINUX:
        return _read_proc_stat_times()
    # psutil numbers CPUs by list position, which matches the CPU number unless
    # CPUs are offline. Its field names differ by operating system.
    return {str(index): times._asdict() for index, times in enumerate(psutil.cpu_times(percpu=True))}


def _read_proc_stat_times() -> dict[str, dict[str, float]]:
    # /proc/stat is read directly because it names each CPU, where psutil numbers them
    # by position and so renumbers the CPUs after an offline one.
    ticks_per_second = procfs.clock_ticks_per_second()
    result = {}
    for cpu, ticks in procfs.read_stat().cpu_ticks.items():
        result[cpu] = {column: tick / ticks_per_second for column, tick in zip(STAT_COLUMNS, ticks)}
    return result
