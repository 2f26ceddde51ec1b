"""GoSight's Prometheus API and live mode answering from VictoriaMetrics."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.otlp import gauge, request_with
from tests.support.processes import Server
from tests.victoriametrics import dataset
from tests.victoriametrics.conftest import start_vm_server, wait_forwarded
from tests.victoriametrics.test_forwarding import send
from tests.victoriametrics.vmprocess import VictoriaMetrics

pytestmark = pytest.mark.slow
PREFIX = "/prometheus/api/v1"


@pytest.fixture
def loaded(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[tuple[Server, dataset.Dataset]]:
    server = start_vm_server(tmp_path, victoria)
    data = dataset.build(int(time.time()) // 60 * 60 - 600)
    send(server, data.requests)
    with server.client() as client:
        wait_forwarded(client, data.samples)
    victoria.flush()
    yield server, data
    server.proc.stop()


def rfc3339(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def parsed(body: dict) -> dict:
    """Turn a Prometheus matrix or vector answer into {labels: [(time, float value), ...]}."""
    out = {}
    for item in body["data"]["result"]:
        points = item["values"] if "values" in item else [item["value"]]
        out[tuple(sorted(item["metric"].items()))] = [(float(stamp), float(value)) for stamp, value in points]
    return out


def test_grafana_range_query_returns_victoriametrics_answer(loaded, victoria: VictoriaMetrics):
    server, data = loaded
    query = 'sum by (host) (rate(node_network_receive_bytes_total{device!="lo"}[5m]))'
    end = data.end_s // 60 * 60
    form = {"query": query, "start": rfc3339(end - 3600), "end": rfc3339(end), "step": "60"}

    with server.client() as client:
        response = client.post(f"{PREFIX}/query_range", data=form,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    direct = httpx.post(victoria.url + "/api/v1/query_range",
                        data={"query": query, "start": end - 3600, "end": end, "step": 60}).json()
    body = response.json()

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "matrix"
    assert all(isinstance(point[1], str) for item in body["data"]["result"] for point in item["values"])
    assert parsed(body) == parsed(direct)
    assert len(parsed(body)) == len(dataset.HOSTS)


def test_instant_query_with_rfc3339_time(loaded, victoria: VictoriaMetrics):
    server, data = loaded
    query = "node_load1"

    with server.client() as client:
        body = client.get(f"{PREFIX}/query", params={"query": query, "time": rfc3339(data.end_s)}).json()
    direct = httpx.get(victoria.url + "/api/v1/query", params={"query": query, "time": data.end_s}).json()

    assert body["data"]["resultType"] == "vector"
    assert parsed(body) == parsed(direct)
    assert {dict(labels)["host"] for labels in parsed(body)} == set(dataset.HOSTS)


def test_series_and_labels_come_from_victoriametrics(loaded, victoria: VictoriaMetrics):
    server, data = loaded

    with server.client() as client:
        series = client.get(f"{PREFIX}/series", params={"match[]": 'node_load1{host=~"web.*"}'}).json()
        names = client.get(f"{PREFIX}/labels").json()
        hosts = client.get(f"{PREFIX}/label/host/values", params={"match[]": "node_load5"}).json()
        before_data = client.get(f"{PREFIX}/label/mountpoint/values",
                                 params={"start": data.start_s - 3 * 86_400, "end": data.start_s - 2 * 86_400}).json()

    assert series["status"] == "success"
    assert sorted(item["host"] for item in series["data"]) == ["web1", "web2"]
    assert {"__name__", "endpoint_id", "host", "instance", "job", "le", "mountpoint"} <= set(names["data"])
    assert hosts["data"] == sorted(dataset.HOSTS)
    # The time range reaches VictoriaMetrics. It selects whole days, so the window lies
    # days before the data rather than minutes.
    assert before_data["data"] == []


def test_query_errors_keep_prometheus_shape(loaded, victoria: VictoriaMetrics):
    server, _ = loaded

    with server.client() as client:
        bad = client.get(f"{PREFIX}/query", params={"query": "sum(node_load1"})
        victoria.stop()
        down = client.get(f"{PREFIX}/query", params={"query": "node_load1"})

    assert bad.status_code == 400, bad.text
    assert bad.json()["errorType"] == "bad_data"
    assert down.status_code == 503, down.text
    assert down.json()["status"] == "error"
    assert down.json()["errorType"] == "unavailable"
    message = down.json()["error"]
    assert victoria.url in message, message
    assert "store.metrics.victoriametrics_url" in message, message


def test_live_mode_answers_from_victoriametrics(loaded, victoria: VictoriaMetrics):
    server, data = loaded
    query = "sum by (host) (node_load1)"
    url = server.url.replace("http://", "ws://") + "/ws/live"

    now_ns = time.time_ns() // 1_000_000_000 * 1_000_000_000

    with connect(url, additional_headers=server.auth_headers()) as client:
        client.send(json.dumps({"subscribe": {"id": "c1", "query": query}}))
        # The history ended minutes ago; a fresh sample per host arrives after subscribing.
        send(server, [request_with(gauge("node_load1", [({}, 4.5, now_ns)]), resource=_identity(host))
                      for host in dataset.HOSTS])
        message = json.loads(client.recv(timeout=30))
        while len(message.get("result", [])) < len(dataset.HOSTS):
            message = json.loads(client.recv(timeout=30))
    direct = httpx.get(victoria.url + "/api/v1/query", params={"query": query, "time": message["t"]}).json()

    assert message["id"] == "c1", message
    assert parsed({"data": {"result": message["result"]}}) == parsed(direct)
    assert {float(item["value"][1]) for item in message["result"]} == {4.5}


def _identity(host: str) -> dict[str, str]:
    return {"service.name": "gosight-agent", "host.name": host, "service.instance.id": host,
            "gosight.endpoint.id": f"host-{host}"}


def test_server_stops_cleanly_with_victoriametrics_down(tmp_path: Path, victoria: VictoriaMetrics):
    server = start_vm_server(tmp_path, victoria, name="down")
    victoria.stop()
    data = dataset.build(int(time.time()) // 60 * 60 - 600)
    send(server, data.requests[:3])

    started = time.monotonic()
    code = server.proc.stop()
    elapsed = time.monotonic() - started

    assert code == 0
    assert elapsed < 20, f"shutdown took {elapsed:.1f} s"
    assert "remote write stopped with samples unsent" in server.proc.log_text()
