"""Block device I/O counters, as node_exporter's diskstats collector reports them."""

from __future__ import annotations

from collections.abc import Iterator

import psutil

from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config

# psutil field, metric name and the factor to node_exporter's unit. psutil already
# turns the kernel's 512-byte sectors into bytes; its times are milliseconds.
FIELDS = (
    ("read_count", "node_disk_reads_completed_total", 1.0),
    ("write_count", "node_disk_writes_completed_total", 1.0),
    ("read_bytes", "node_disk_read_bytes_total", 1.0),
    ("write_bytes", "node_disk_written_bytes_total", 1.0),
    ("read_time", "node_disk_read_time_seconds_total", 0.001),
    ("write_time", "node_disk_write_time_seconds_total", 0.001),
    ("busy_time", "node_disk_io_time_seconds_total", 0.001),
    ("read_merged_count", "node_disk_reads_merged_total", 1.0),
    ("write_merged_count", "node_disk_writes_merged_total", 1.0),
)


class DiskCollector:
    name = "disk"

    def __init__(self, config: Config) -> None:
        self._exclude = procfs.compile_exclude(config["agent.disk.exclude_devices"])

    def collect(self) -> Iterator[Sample]:
        # nowrap=False: psutil would otherwise add back what a 32-bit counter lost when
        # it wrapped, and the value would no longer be the kernel's.
        counters = psutil.disk_io_counters(perdisk=True, nowrap=False) or {}
        for device, stats in counters.items():
            if procfs.is_excluded(self._exclude, device):
                continue
            labels = {"device": device}
            # Each operating system's psutil has a different subset of the fields.
            for field, name, scale in FIELDS:
                value = getattr(stats, field, None)
                if value is not None:
                    yield Sample(name, labels, value * scale)
