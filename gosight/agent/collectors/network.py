"""Network interface traffic counters, as node_exporter's netdev collector reports them."""

from __future__ import annotations

from collections.abc import Iterator

import psutil

from gosight.agent.collectors import procfs
from gosight.agent.collectors.base import Sample
from gosight.config import Config

# psutil field and metric name. On Linux psutil reads these columns of
# /proc/net/dev, as node_exporter does.
FIELDS = (
    ("bytes_recv", "node_network_receive_bytes_total"),
    ("bytes_sent", "node_network_transmit_bytes_total"),
    ("packets_recv", "node_network_receive_packets_total"),
    ("packets_sent", "node_network_transmit_packets_total"),
    ("errin", "node_network_receive_errs_total"),
    ("errout", "node_network_transmit_errs_total"),
    ("dropin", "node_network_receive_drop_total"),
    ("dropout", "node_network_transmit_drop_total"),
)


class NetworkCollector:
    name = "network"

    def __init__(self, config: Config) -> None:
        self._exclude = procfs.compile_exclude(config["agent.network.exclude_devices"])

    def collect(self) -> Iterator[Sample]:
        # nowrap=False keeps the kernel's values: psutil would otherwise add back what a
        # 32-bit counter lost when it wrapped.
        counters = psutil.net_io_counters(pernic=True, nowrap=False)
        for device, stats in counters.items():
            if procfs.is_excluded(self._exclude, device):
                continue
            labels = {"device": device}
            for field, name in FIELDS:
                yield Sample(name, labels, getattr(stats, field))
