"""Memory and swap figures from /proc/meminfo, under node_exporter's names."""

from __future__ import annotations

from collections.abc import Iterator

import psutil

from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config

# The /proc/meminfo fields reported, all in kB in the file. node_exporter names a
# field node_memory_<field>_bytes, with "(anon)" and "(file)" written as "_anon"
# and "_file".
MEMINFO_FIELDS = (
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "SwapCached",
    "Active",
    "Inactive",
    "Active(anon)",
    "Inactive(anon)",
    "Active(file)",
    "Inactive(file)",
    "SwapTotal",
    "SwapFree",
    "Dirty",
    "Writeback",
    "AnonPages",
    "Mapped",
    "Shmem",
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "KernelStack",
    "PageTables",
    "CommitLimit",
    "Committed_AS",
)


def metric_name(field: str) -> str:
    """Return node_exporter's metric name for a /proc/meminfo field given in kB."""
    return "node_memory_" + field.replace("(", "_").replace(")", "") + "_bytes"


METRIC_NAMES = {field: metric_name(field) for field in MEMINFO_FIELDS}


class MemoryCollector:
    name = "memory"

    def __init__(self, config: Config) -> None:
        pass

    def collect(self) -> Iterator[Sample]:
        if not procfs.IS_LINUX:
            yield from _collect_psutil()
            return
        # /proc/meminfo is read directly, not through psutil.virtual_memory, because
        # psutil's `cached` adds SReclaimable to Cached, so it differs from
        # node_memory_Cached_bytes. A field an older kernel lacks is left out.
        meminfo = procfs.read_meminfo()
        for field, name in METRIC_NAMES.items():
            value = meminfo.get(field)
            if value is not None:
                yield Sample(name, {}, value)


def _collect_psutil() -> Iterator[Sample]:
    # Outside Linux only the totals whose meaning is the same everywhere are reported.
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    yield Sample("node_memory_MemTotal_bytes", {}, memory.total)
    yield Sample("node_memory_MemFree_bytes", {}, memory.free)
    yield Sample("node_memory_MemAvailable_bytes", {}, memory.available)
    yield Sample("node_memory_SwapTotal_bytes", {}, swap.total)
    yield Sample("node_memory_SwapFree_bytes", {}, swap.free)
