"""Process and scheduler counts from /proc/stat and /proc/loadavg.

Everything here comes from a few small files, so the cost does not grow with the
number of processes. Counts per process state would need a read of every
/proc/<pid>/stat and are not collected.
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil

from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config

# /proc/stat line and metric name, as node_exporter's stat collector reports them.
STAT_METRICS = (
    ("procs_running", "node_procs_running"),
    ("procs_blocked", "node_procs_blocked"),
    ("processes", "node_forks_total"),
    ("ctxt", "node_context_switches_total"),
    ("intr", "node_intr_total"),
)

# /proc/sys file and metric name, limits that node_exporter's processes collector reports.
LIMIT_METRICS = (
    ("kernel/threads-max", "node_processes_max_threads"),
    ("kernel/pid_max", "node_processes_max_processes"),
)


class ProcessesCollector:
    name = "processes"

    def __init__(self, config: Config) -> None:
        pass

    def collect(self) -> Iterator[Sample]:
        if not procfs.IS_LINUX:
            stats = psutil.cpu_stats()
            yield Sample("node_context_switches_total", {}, stats.ctx_switches)
            yield Sample("node_intr_total", {}, stats.interrupts)
            return

        counters = procfs.read_stat().counters
        for key, name in STAT_METRICS:
            if key in counters:
                yield Sample(name, {}, counters[key])

        # The kernel's count of scheduling entities, which node_exporter gets instead by
        # summing the thread counts of every /proc/<pid>/stat.
        yield Sample("node_processes_threads", {}, procfs.read_loadavg().threads)
        for path, name in LIMIT_METRICS:
            yield Sample(name, {}, procfs.read_int(procfs.PROC + "/sys/" + path))
