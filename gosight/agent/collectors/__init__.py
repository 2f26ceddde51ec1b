"""The collectors, registered by name in the order of COLLECTOR_NAMES: the host's, then the containers'."""

from __future__ import annotations

from gosight.agent.collectors.containers import ContainersCollector
from gosight.agent.collectors.cpu import CpuCollector
from gosight.agent.collectors.disk import DiskCollector
from gosight.agent.collectors.filesystem import FilesystemCollector
from gosight.agent.collectors.host import HostCollector
from gosight.agent.collectors.load import LoadCollector
from gosight.agent.collectors.memory import MemoryCollector
from gosight.agent.collectors.network import NetworkCollector
from gosight.agent.collectors.processes import ProcessesCollector
from gosight.config import Config

COLLECTORS: dict[str, type] = {
    collector.name: collector
    for collector in (
        CpuCollector,
        LoadCollector,
        MemoryCollector,
        FilesystemCollector,
        DiskCollector,
        NetworkCollector,
        HostCollector,
        ProcessesCollector,
        ContainersCollector,
    )
}


def build_collectors(config: Config) -> list:
    """Create the collectors named in agent.collectors, in the order listed, each once."""
    return [COLLECTORS[name](config) for name in dict.fromkeys(config["agent.collectors"])]
