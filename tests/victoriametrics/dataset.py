"""A small fleet's worth of regular scrapes, as OTLP requests, for the VictoriaMetrics tests.

Three hosts report every 15 s for three hours: node_exporter counters and gauges (the
dashboard's metrics), a classic histogram, a counter that resets, a series that ends
with a staleness marker and one that simply stops. Values are exact in float64
(whole numbers or multiples of 1/4), so both backends store identical samples and
any difference in results comes from query evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from tests.support.otlp import attribute

INTERVAL_S = 15
POINTS = 720  # three hours
HOSTS = ("web1", "web2", "db1")
HISTOGRAM_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Points after which two series end: one with a staleness marker, one without.
ENDS_WITH_MARKER_AT = 480
STOPS_AT = 600
# The point at which app_requests_total restarts from zero.
RESET_AT = 400


@dataclass(frozen=True)
class Dataset:
    start_s: int  # time of the first point
    requests: list[ExportMetricsServiceRequest]
    samples: int  # samples the server stores

    @property
    def end_s(self) -> int:
        return self.start_s + (POINTS - 1) * INTERVAL_S


def build(end_s: int, chunk_points: int = 120) -> Dataset:
    """Build the requests for points ending at `end_s`, `chunk_points` points of one host per request."""
    start_s = end_s - (POINTS - 1) * INTERVAL_S
    requests = []
    samples = 0
    for host_index, host in enumerate(HOSTS):
        for first in range(0, POINTS, chunk_points):
            request, count = _host_request(host, host_index, start_s, range(first, min(POINTS, first + chunk_points)))
            requests.append(request)
            samples += count
    return Dataset(start_s, requests, samples)


def _host_request(host: str, host_index: int, start_s: int, points: range) -> tuple[ExportMetricsServiceRequest, int]:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend([
        attribute("service.name", "gosight-agent"), attribute("host.name", host),
        attribute("service.instance.id", host), attribute("gosight.endpoint.id", f"host-{host}")])
    scope = resource_metrics.scope_metrics.add()
    builder = _Builder(scope, start_s, points)
    scale = host_index + 1

    for cpu in ("0", "1"):
        for mode, per_s in (("idle", 0.75), ("user", 0.125 * scale), ("system", 0.0625), ("iowait", 0.0)):
            builder.counter("node_cpu_seconds_total", "s", {"cpu": cpu, "mode": mode},
                            lambda i, per_s=per_s, cpu=cpu: 1000.0 * scale + int(cpu) * 7 + per_s * INTERVAL_S * i
                            + (i // 3) * 0.25)
    total = 8 * 2**30 * scale
    builder.gauge("node_memory_MemTotal_bytes", "By", {}, lambda i: float(total))
    builder.gauge("node_memory_MemAvailable_bytes", "By", {}, lambda i: float(total // 2 + (i % 40) * 4096 * scale))
    builder.gauge("node_memory_MemFree_bytes", "By", {}, lambda i: float(total // 4 + (i % 7) * 4096))
    builder.gauge("node_memory_Cached_bytes", "By", {}, lambda i: float(total // 8 + (i % 11) * 4096))
    builder.gauge("node_memory_Buffers_bytes", "By", {}, lambda i: float(2**20 * (10 + i % 5)))
    builder.gauge("node_memory_SwapTotal_bytes", "By", {}, lambda i: float(2**31))
    builder.gauge("node_memory_SwapFree_bytes", "By", {}, lambda i: float(2**31 - 2**20 * (i % 13)))
    for name in ("Slab", "PageTables", "Dirty", "Writeback", "SwapCached"):
        builder.gauge(f"node_memory_{name}_bytes", "By", {}, lambda i, name=name: float(len(name) * 2**20 + i * 4096))
    for load, base in (("node_load1", 0.5), ("node_load5", 0.75), ("node_load15", 1.0)):
        builder.gauge(load, "", {}, lambda i, base=base: base * scale + (i % 8) * 0.25)
    builder.gauge("node_procs_running", "", {}, lambda i: float(1 + i % 4))
    builder.gauge("node_procs_blocked", "", {}, lambda i: float(i % 2))
    for name, per_s in (("node_context_switches_total", 900), ("node_intr_total", 500), ("node_forks_total", 2)):
        builder.counter(name, "", {}, lambda i, per_s=per_s: float(10_000 + per_s * scale * INTERVAL_S * i + i % 5))
    for mountpoint, size in (("/", 100 * 2**30), ("/var", 50 * 2**30)):
        labels = {"mountpoint": mountpoint, "device": "/dev/vda" + str(len(mountpoint)), "fstype": "ext4"}
        builder.gauge("node_filesystem_size_bytes", "By", labels, lambda i, size=size: float(size))
        builder.gauge("node_filesystem_avail_bytes", "By", labels,
                      lambda i, size=size: float(size // 2 - i * 4096 * scale))
        builder.gauge("node_filesystem_files", "", labels, lambda i, size=size: float(size // 16384))
        builder.gauge("node_filesystem_files_free", "", labels, lambda i, size=size: float(size // 32768 - i * 3))
    # A removable disk that is unmounted: the agent sends one staleness marker.
    builder.gauge("node_filesystem_avail_bytes", "By", {"mountpoint": "/mnt/usb", "device": "/dev/sdb1",
                                                        "fstype": "vfat"},
                  lambda i: float(2**30 + i * 4096), end=ENDS_WITH_MARKER_AT, marker=True)
    for direction, per_s in (("receive", 50_000), ("transmit", 20_000)):
        for device, factor in (("lo", 1), ("eth0", 10)):
            for kind, unit, rate in (("bytes", "By", per_s), ("packets", "", per_s // 1000),
                                     ("errs", "", 0), ("drop", "", 0)):
                builder.counter(f"node_network_{direction}_{kind}_total", unit, {"device": device},
                                lambda i, rate=rate, factor=factor: float(rate * factor * scale * INTERVAL_S * i
                                                                          + (i // 100)))
        # A network device that is removed without a staleness marker: its series just stops.
        builder.counter(f"node_network_{direction}_bytes_total", "By", {"device": "wlan0"},
                        lambda i, per_s=per_s: float(per_s * INTERVAL_S * i), end=STOPS_AT)
    for metric, unit, per_s in (("node_disk_read_bytes_total", "By", 4096 * 50),
                                ("node_disk_written_bytes_total", "By", 4096 * 80),
                                ("node_disk_reads_completed_total", "", 50),
                                ("node_disk_writes_completed_total", "", 80),
                                ("node_disk_io_time_seconds_total", "s", 0.25)):
        builder.counter(metric, unit, {"device": "vda"},
                        lambda i, per_s=per_s: float(per_s * scale * INTERVAL_S * i + (i % 4)))
    # An application counter that restarts from zero once.
    builder.counter("app_requests_total", "", {"handler": "/api"},
                    lambda i: float(7 * scale * (i if i < RESET_AT else i - RESET_AT)))
    for method, weight in (("GET", 3), ("POST", 1)):
        builder.histogram("http_request_duration_seconds", "s", {"method": method}, weight * scale)
    return request, builder.samples


class _Builder:
    def __init__(self, scope: metrics_pb2.ScopeMetrics, start_s: int, points: range):
        self.scope = scope
        self.start_s = start_s
        self.points = points
        self.samples = 0

    def _time_ns(self, index: int) -> int:
        return (self.start_s + index * INTERVAL_S) * 1_000_000_000

    def gauge(self, name: str, unit: str, labels: dict, value, end: int | None = None, marker: bool = False) -> None:
        metric = self.scope.metrics.add(name=name, unit=unit)
        self._points(metric.gauge.data_points, labels, value, end, marker, start_ns=0)

    def counter(self, name: str, unit: str, labels: dict, value, end: int | None = None) -> None:
        metric = self.scope.metrics.add(name=name.removesuffix("_total"), unit=unit)
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        self._points(metric.sum.data_points, labels, value, end, False, start_ns=self._time_ns(0) - 10**9)

    def _points(self, data_points, labels: dict, value, end: int | None, marker: bool, start_ns: int) -> None:
        for index in self.points:
            if end is not None and index > end:
                break
            point = data_points.add(time_unix_nano=self._time_ns(index), start_time_unix_nano=start_ns)
            point.attributes.extend([attribute(key, item) for key, item in labels.items()])
            if marker and index == end:
                point.flags = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
            else:
                point.as_double = value(index)
            self.samples += 1

    def histogram(self, name: str, unit: str, labels: dict, weight: int) -> None:
        metric = self.scope.metrics.add(name=name.removesuffix("_seconds"), unit=unit)
        metric.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        for index in self.points:
            counts = [_bucket_total(bucket, index, weight) for bucket in range(len(HISTOGRAM_BOUNDS) + 1)]
            point = metric.histogram.data_points.add(time_unix_nano=self._time_ns(index),
                                                     start_time_unix_nano=self._time_ns(0) - 10**9)
            point.attributes.extend([attribute(key, item) for key, item in labels.items()])
            point.explicit_bounds.extend(HISTOGRAM_BOUNDS)
            point.bucket_counts.extend(counts)
            point.count = sum(counts)
            point.sum = 0.25 * sum(counts)
            self.samples += len(HISTOGRAM_BOUNDS) + 3  # buckets with +Inf, _sum and _count


def _bucket_total(bucket: int, index: int, weight: int) -> int:
    """Requests counted in one bucket up to point `index`.

    Each interval adds weight * (1 + (block + bucket) % 4) requests, where the block
    changes every 60 points, so the latency distribution shifts every 15 minutes.
    """
    def added(block: int) -> int:
        return weight * (1 + (block + bucket) % 4)

    block = index // 60
    return sum(60 * added(previous) for previous in range(block)) + (index % 60 + 1) * added(block)
