import math

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from gosight.model import STALE_NAN_BITS, stale_mask
from gosight.server.normalize import MetricsDecoder
from gosight.store.series import SeriesRegistry
from tests.support.otlp import attribute, gauge, request_with

NOW_MS = 1_800_000_000_000
NOW_NS = NOW_MS * 1_000_000
DAY_MS = 86_400_000


def decode(request: ExportMetricsServiceRequest):
    registry = SeriesRegistry()
    decoder = MetricsDecoder(registry, max_future_ms=600_000, max_age_ms=15 * DAY_MS)
    result = decoder.decode(request, now_ms=NOW_MS)
    rows = []
    for index in range(result.batch.size):
        labels = dict(registry.labels(int(result.batch.series_ids[index])))
        rows.append((labels, int(result.batch.timestamps_ms[index]), float(result.batch.values[index])))
    return result, rows


def test_identity_labels_from_resource():
    result, rows = decode(request_with(gauge("queue.depth", [({"queue": "a"}, 3.0, NOW_NS)], unit="By")))

    labels, stamp, value = rows[0]
    assert labels["__name__"] == "queue_depth_bytes"
    assert labels["job"] == "shop"
    assert labels["instance"] == "shop-1"
    assert labels["host"] == "web1"
    assert labels["endpoint_id"].startswith("host-") and len(labels["endpoint_id"]) == 17
    assert labels["queue"] == "a"
    assert (stamp, value) == (NOW_MS, 3.0)
    assert result.endpoints[labels["endpoint_id"]].hostname == "web1"


def test_gosight_resource_attributes_win():
    request = request_with(gauge("x", [({}, 1.0, NOW_NS)]), resource={
        "gosight.endpoint.id": "host-abc", "gosight.label.team": "ops", "gosight.label.job": "ignored"})

    _, rows = decode(request)

    assert rows[0][0]["endpoint_id"] == "host-abc"
    assert rows[0][0]["team"] == "ops"
    assert rows[0][0]["job"] == "shop", "a label may not replace an identity label"


def test_attribute_named_like_identity_is_kept_as_exported():
    _, rows = decode(request_with(gauge("x", [({"job": "batch", "instance": "i"}, 1.0, NOW_NS)])))

    assert rows[0][0]["job"] == "shop"
    assert rows[0][0]["exported_job"] == "batch"
    assert rows[0][0]["exported_instance"] == "i"


def test_attribute_types_and_invalid_names():
    points = [({"http.method": "GET", "code": 200, "ok": True, "ratio": 0.5, "1st": "x"}, 1.0, NOW_NS)]

    _, rows = decode(request_with(gauge("x", points)))

    labels = rows[0][0]
    assert labels["http_method"] == "GET"
    assert labels["code"] == "200"
    assert labels["ok"] == "true"
    assert labels["ratio"] == "0.5"
    assert labels["key_1st"] == "x"


def test_colliding_keys_are_joined():
    _, rows = decode(request_with(gauge("x", [({"a.b": "1", "a_b": "2"}, 1.0, NOW_NS)])))

    assert rows[0][0]["a_b"] == "1;2"


def test_monotonic_sum_becomes_counter():
    metric = metrics_pb2.Metric(name="http.requests", unit="{request}")
    metric.sum.is_monotonic = True
    metric.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    metric.sum.data_points.add(time_unix_nano=NOW_NS, as_int=42)

    result, rows = decode(request_with(metric))

    assert rows[0][0]["__name__"] == "http_requests_total"
    assert rows[0][2] == 42.0
    assert result.metadata[0].type == "counter"


def test_delta_sum_is_rejected_with_reason():
    metric = metrics_pb2.Metric(name="d")
    metric.sum.is_monotonic = True
    metric.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    metric.sum.data_points.add(time_unix_nano=NOW_NS, as_int=1)

    result, rows = decode(request_with(metric, gauge("ok", [({}, 1.0, NOW_NS)])))

    assert [labels["__name__"] for labels, _, _ in rows] == ["ok"], "the valid metric is kept"
    assert result.rejected == 1
    assert "delta" in result.rejection_message()


def test_histogram_expands_to_classic_buckets():
    metric = metrics_pb2.Metric(name="rpc.duration", unit="s")
    metric.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    metric.histogram.data_points.add(time_unix_nano=NOW_NS, count=6, sum=2.5, explicit_bounds=[0.1, 1.0],
                                     bucket_counts=[1, 3, 2])

    _, rows = decode(request_with(metric))

    values = {(labels["__name__"], labels.get("le")): value for labels, _, value in rows}
    assert values == {
        ("rpc_duration_seconds_bucket", "0.1"): 1.0,
        ("rpc_duration_seconds_bucket", "1"): 4.0,
        ("rpc_duration_seconds_bucket", "+Inf"): 6.0,
        ("rpc_duration_seconds_sum", None): 2.5,
        ("rpc_duration_seconds_count", None): 6.0,
    }


def test_summary_expands_to_quantiles():
    metric = metrics_pb2.Metric(name="latency", unit="ms")
    point = metric.summary.data_points.add(time_unix_nano=NOW_NS, count=10, sum=55.0)
    point.quantile_values.add(quantile=0.5, value=4.0)
    point.quantile_values.add(quantile=0.99, value=9.0)

    _, rows = decode(request_with(metric))

    values = {(labels["__name__"], labels.get("quantile")): value for labels, _, value in rows}
    assert values == {("latency_milliseconds", "0.5"): 4.0, ("latency_milliseconds", "0.99"): 9.0,
                      ("latency_milliseconds_sum", None): 55.0, ("latency_milliseconds_count", None): 10.0}


def test_exponential_histogram_rejected():
    metric = metrics_pb2.Metric(name="e")
    metric.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    metric.exponential_histogram.data_points.add(time_unix_nano=NOW_NS, count=1)

    result, rows = decode(request_with(metric))

    assert rows == []
    assert result.rejected == 1
    assert "exponential" in result.rejection_message()


@pytest.mark.parametrize("offset_ms, kept", [
    (0, True),
    (-14 * DAY_MS, True),
    (-16 * DAY_MS, False),
    (5 * 60_000, True),
    (11 * 60_000, False),
])
def test_timestamp_bounds(offset_ms, kept):
    time_ns = (NOW_MS + offset_ms) * 1_000_000
    result, rows = decode(request_with(gauge("x", [({}, 1.0, time_ns)]), gauge("y", [({}, 2.0, NOW_NS)])))

    names = [labels["__name__"] for labels, _, _ in rows]
    assert ("x" in names) == kept
    assert "y" in names, "valid points in the same request are kept"
    assert result.rejected == (0 if kept else 1)


def test_nan_inf_and_no_recorded_value():
    metric = gauge("x", [({"k": "nan"}, math.nan, NOW_NS), ({"k": "inf"}, -math.inf, NOW_NS)])
    stale = metric.gauge.data_points.add(time_unix_nano=NOW_NS, as_double=5.0)
    stale.flags = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
    stale.attributes.append(attribute("k", "gone"))

    result, rows = decode(request_with(metric))

    by_key = {labels["k"]: value for labels, _, value in rows}
    assert math.isnan(by_key["nan"])
    assert by_key["inf"] == -math.inf
    assert stale_mask(result.batch.values).tolist() == [False, False, True]
    assert int(result.batch.values.view("uint64")[2]) == STALE_NAN_BITS


def test_missing_timestamp_uses_receive_time():
    _, rows = decode(request_with(gauge("x", [({}, 1.0, 0)])))

    assert rows[0][1] == NOW_MS


def test_empty_request():
    result, rows = decode(ExportMetricsServiceRequest())

    assert rows == []
    assert result.rejected == 0


def test_same_series_gets_same_id_across_requests():
    registry = SeriesRegistry()
    decoder = MetricsDecoder(registry, max_future_ms=600_000, max_age_ms=DAY_MS)
    request = request_with(gauge("x", [({"a": "1"}, 1.0, NOW_NS), ({"a": "2"}, 1.0, NOW_NS)]))

    first = decoder.decode(request, now_ms=NOW_MS).batch.series_ids.tolist()
    second = decoder.decode(request, now_ms=NOW_MS).batch.series_ids.tolist()

    assert first == second
    assert len(set(first)) == 2
    assert len(registry) == 2
