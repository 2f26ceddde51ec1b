"""Build OTLP metric requests from agent samples.

Counters become cumulative monotonic sums and gauges become gauges, with the unit
and help of the metric catalogue, so any OTLP receiver reads them correctly. A
series that disappeared since the previous collection is sent once more with the
"no recorded value" flag, which Prometheus-compatible receivers store as a
staleness marker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from gosight.agent.catalog import MetricSpec

_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK

# A reading ready to encode: metric name, labels as sorted (name, value) pairs, value.
Point = tuple[str, tuple[tuple[str, str], ...], float]


def resource_attributes(attributes: Mapping[str, str]) -> list[KeyValue]:
    return [_string_attribute(key, value) for key, value in attributes.items() if value != ""]


class ResourceGroup(NamedTuple):
    """The points of one OTLP resource within a request."""

    resource: Sequence[KeyValue]
    points: Sequence[Point]
    stale: Sequence[Point] = ()


def encode_request(points: Sequence[Point], stale: Iterable[Point], time_ms: int, start_time_ms: int,
                   resource: Sequence[KeyValue], scope_version: str,
                   catalog: Mapping[str, MetricSpec]) -> ExportMetricsServiceRequest:
    """Encode one collection as a single-resource request; `stale` points get the no-value flag."""
    group = ResourceGroup(resource, points, list(stale))
    return encode_resources([group], time_ms, start_time_ms, scope_version, catalog)


def encode_resources(groups: Iterable[ResourceGroup], time_ms: int, start_time_ms: int, scope_version: str,
                     catalog: Mapping[str, MetricSpec]) -> ExportMetricsServiceRequest:
    """Encode one collection as a request with one ResourceMetrics per group, in the order given."""
    request = ExportMetricsServiceRequest()
    for group in groups:
        _encode_group(request, group, time_ms, start_time_ms, scope_version, catalog)
    return request


class RequestEncoder:
    """Encode collections, reusing the previous request when the same series come again.

    Most collections report exactly the series of the one before, in the same order,
    so only the values and the time change; updating those in place costs a fraction
    of building the request anew. Not thread-safe: one encoder per collection loop.
    """

    def __init__(self, scope_version: str, catalog: Mapping[str, MetricSpec]):
        self.scope_version = scope_version
        self.catalog = catalog
        self._shape: tuple | None = None
        self._request: ExportMetricsServiceRequest | None = None
        self._data_points: list = []

    def encode(self, groups: Sequence[ResourceGroup], time_ms: int, start_time_ms: int) -> ExportMetricsServiceRequest:
        shape = _shape(groups, start_time_ms)
        if shape is not None and shape == self._shape and self._request is not None:
            time_ns = time_ms * 1_000_000
            values = [value for group in groups for _, _, value in group.points]
            for point, value in zip(self._data_points, values):
                point.as_double = value
                point.time_unix_nano = time_ns
            return self._request

        request = ExportMetricsServiceRequest()
        data_points = []
        for group in groups:
            data_points.extend(_encode_group(request, group, time_ms, start_time_ms, self.scope_version,
                                             self.catalog))
        # A collection with staleness markers is a one-off; the next one starts a new shape.
        self._shape = shape
        self._request = request if shape is not None else None
        self._data_points = data_points
        return request


def _shape(groups: Sequence[ResourceGroup], start_time_ms: int) -> tuple | None:
    """Return what must match for a request to be reused, or None when it must not be."""
    if any(group.stale for group in groups):
        return None
    return (start_time_ms, tuple(
        (tuple((kv.key, kv.value.string_value) for kv in group.resource),
         tuple((name, labels) for name, labels, _ in group.points))
        for group in groups))


def _encode_group(request: ExportMetricsServiceRequest, group: ResourceGroup, time_ms: int, start_time_ms: int,
                  scope_version: str, catalog: Mapping[str, MetricSpec]) -> list:
    """Add one resource's points to the request; return their data points in the order of `group.points`."""
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(group.resource)
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = "gosight-agent"
    scope_metrics.scope.version = scope_version
    points, stale = group.points, group.stale

    time_ns = time_ms * 1_000_000
    start_ns = start_time_ms * 1_000_000
    by_name: dict[str, list] = {}
    added = []
    for name, labels, value in points:
        data_points = by_name.get(name)
        if data_points is None:
            data_points = by_name[name] = _new_metric(scope_metrics, name, catalog)
        added.append(_add_point(data_points, labels, value, time_ns, start_ns, 0))
    for name, labels, _ in stale:
        data_points = by_name.get(name)
        if data_points is None:
            data_points = by_name[name] = _new_metric(scope_metrics, name, catalog)
        _add_point(data_points, labels, 0.0, time_ns, start_ns, _NO_RECORDED_VALUE)
    return added


def _new_metric(scope_metrics, name: str, catalog: Mapping[str, MetricSpec]):
    metric = scope_metrics.metrics.add()
    metric.name = name
    spec = catalog.get(name)
    if spec is not None:
        metric.unit = spec.unit
        metric.description = spec.help
    if spec is not None and spec.type == "counter":
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = _CUMULATIVE
        return metric.sum.data_points
    return metric.gauge.data_points


def _add_point(data_points, labels: tuple[tuple[str, str], ...], value: float, time_ns: int, start_ns: int,
               flags: int):
    point = data_points.add()
    point.time_unix_nano = time_ns
    point.start_time_unix_nano = start_ns
    point.as_double = value
    if flags:
        point.flags = flags
    point.attributes.extend([_string_attribute(key, text) for key, text in labels])
    return point


def _string_attribute(key: str, value: str) -> KeyValue:
    attribute = KeyValue(key=key)
    attribute.value.string_value = value
    return attribute
