"""System load averages over 1, 5 and 15 minutes."""

from __future__ import annotations

from collections.abc import Iterator

import psutil

from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config


class LoadCollector:
    name = "load"

    def __init__(self, config: Config) -> None:
        pass

    def collect(self) -> Iterator[Sample]:
        if procfs.IS_LINUX:
            # node_exporter reads /proc/loadavg, which rounds to two decimals, while
            # glibc's getloadavg(3) behind psutil's returns more digits (seen with 2.36).
            load1, load5, load15 = procfs.read_loadavg()[:3]
        else:
            # On Windows psutil estimates the load from the processor queue length, and
            # returns zeros for the first seconds after the first call.
            load1, load5, load15 = psutil.getloadavg()
        yield Sample("node_load1", {}, load1)
        yield Sample("node_load5", {}, load5)
        yield Sample("node_load15", {}, load15)
