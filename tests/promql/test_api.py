"""The Prometheus HTTP API against a real server: data sent over OTLP/HTTP, queried the way Grafana does."""

from __future__ import annotations

import datetime
import time

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from tests.support.processes import Server, wait_for

PREFIX = "/prometheus/api/v1"
STEP_S = 10
POINTS = 31  # five minutes of samples


def _attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _request(end_s: int) -> ExportMetricsServiceRequest:
    """Two hosts with a gauge and a counter each; the counter grows by 5 per second."""
    request = ExportMetricsServiceRequest()
    for host, offset in (("alpha", 0.0), ("beta", 100.0)):
        resource = request.resource_metrics.add()
        resource.resource.attributes.extend([_attribute("service.name", "api"), _attribute("host.name", host)])
        scope = resource.scope_metrics.add()
        gauge = scope.metrics.add(name="test_temperature_celsius", description="A test gauge.")
        counter = scope.metrics.add(name="test_requests", description="A test counter.")
        counter.sum.is_monotonic = True
        counter.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        for index in range(POINTS):
            stamp_ns = (end_s - (POINTS - 1 - index) * STEP_S) * 1_000_000_000
            point = gauge.gauge.data_points.add(time_unix_nano=stamp_ns, as_double=offset + 20.0)
            point.attributes.append(_attribute("sensor", "cpu"))
            counter.sum.data_points.add(time_unix_nano=stamp_ns, start_time_unix_nano=0,
                                        as_double=offset + 5.0 * STEP_S * index)
    return request


@pytest.fixture
def loaded(server: Server):
    """A server holding the test series; yields (client, time in seconds of the last sample)."""
    end_s = int(time.time()) // STEP_S * STEP_S
    with server.client() as client:
        response = client.post("/v1/metrics", content=_request(end_s).SerializeToString(),
                               headers={"Content-Type": "application/x-protobuf"})
        assert response.status_code == 200, response.text

        def stored() -> bool:
            found = client.get(f"{PREFIX}/query", params={"query": "count(test_requests_total)", "time": end_s})
            result = found.json()["data"]["result"]
            return bool(result) and result[0]["value"][1] == "2"

        wait_for(stored, timeout_s=30, message="the OTLP samples to become queryable")
        yield client, end_s


def test_instant_query_vector_shape(loaded) -> None:
    client, end_s = loaded

    response = client.get(f"{PREFIX}/query", params={"query": 'test_temperature_celsius{host="alpha"}',
                                                     "time": f"{end_s}.5"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    [sample] = body["data"]["result"]
    assert sample["metric"]["__name__"] == "test_temperature_celsius"
    assert sample["metric"]["sensor"] == "cpu"
    assert sample["value"] == [end_s + 0.5, "20"]


def test_query_range_form_post_float_times(loaded) -> None:
    client, end_s = loaded
    start_s = end_s - 120

    response = client.post(f"{PREFIX}/query_range", data={
        "query": "sum by (host) (rate(test_requests_total[1m]))",
        "start": f"{start_s}", "end": f"{end_s}", "step": "30"})

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["resultType"] == "matrix"
    by_host = {item["metric"]["host"]: item["values"] for item in data["result"]}
    assert set(by_host) == {"alpha", "beta"}
    for values in by_host.values():
        assert [point[0] for point in values] == [start_s + 30 * step for step in range(5)]
        assert all(float(point[1]) == pytest.approx(5.0) for point in values)


def test_query_range_rfc3339_times_and_duration_step(loaded) -> None:
    client, end_s = loaded
    start = datetime.datetime.fromtimestamp(end_s - 60, tz=datetime.timezone.utc)
    end = datetime.datetime.fromtimestamp(end_s, tz=datetime.timezone.utc)

    response = client.post(f"{PREFIX}/query_range", data={
        "query": 'test_temperature_celsius{host="beta"}',
        "start": start.isoformat().replace("+00:00", "Z"), "end": end.isoformat().replace("+00:00", "Z"),
        "step": "30s"})

    assert response.status_code == 200, response.text
    [series] = response.json()["data"]["result"]
    assert series["values"] == [[end_s - 60, "120"], [end_s - 30, "120"], [end_s, "120"]]


def test_scalar_and_string_results(loaded) -> None:
    client, end_s = loaded

    scalar = client.get(f"{PREFIX}/query", params={"query": "1 / 4", "time": "100"}).json()["data"]
    string = client.get(f"{PREFIX}/query", params={"query": '"text"', "time": "100.25"}).json()["data"]

    assert scalar == {"resultType": "scalar", "result": [100, "0.25"]}
    assert string == {"resultType": "string", "result": [100.25, "text"]}


def test_query_warnings_and_infos(loaded) -> None:
    client, end_s = loaded

    body = client.get(f"{PREFIX}/query", params={"query": "rate(test_temperature_celsius[1m])",
                                                 "time": end_s}).json()

    assert body["status"] == "success"
    assert body["infos"] == ['PromQL info: metric might not be a counter, name does not end in '
                             '_total/_sum/_count/_bucket: "test_temperature_celsius" (1:6)']


def test_buildinfo(loaded) -> None:
    client, _ = loaded

    body = client.get(f"{PREFIX}/status/buildinfo").json()

    assert body["status"] == "success"
    assert set(body["data"]) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    assert body["data"]["version"].startswith("3.")


def test_labels_with_match_and_time_range(loaded) -> None:
    client, end_s = loaded

    names = client.post(f"{PREFIX}/labels", data={"match[]": "test_temperature_celsius",
                                                  "start": end_s - 300, "end": end_s}).json()
    empty = client.get(f"{PREFIX}/labels", params={"match[]": "test_temperature_celsius",
                                                   "start": 0, "end": 100}).json()

    assert names["status"] == "success"
    assert {"__name__", "host", "instance", "job", "sensor"} <= set(names["data"])
    assert names["data"] == sorted(names["data"])
    assert empty["data"] == []


def test_metric_name_values(loaded) -> None:
    client, end_s = loaded

    body = client.get(f"{PREFIX}/label/__name__/values", params={
        "match[]": ['{job="api"}'], "start": end_s - 300, "end": end_s}).json()
    hosts = client.get(f"{PREFIX}/label/host/values", params={"match[]": "test_requests_total"}).json()

    assert body["data"] == ["test_requests_total", "test_temperature_celsius"]
    assert hosts["data"] == ["alpha", "beta"]


@pytest.mark.parametrize("name, expected", [
    ("U__h_6f_st", ["alpha", "beta"]),  # "host" with its "o" escaped
    ("U__ho_73t", []),  # an escape that never closes names no label
    ("U__a_1b", []),
    ("U__x_ffffffffffffffffffffffff_", []),
])
def test_escaped_label_names(loaded, name: str, expected: list[str]) -> None:
    client, _ = loaded

    response = client.get(f"{PREFIX}/label/{name}/values", params={"match[]": "test_requests_total"}, timeout=10)

    assert response.status_code == 200, response.text
    assert response.json()["data"] == expected


def test_series_endpoint(loaded) -> None:
    client, end_s = loaded

    body = client.get(f"{PREFIX}/series", params={"match[]": 'test_requests_total{host="beta"}',
                                                  "start": end_s - 60, "end": end_s}).json()

    [labels] = body["data"]
    assert labels["__name__"] == "test_requests_total"
    assert labels["host"] == "beta"
    assert labels["job"] == "api"


def test_metadata_endpoint(loaded) -> None:
    client, _ = loaded

    body = client.get(f"{PREFIX}/metadata", params={"metric": "test_requests_total"}).json()

    assert body["data"] == {"test_requests_total": [{"type": "counter", "help": "A test counter.", "unit": ""}]}


def test_small_endpoints_grafana_calls(loaded) -> None:
    client, end_s = loaded

    exemplars = client.get(f"{PREFIX}/query_exemplars", params={"query": "test_requests_total",
                                                                "start": end_s - 60, "end": end_s}).json()
    formatted = client.get(f"{PREFIX}/format_query", params={"query": "sum(rate(x[5m]))by(job)"}).json()
    rules = client.get(f"{PREFIX}/rules").json()
    alerts = client.get(f"{PREFIX}/alerts").json()
    runtime = client.get(f"{PREFIX}/status/runtimeinfo").json()

    assert exemplars == {"status": "success", "data": []}
    assert formatted == {"status": "success", "data": "sum by (job) (rate(x[5m]))"}
    assert rules == {"status": "success", "data": {"groups": []}}
    assert alerts == {"status": "success", "data": {"alerts": []}}
    assert runtime["data"]["storageRetention"] == "15d"


BAD_REQUESTS = [
    ("GET", "/query", {"query": "sum("}, 400, "bad_data", 'invalid parameter "query": parse error'),
    ("GET", "/query", {"query": "no_such_function(x)"}, 400, "bad_data", "unknown function"),
    ("GET", "/query", {"query": "rate(x)"}, 400, "bad_data", "expected type matrix"),
    ("GET", "/query", {}, 400, "bad_data", "no expression found"),
    ("GET", "/query", {"query": "x", "time": "yesterday"}, 400, "bad_data",
     'invalid parameter "time": cannot parse "yesterday" to a valid timestamp'),
    ("GET", "/query", {"query": "x", "timeout": "soon"}, 400, "bad_data", 'invalid parameter "timeout"'),
    ("GET", "/query", {"query": "x", "limit": "-1"}, 400, "bad_data", "limit must be non-negative"),
    ("GET", "/query", {"query": 'label_replace(x, "a", "b", "c", "(")'}, 422, "execution",
     "invalid regular expression in label_replace()"),
    ("GET", "/query", {"query": "count_over_time(vector(1)[100d:1ms])"}, 422, "execution",
     "query processing would load too many samples into memory"),
    ("POST", "/query_range", {"query": "x", "start": "10", "end": "20", "step": "0"}, 400, "bad_data",
     "zero or negative query resolution step widths are not accepted"),
    ("POST", "/query_range", {"query": "x", "start": "20", "end": "10", "step": "1"}, 400, "bad_data",
     "end timestamp must not be before start time"),
    ("POST", "/query_range", {"query": "x", "start": "0", "end": "1000000", "step": "1"}, 400, "bad_data",
     "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"),
    ("POST", "/query_range", {"query": "x", "end": "10", "step": "1"}, 400, "bad_data",
     'invalid parameter "start": cannot parse "" to a valid timestamp'),
    ("POST", "/query_range", {"query": "x", "start": "0", "end": "10", "step": "fast"}, 400, "bad_data",
     'invalid parameter "step": cannot parse "fast" to a valid duration'),
    ("POST", "/query_range", {"query": "x", "start": "NaN", "end": "10", "step": "1"}, 400, "bad_data",
     "to a valid timestamp"),
    ("POST", "/query_range", {"query": "x[5m]", "start": "0", "end": "10", "step": "1"}, 400, "bad_data",
     'invalid expression type "range vector" for range query'),
    ("GET", "/series", {}, 400, "bad_data", "no match[] parameter provided"),
    ("GET", "/series", {"match[]": '{job=~".*"}'}, 400, "bad_data", "at least one non-empty matcher"),
    ("GET", "/series", {"match[]": "sum(x)"}, 400, "bad_data", 'invalid parameter "match[]"'),
    ("GET", "/labels", {"match[]": "x{"}, 400, "bad_data", 'invalid parameter "match[]"'),
    ("GET", "/labels", {"start": "later"}, 400, "bad_data", 'invalid parameter "start"'),
]


@pytest.mark.parametrize(("method", "path", "params", "status", "error_type", "text"), BAD_REQUESTS,
                         ids=[f"{case[1]}-{sorted(case[2].items())}" for case in BAD_REQUESTS])
def test_bad_requests(server: Server, method: str, path: str, params: dict, status: int, error_type: str,
                      text: str) -> None:
    with server.client() as client:
        if method == "GET":
            response = client.get(PREFIX + path, params=params)
        else:
            response = client.post(PREFIX + path, data=params)

    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["errorType"] == error_type
    assert text in body["error"], body["error"]


def test_execution_error_is_422(loaded) -> None:
    client, end_s = loaded

    response = client.get(f"{PREFIX}/query", params={"query": "test_requests_total + on(job) test_requests_total",
                                                     "time": end_s})

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errorType"] == "execution"
    assert "many-to-many matching not allowed" in body["error"]


def test_query_timeout_is_503(tmp_path, artifacts) -> None:
    from tests.support.processes import start_server

    running = start_server(tmp_path / "data", artifacts / "server.log", "--query.timeout_s", "0.1")
    try:
        with running.client() as client:
            # Nested subqueries: 86,400 windows of 86,400 samples each, billions of cells in all.
            response = client.get(f"{PREFIX}/query", params={
                "query": "max_over_time(max_over_time(vector(1)[1d:1s])[1d:1s])"})
    finally:
        running.proc.stop()

    assert response.status_code == 503, response.text
    assert response.json()["errorType"] == "timeout"
