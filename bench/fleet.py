"""A synthetic fleet shaped like GoSight agent data, encoded as OTLP requests with numpy.

Each host has 100 series named and labelled as node_exporter does: CPU time per CPU
and mode, memory, load, tasks, file systems, disks and network devices, one sample
per series per interval. Counters only grow, gauges wander, and values are rounded
the way the kernel reports them, so compression and PromQL see realistic data.

Requests are built from byte templates: a NumberDataPoint of one series differs
between intervals only in its fixed64 time and double value, so a series' points
are one numpy array with those two columns written in. `check_encoding` compares
the result with the OTLP classes' own decoding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

GIB = 2**30
CPUS = 4
CPU_MODES = ("idle", "user", "system", "iowait", "irq", "softirq", "nice", "steal")
# Share of one CPU's time per mode, on average.
CPU_SHARE = {"idle": 0.80, "user": 0.12, "system": 0.05, "iowait": 0.015, "irq": 0.002, "softirq": 0.008,
             "nice": 0.004, "steal": 0.001}
MOUNTS = (("/", "/dev/vda1", "ext4", 100 * GIB), ("/boot", "/dev/vda15", "vfat", GIB // 2),
          ("/var/lib/data", "/dev/vdb", "xfs", 500 * GIB))
DISKS = ("vda", "vdb")
NETWORK_DEVICES = ("lo", "eth0", "eth1")
MEMORY_GAUGES = ("MemTotal", "MemAvailable", "MemFree", "Cached", "Buffers", "SwapTotal", "SwapFree",
                 "SwapCached", "Slab", "PageTables", "Dirty", "Writeback")

_TIME_MARK = 0x0102030405060708
_VALUE_MARK = 1234.56789e-300


@dataclass(frozen=True)
class SeriesSpec:
    metric: str
    kind: str  # "counter" or "gauge"
    unit: str
    attributes: tuple[tuple[str, str], ...]


def host_series() -> list[SeriesSpec]:
    """Return the 100 series of one host, grouped by metric in a stable order."""
    specs: list[SeriesSpec] = []
    for cpu in range(CPUS):
        for mode in CPU_MODES:
            specs.append(SeriesSpec("node_cpu_seconds_total", "counter", "s", (("cpu", str(cpu)), ("mode", mode))))
    specs.sort(key=lambda spec: spec.metric)
    for name in MEMORY_GAUGES:
        specs.append(SeriesSpec(f"node_memory_{name}_bytes", "gauge", "By", ()))
    for name in ("node_load1", "node_load5", "node_load15", "node_procs_running", "node_procs_blocked"):
        specs.append(SeriesSpec(name, "gauge", "", ()))
    for name in ("node_context_switches_total", "node_intr_total", "node_forks_total"):
        specs.append(SeriesSpec(name, "counter", "", ()))
    specs.append(SeriesSpec("node_boot_time_seconds", "gauge", "s", ()))
    specs.append(SeriesSpec("node_time_seconds", "gauge", "s", ()))
    for metric, unit in (("node_filesystem_size_bytes", "By"), ("node_filesystem_avail_bytes", "By"),
                         ("node_filesystem_files", ""), ("node_filesystem_files_free", "")):
        for mountpoint, device, fstype, _ in MOUNTS:
            specs.append(SeriesSpec(metric, "gauge", unit,
                                    (("device", device), ("fstype", fstype), ("mountpoint", mountpoint))))
    for metric, unit in (("node_disk_read_bytes_total", "By"), ("node_disk_written_bytes_total", "By"),
                         ("node_disk_reads_completed_total", ""), ("node_disk_writes_completed_total", ""),
                         ("node_disk_io_time_seconds_total", "s")):
        for disk in DISKS:
            specs.append(SeriesSpec(metric, "counter", unit, (("device", disk),)))
    for direction in ("receive", "transmit"):
        for metric, unit in ((f"node_network_{direction}_bytes_total", "By"),
                             (f"node_network_{direction}_packets_total", ""),
                             (f"node_network_{direction}_errs_total", ""),
                             (f"node_network_{direction}_drop_total", "")):
            for device in NETWORK_DEVICES:
                specs.append(SeriesSpec(metric, "counter", unit, (("device", device),)))
    return specs


def host_values(specs: list[SeriesSpec], host: int, start_s: int, interval_s: int, points: int) -> np.ndarray:
    """Return values[series, point] for one host; deterministic for a given host number."""
    rng = np.random.default_rng(1000 + host)
    out = np.empty((len(specs), points), dtype=np.float64)
    times = start_s + np.arange(points, dtype=np.float64) * interval_s
    busy = 0.5 + rng.random()  # some hosts work harder than others
    memory_total = float(rng.choice([8, 16, 32, 64])) * GIB
    for row, spec in enumerate(specs):
        attrs = dict(spec.attributes)
        name = spec.metric
        if name == "node_cpu_seconds_total":
            share = CPU_SHARE[attrs["mode"]] * (busy if attrs["mode"] != "idle" else 1.0)
            steps = np.round(np.clip(rng.normal(share, share / 3, points), 0, 1) * interval_s, 2)
            out[row] = np.round(rng.random() * 1e6 + np.cumsum(steps), 2)
        elif name.startswith("node_memory_"):
            out[row] = _memory(name, memory_total, rng, points)
        elif name.startswith("node_load"):
            walk = np.abs(np.cumsum(rng.normal(0, 0.05, points))) + busy
            out[row] = np.round(walk, 2)
        elif name.startswith("node_procs_"):
            out[row] = rng.poisson(2 * busy if name.endswith("running") else 0.2, points).astype(np.float64)
        elif name in ("node_context_switches_total", "node_intr_total", "node_forks_total"):
            rate = {"node_context_switches_total": 3000, "node_intr_total": 2000, "node_forks_total": 5}[name]
            out[row] = rng.integers(1e6, 1e9) + np.cumsum(rng.poisson(rate * busy * interval_s, points))
        elif name == "node_boot_time_seconds":
            out[row] = float(start_s - rng.integers(86_400, 90 * 86_400))
        elif name == "node_time_seconds":
            out[row] = times
        elif name.startswith("node_filesystem_"):
            out[row] = _filesystem(name, attrs["mountpoint"], rng, points)
        elif name.startswith("node_disk_"):
            out[row] = _disk(name, rng, busy, interval_s, points)
        else:
            out[row] = _network(name, attrs["device"], rng, busy, interval_s, points)
    return out


def _memory(name: str, total: float, rng: np.random.Generator, points: int) -> np.ndarray:
    if name in ("node_memory_MemTotal_bytes", "node_memory_SwapTotal_bytes"):
        return np.full(points, total if "Mem" in name else 2.0 * GIB)
    share = {"MemAvailable": 0.6, "MemFree": 0.2, "Cached": 0.3, "Buffers": 0.02, "SwapFree": 0.9,
             "SwapCached": 0.001, "Slab": 0.03, "PageTables": 0.005, "Dirty": 0.0005, "Writeback": 0.00001}
    key = name[len("node_memory_"):-len("_bytes")]
    base = (2.0 * GIB if key.startswith("Swap") else total) * share[key]
    walk = base * (1 + np.clip(np.cumsum(rng.normal(0, 0.002, points)), -0.5, 0.5))
    return np.floor(walk / 4096) * 4096


def _filesystem(name: str, mountpoint: str, rng: np.random.Generator, points: int) -> np.ndarray:
    size = float(next(size for mount, _, _, size in MOUNTS if mount == mountpoint))
    files = np.floor(size / 16384)
    if name.endswith("size_bytes"):
        return np.full(points, size)
    if name.endswith("files"):
        return np.full(points, files)
    base = size if name.endswith("avail_bytes") else files
    used = np.cumsum(rng.exponential(1e-7, points))
    return np.floor(base * np.clip(0.7 - used, 0.05, 1.0) / (4096 if name.endswith("bytes") else 1)) * (
        4096 if name.endswith("bytes") else 1)


def _disk(name: str, rng: np.random.Generator, busy: float, interval_s: int, points: int) -> np.ndarray:
    if name.endswith("io_time_seconds_total"):
        steps = np.round(np.clip(rng.normal(0.05 * busy, 0.02, points), 0, 1) * interval_s, 3)
    elif name.endswith("bytes_total"):
        steps = rng.poisson(200 * busy, points) * 512.0 * 64
    else:
        steps = rng.poisson(20 * busy * interval_s, points).astype(np.float64)
    return np.round(rng.integers(1e6, 1e10) + np.cumsum(steps), 3)


def _network(name: str, device: str, rng: np.random.Generator, busy: float, interval_s: int,
             points: int) -> np.ndarray:
    scale = {"lo": 0.1, "eth0": 1.0, "eth1": 0.3}[device] * busy * interval_s
    if name.endswith("bytes_total"):
        steps = rng.poisson(50_000 * scale, points).astype(np.float64)
    elif name.endswith("packets_total"):
        steps = rng.poisson(80 * scale, points).astype(np.float64)
    else:
        steps = (rng.random(points) < 0.01).astype(np.float64)
    return rng.integers(0, 1e9) + np.cumsum(steps)


# OTLP encoding.

def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass
class _PointTemplate:
    record: np.ndarray  # one data_points field record as uint8
    time_offset: int
    value_offset: int


class HostEncoder:
    """Encodes one host's samples over a run of intervals as one ExportMetricsServiceRequest."""

    def __init__(self, host: int, specs: list[SeriesSpec], start_time_ns: int):
        self.host = host
        self.specs = specs
        name = f"bench-{host:04d}"
        resource = Resource(attributes=[
            _attribute("service.name", "gosight-agent"), _attribute("host.name", name),
            _attribute("service.instance.id", name), _attribute("gosight.endpoint.id", f"host-bench{host:07d}")])
        self.resource_field = _field(0x0A, resource.SerializeToString())
        self.templates = [self._template(spec, start_time_ns) for spec in specs]
        self.metric_rows: list[tuple[SeriesSpec, list[int]]] = []
        for row, spec in enumerate(specs):
            if self.metric_rows and self.metric_rows[-1][0].metric == spec.metric:
                self.metric_rows[-1][1].append(row)
            else:
                self.metric_rows.append((spec, [row]))

    @staticmethod
    def _template(spec: SeriesSpec, start_time_ns: int) -> _PointTemplate:
        point = metrics_pb2.NumberDataPoint(time_unix_nano=_TIME_MARK, as_double=_VALUE_MARK)
        if spec.kind == "counter":
            point.start_time_unix_nano = start_time_ns
        point.attributes.extend([_attribute(key, value) for key, value in spec.attributes])
        raw = _field(0x0A, point.SerializeToString())
        time_offset = raw.find(struct.pack("<Q", _TIME_MARK))
        value_offset = raw.find(struct.pack("<d", _VALUE_MARK))
        assert time_offset > 0, "time marker not found in the data point template"
        assert value_offset > 0, "value marker not found in the data point template"
        return _PointTemplate(np.frombuffer(raw, dtype=np.uint8), time_offset, value_offset)

    def encode(self, times_ns: np.ndarray, values: np.ndarray) -> bytes:
        """Encode values[series, point] stamped times_ns[point]."""
        stamps = np.ascontiguousarray(times_ns, dtype="<u8").view(np.uint8).reshape(-1, 8)
        metrics = []
        for spec, rows in self.metric_rows:
            points = []
            for row in rows:
                template = self.templates[row]
                table = np.tile(template.record, (times_ns.size, 1))
                table[:, template.time_offset:template.time_offset + 8] = stamps
                table[:, template.value_offset:template.value_offset + 8] = np.ascontiguousarray(
                    values[row], dtype="<f8").view(np.uint8).reshape(-1, 8)
                points.append(table.tobytes())
            header = metrics_pb2.Metric(name=spec.metric, unit=spec.unit).SerializeToString()
            if spec.kind == "counter":
                # Sum: data_points = 1, aggregation_temporality = 2 (cumulative), is_monotonic = 3.
                body = header + _field(0x3A, b"".join(points) + b"\x10\x02\x18\x01")
            else:
                body = header + _field(0x2A, b"".join(points))  # Gauge: data_points = 1
            metrics.append(_field(0x12, body))  # ScopeMetrics.metrics = 2
        scope_metrics = _field(0x12, b"".join(metrics))  # ResourceMetrics.scope_metrics = 2
        return _field(0x0A, self.resource_field + scope_metrics)  # request.resource_metrics = 1


def check_encoding(encoder: HostEncoder, times_ns: np.ndarray, values: np.ndarray) -> None:
    """Raise AssertionError unless the template encoding decodes to the intended points."""
    request = ExportMetricsServiceRequest.FromString(encoder.encode(times_ns, values))
    decoded = []
    for metric in request.resource_metrics[0].scope_metrics[0].metrics:
        data = metric.sum if metric.HasField("sum") else metric.gauge
        if metric.HasField("sum"):
            assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == 2, metric.name
        for point in data.data_points:
            decoded.append((metric.name, tuple((kv.key, kv.value.string_value) for kv in point.attributes),
                            point.time_unix_nano, point.as_double))
    expected = [(spec.metric, spec.attributes, int(times_ns[column]), float(values[row, column]))
                for row, spec in enumerate(encoder.specs) for column in range(times_ns.size)]
    assert decoded == expected, "template-encoded OTLP request does not decode to the intended points"
