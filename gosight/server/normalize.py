"""Turn OTLP metric requests into stored samples.

Every series gets the endpoint identity labels `endpoint_id`, `host`, `instance` and
`job`, taken from the resource. Names and attribute keys are translated to
Prometheus form. What cannot be stored is counted as rejected with a reason, and
the valid points of the same request are kept:
- delta sums and delta histograms (Prometheus has no delta type);
- exponential histograms (native histograms are not supported);
- samples stamped too far in the future, or older than the retention period.
NaN and infinite values are stored as they are, as Prometheus stores them. A point
flagged "no recorded value" becomes a Prometheus staleness marker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from gosight.model import (
    ENDPOINT_KIND_ATTRIBUTE,
    HOST_ENDPOINT_ATTRIBUTE,
    STALE_NAN,
    Labels,
    MetricMetadata,
    SampleBatch,
    make_labels,
)
from gosight.server import translate
from gosight.store.series import SeriesRegistry

if TYPE_CHECKING:
    from gosight.server.endpoints import IdentityConflict

_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK

# Resource attributes with this prefix become labels on every series of the resource.
LABEL_ATTRIBUTE_PREFIX = "gosight.label."
ENDPOINT_ATTRIBUTE = "gosight.endpoint.id"
AGENT_ATTRIBUTE = "gosight.agent.id"

# Resource attributes kept as endpoint facts, under shorter names.
_FACTS = {
    "os.type": "os", "os.description": "os_version", "os.name": "platform", "os.version": "kernel_version",
    "host.arch": "arch", "service.version": "agent_version", "host.id": "host_id",
    "telemetry.sdk.language": "sdk_language", "telemetry.sdk.name": "sdk_name",
    "container.id": "container_id", "container.name": "container_name", "container.image.name": "image",
    "container.runtime": "runtime",
}

# Pairs of resource and metric whose series ids are cached; the cache starts over beyond it.
_CACHE_LIMIT = 200_000


@dataclass
class EndpointReport:
    """What one request says about an endpoint that sent data."""

    endpoint_id: str
    hostname: str
    agent_id: str
    job: str
    instance: str
    facts: dict[str, str]
    labels: dict[str, str]
    last_data_ms: int = 0
    # "container" for a container an agent reports; empty without gosight.endpoint.kind.
    kind: str = ""
    # Endpoint id of the host the container runs on.
    parent: str = ""


# Chooses the endpoint a resource's data is stored under: it may change the report's
# endpoint_id and parent, and returns the identity conflicts it found.
EndpointFiler = Callable[[EndpointReport], "list[IdentityConflict]"]


@dataclass
class DecodeResult:
    batch: SampleBatch
    metadata: list[MetricMetadata]
    endpoints: dict[str, EndpointReport]
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    conflicts: list[IdentityConflict] = field(default_factory=list)

    def rejection_message(self) -> str:
        return "; ".join(f"{count} {reason}" for reason, count in self.reasons.most_common())


@dataclass
class _Resource:
    token: tuple
    identity: dict[str, str]
    report: EndpointReport


class MetricsDecoder:
    """Decode OTLP requests into sample batches, giving each series its id.

    Thread-safe: the series cache is a dict that CPython updates atomically, and new
    series ids come from the registry under its lock.
    """

    def __init__(self, registry: SeriesRegistry, *, max_future_ms: int, max_age_ms: int):
        self.registry = registry
        self.max_future_ms = max_future_ms
        self.max_age_ms = max_age_ms
        self._series: dict[tuple, int] = {}

    def decode(self, request: ExportMetricsServiceRequest, batch_id: str | None = None,
               now_ms: int | None = None, file_endpoint: EndpointFiler | None = None) -> DecodeResult:
        """Decode one request; `file_endpoint`, when given, chooses each resource's endpoint id."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        series_ids: list[int] = []
        timestamps_ns: list[int] = []
        values: list[float] = []
        metadata: dict[str, MetricMetadata] = {}
        endpoints: dict[str, EndpointReport] = {}
        reasons: Counter = Counter()
        conflicts: list[IdentityConflict] = []
        if len(self._series) > _CACHE_LIMIT:
            self._series = {}

        for resource_metrics in request.resource_metrics:
            resource = self._resource(resource_metrics.resource, file_endpoint, conflicts)
            endpoints[resource.report.endpoint_id] = resource.report
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    self._metric(metric, resource, series_ids, timestamps_ns, values, metadata, reasons)

        ids = np.fromiter(series_ids, dtype=np.uint32, count=len(series_ids))
        stamps = np.fromiter(timestamps_ns, dtype=np.int64, count=len(timestamps_ns)) // 1_000_000
        vals = np.fromiter(values, dtype=np.float64, count=len(values))
        stamps[stamps == 0] = now_ms

        too_new = stamps > now_ms + self.max_future_ms
        too_old = stamps < now_ms - self.max_age_ms
        if too_new.any():
            reasons[f"samples more than {self.max_future_ms // 1000} s in the future"] += int(too_new.sum())
        if too_old.any():
            reasons["samples older than the retention period"] += int(too_old.sum())
        keep = ~(too_new | too_old)
        if not keep.all():
            ids, stamps, vals = ids[keep], stamps[keep], vals[keep]

        if stamps.size:
            newest = int(stamps.max())
            for report in endpoints.values():
                report.last_data_ms = newest
        batch = SampleBatch(ids, stamps, vals, batch_id)
        return DecodeResult(batch, list(metadata.values()), endpoints, sum(reasons.values()), reasons, conflicts)

    def _metric(self, metric, resource: _Resource, series_ids: list, timestamps_ns: list, values: list,
                metadata: dict, reasons: Counter) -> None:
        kind = metric.WhichOneof("data")
        if not metric.name.strip() or len(metric.name) > MAX_NAME_CHARS:
            problem = "without a name" if not metric.name.strip() else f"with names over {MAX_NAME_CHARS} characters"
            reasons[f"points of metrics {problem}"] += _point_count(metric, kind)
            return
        if kind == "gauge":
            self._numbers(metric, metric.gauge.data_points, "gauge", resource, series_ids, timestamps_ns, values,
                          metadata, reasons)
        elif kind == "sum":
            data = metric.sum
            if data.aggregation_temporality != _CUMULATIVE and data.is_monotonic:
                reasons["points of delta sums (send cumulative temporality)"] += len(data.data_points)
                return
            prom_kind = "counter" if data.is_monotonic else "gauge"
            self._numbers(metric, data.data_points, prom_kind, resource, series_ids, timestamps_ns, values,
                          metadata, reasons)
        elif kind == "histogram":
            data = metric.histogram
            if data.aggregation_temporality != _CUMULATIVE:
                reasons["points of delta histograms (send cumulative temporality)"] += len(data.data_points)
                return
            self._histograms(metric, resource, series_ids, timestamps_ns, values, metadata, reasons)
        elif kind == "summary":
            self._summaries(metric, resource, series_ids, timestamps_ns, values, metadata, reasons)
        elif kind == "exponential_histogram":
            reasons["points of exponential histograms (not supported; use explicit buckets)"] += len(
                metric.exponential_histogram.data_points
            )

    def _numbers(self, metric, points, prom_kind: str, resource: _Resource, series_ids: list,
                 timestamps_ns: list, values: list, metadata: dict, reasons: Counter) -> None:
        name = translate.metric_name(metric.name, metric.unit, prom_kind)
        metadata[name] = MetricMetadata(name, prom_kind, metric.unit, metric.description)
        known = self._known(resource, name)
        for point in points:
            # Fast key: the string value of every attribute. Only keys without an empty
            # value are ever stored in `known`, so a hit proves every attribute was a
            # non-empty string and the key is exact; anything else takes the slow path.
            key = tuple([(kv.key, kv.value.string_value) for kv in point.attributes])
            series_id = known.get(key)
            if series_id is None:
                try:
                    series_id = self._lookup(known, key, resource, name, point.attributes)
                except RejectedLabels as refused:
                    reasons[refused.reason] += 1
                    continue
            series_ids.append(series_id)
            timestamps_ns.append(point.time_unix_nano)
            if point.flags & _NO_RECORDED_VALUE:
                values.append(STALE_NAN)
            else:
                value = point.as_double
                values.append(value if value or not point.as_int else float(point.as_int))

    def _histograms(self, metric, resource: _Resource, series_ids: list, timestamps_ns: list, values: list,
                    metadata: dict, reasons: Counter) -> None:
        base = translate.metric_name(metric.name, metric.unit, "histogram")
        metadata[base] = MetricMetadata(base, "histogram", metric.unit, metric.description)
        for point in metric.histogram.data_points:
            attributes = tuple((kv.key, _value_text(kv.value)) for kv in point.attributes)
            stale = bool(point.flags & _NO_RECORDED_VALUE)
            cumulative = 0
            bounds = list(point.explicit_bounds) + [math.inf]
            for bound, count in zip(bounds, point.bucket_counts):
                cumulative += count
                extra = attributes + (("le", _format_float(bound)),)
                self._point(resource, base + "_bucket", extra, point.time_unix_nano,
                            STALE_NAN if stale else float(cumulative), series_ids, timestamps_ns, values, reasons)
            if point.HasField("sum"):
                self._point(resource, base + "_sum", attributes, point.time_unix_nano,
                            STALE_NAN if stale else point.sum, series_ids, timestamps_ns, values, reasons)
            self._point(resource, base + "_count", attributes, point.time_unix_nano,
                        STALE_NAN if stale else float(point.count), series_ids, timestamps_ns, values, reasons)

    def _summaries(self, metric, resource: _Resource, series_ids: list, timestamps_ns: list, values: list,
                   metadata: dict, reasons: Counter) -> None:
        base = translate.metric_name(metric.name, metric.unit, "summary")
        metadata[base] = MetricMetadata(base, "summary", metric.unit, metric.description)
        for point in metric.summary.data_points:
            attributes = tuple((kv.key, _value_text(kv.value)) for kv in point.attributes)
            stale = bool(point.flags & _NO_RECORDED_VALUE)
            for quantile in point.quantile_values:
                extra = attributes + (("quantile", _format_float(quantile.quantile)),)
                self._point(resource, base, extra, point.time_unix_nano,
                            STALE_NAN if stale else quantile.value, series_ids, timestamps_ns, values, reasons)
            self._point(resource, base + "_sum", attributes, point.time_unix_nano,
                        STALE_NAN if stale else point.sum, series_ids, timestamps_ns, values, reasons)
            self._point(resource, base + "_count", attributes, point.time_unix_nano,
                        STALE_NAN if stale else float(point.count), series_ids, timestamps_ns, values, reasons)

    def _point(self, resource: _Resource, name: str, attributes: tuple, time_ns: int, value: float,
               series_ids: list, timestamps_ns: list, values: list, reasons: Counter) -> None:
        known = self._known(resource, name)
        series_id = known.get(attributes)
        if series_id is None:
            try:
                labels = build_labels(name, attributes, resource.identity)
            except RejectedLabels as refused:
                reasons[refused.reason] += 1
                return
            series_id = self.registry.get_or_create(labels)
            known[attributes] = series_id
        series_ids.append(series_id)
        timestamps_ns.append(time_ns)
        values.append(value)

    def _known(self, resource: _Resource, name: str) -> dict[tuple, int]:
        """Return the series ids already seen for one metric of one resource, by attributes."""
        key = (resource.token, name)
        known = self._series.get(key)
        if known is None:
            known = self._series[key] = {}
        return known

    def _lookup(self, known: dict, fast_key: tuple, resource: _Resource, name: str, attributes) -> int:
        exact = tuple((kv.key, _value_text(kv.value)) for kv in attributes)
        series_id = self.registry.get_or_create(build_labels(name, exact, resource.identity))
        if exact == fast_key and all(value for _, value in exact):
            known[fast_key] = series_id
        return series_id

    def _resource(self, resource, file_endpoint: EndpointFiler | None,
                  conflicts: list[IdentityConflict]) -> _Resource:
        attributes = {kv.key: _value_text(kv.value) for kv in resource.attributes}
        identity, report = resource_identity(attributes)
        if file_endpoint is not None:
            conflicts.extend(file_endpoint(report))
            identity["endpoint_id"] = report.endpoint_id
        token = tuple(sorted(identity.items()))
        return _Resource(token, identity, report)


def resource_identity(attributes: dict[str, str]) -> tuple[dict[str, str], EndpointReport]:
    """Derive the identity labels and the endpoint report of one OTLP resource."""
    service = attributes.get("service.name", "")
    namespace = attributes.get("service.namespace", "")
    job = f"{namespace}/{service}" if namespace and service else service
    hostname = attributes.get("host.name", "")
    instance = attributes.get("service.instance.id", "") or hostname
    endpoint_id = attributes.get(ENDPOINT_ATTRIBUTE, "") or _derive_endpoint_id(attributes, job, instance)

    identity = {"endpoint_id": endpoint_id, "host": hostname, "instance": instance, "job": job}
    extra = {}
    for key, value in attributes.items():
        if key.startswith(LABEL_ATTRIBUTE_PREFIX):
            name = translate.label_name(key[len(LABEL_ATTRIBUTE_PREFIX):])
            if name not in identity:
                extra[name] = value
    identity.update(extra)

    facts = {short: attributes[key] for key, short in _FACTS.items() if attributes.get(key)}
    report = EndpointReport(endpoint_id=endpoint_id, hostname=hostname, agent_id=attributes.get(AGENT_ATTRIBUTE, ""),
                            job=job, instance=instance, facts=facts, labels=extra,
                            kind=attributes.get(ENDPOINT_KIND_ATTRIBUTE, ""),
                            parent=attributes.get(HOST_ENDPOINT_ATTRIBUTE, ""))
    return identity, report


def _derive_endpoint_id(attributes: dict[str, str], job: str, instance: str) -> str:
    host_id = attributes.get("host.id", "")
    if host_id:
        return "host-" + host_id[:12]
    hostname = attributes.get("host.name", "")
    if hostname:
        return "host-" + hashlib.sha256(hostname.encode()).hexdigest()[:12]
    return "svc-" + hashlib.sha256(f"{job}/{instance}".encode()).hexdigest()[:12]


# Bounds on what one sender may make the server keep in memory per series. Real metric
# and label names are far shorter; OpenTelemetry caps instrument names at 255 characters.
MAX_NAME_CHARS = 512
MAX_VALUE_CHARS = 4096


class RejectedLabels(Exception):
    """Labels that cannot be stored. The `reason` groups the point in the rejection message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _point_count(metric, kind: str | None) -> int:
    return len(getattr(metric, kind).data_points) if kind else 0


def build_labels(name: str, attributes: tuple, identity: dict[str, str]) -> Labels:
    """Merge a point's attributes with the resource identity into one label set.

    Attribute keys are translated to label names; keys that collide after
    translation have their values joined with ';' in key order, as the
    OpenTelemetry specification asks. An attribute named like an identity label is
    kept as `exported_<name>`, the way Prometheus keeps a target's own label.
    """
    merged: dict[str, list[str]] = {}
    for key, value in sorted(attributes):
        if len(key) > MAX_NAME_CHARS:
            raise RejectedLabels(f"points with attribute names over {MAX_NAME_CHARS} characters")
        if len(value) > MAX_VALUE_CHARS:
            raise RejectedLabels(f"points with attribute values over {MAX_VALUE_CHARS} characters")
        label = translate.label_name(key)
        if label in identity or label == "__name__":
            label = "exported_" + label
        merged.setdefault(label, []).append(value)
    pairs = {label: ";".join(values) for label, values in merged.items()}
    if any(len(value) > MAX_VALUE_CHARS for value in identity.values()):
        raise RejectedLabels(f"points with resource attribute values over {MAX_VALUE_CHARS} characters")
    pairs.update(identity)
    pairs["__name__"] = name
    return make_labels(pairs)


def _value_text(value: AnyValue) -> str:
    text = value.string_value
    if text:
        return text
    kind = value.WhichOneof("value")
    if kind is None or kind == "string_value":
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _format_float(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return json.dumps(_any_to_python(value), separators=(",", ":"))


def _any_to_python(value: AnyValue):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_to_python(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _any_to_python(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def _format_float(value: float) -> str:
    """Format like Go's strconv.FormatFloat(v, 'g', -1, 64), which Prometheus uses for `le` and `quantile`."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text
