"""GET /api/v1/endpoints and /api/v1/endpoints/{id}, presence, and the server's own /metrics."""

import signal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import start_agent, start_server, wait_for


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A server and one agent for the module; the presence test kills the agent, so it comes last."""
    base = tmp_path_factory.mktemp("endpoints")
    server = start_server(base / "server", base / "server.log", "--server.presence.idle_after_s", "2",
                          "--server.presence.offline_after_s", "4")
    agent = start_agent(server.grpc, base / "agent", base / "agent.log", "--interval", "1",
                        "--agent.heartbeat_s", "1", "--agent.labels", "team=ops,rack=r1")
    with server.client() as client:
        endpoint = wait_for(lambda: [e for e in client.get("/api/v1/endpoints").json()["endpoints"]
                                     if e["last_data"]], message="the agent's endpoint")[0]
    yield server, agent, endpoint
    if agent.process.poll() is None:
        agent.stop()
    server.proc.stop()


def samples(text: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_endpoint_fields(fleet):
    server, _, endpoint = fleet
    with server.client() as client:
        one = client.get(f"/api/v1/endpoints/{endpoint['endpoint_id']}").json()

    assert one["endpoint_id"] == endpoint["endpoint_id"]
    assert one["endpoint_id"].startswith("host-")
    assert one["status"] == "online"
    assert one["connected"] is True
    assert one["kind"] == "host"
    assert one["labels"] == {"team": "ops", "rack": "r1"}
    assert one["facts"]["os"] == "linux"
    assert one["facts"]["interval_s"] == "1"
    assert one["last_seen"].endswith("Z")
    assert one["first_seen"] <= one["last_seen"]


def test_unknown_endpoint_is_404(fleet):
    server, _, _ = fleet
    with server.client() as client:
        response = client.get("/api/v1/endpoints/host-nope")

    assert response.status_code == 404
    assert response.json() == {"error": {
        "code": "endpoint_not_found",
        "message": "endpoint 'host-nope' not found; GET /api/v1/endpoints lists the known ones"}}


@pytest.mark.parametrize("params, expected", [
    ({"status": "online"}, 1),
    ({"status": "offline"}, 0),
    ({"label": "team=ops"}, 1),
    ({"label": "team=dev"}, 0),
    ({"q": "R1"}, 1),
    ({"q": "no-such-host"}, 0),
    ({"limit": "1", "offset": "1"}, 0),
    ({"sort": "-hostname"}, 1),
])
def test_endpoint_filters(fleet, params, expected):
    server, _, endpoint = fleet
    with server.client() as client:
        body = client.get("/api/v1/endpoints", params=params).json()

    assert len(body["endpoints"]) == expected, body
    assert body["total"] == (1 if params.get("offset") else expected)
    if expected:
        assert body["endpoints"][0]["endpoint_id"] == endpoint["endpoint_id"]


@pytest.mark.parametrize("params, message", [
    ({"status": "sleepy"}, "invalid status 'sleepy'; expected one of online, idle, offline"),
    ({"limit": "0"}, "invalid limit 0; expected between 1 and 10000"),
    ({"limit": "many"}, "invalid limit 'many'; expected an integer"),
    ({"sort": "cpu"}, "invalid sort 'cpu'"),
    ({"label": "team"}, "invalid label filter 'team'; expected name=value"),
])
def test_endpoint_filter_errors(fleet, params, message):
    server, _, _ = fleet
    with server.client() as client:
        response = client.get("/api/v1/endpoints", params=params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert response.json()["error"]["message"].startswith(message)


def test_server_metrics_report_ingest(fleet):
    server, _, _ = fleet
    with server.client() as client:
        response = client.get("/metrics")
    found = samples(response.text)

    assert response.headers["content-type"].startswith("text/plain")
    assert found[("gosight_agents_connected", ())] == 1
    assert found[("gosight_endpoints", (("status", "online"),))] == 1
    assert found[("gosight_store_samples_written_total", ())] > 0
    assert found[("gosight_ingest_samples_received_total", (("receiver", "otlp_grpc"),))] >= \
        found[("gosight_store_samples_written_total", ())]
    assert found[("gosight_store_write_duration_seconds_count", ())] > 0
    assert ("gosight_ingest_queue_samples", ()) in found
    assert found[("gosight_ingest_queue_capacity_samples", ())] == 2_000_000
    assert found[("gosight_store_series", ())] > 50


def test_presence_goes_idle_then_offline(fleet):
    server, agent, endpoint = fleet
    url = f"/api/v1/endpoints/{endpoint['endpoint_id']}"
    # SIGKILL: no goodbye, so presence must come from the silence alone.
    agent.signal(signal.SIGKILL)
    agent.process.wait(10)

    with server.client() as client:
        idle = wait_for(lambda: client.get(url).json()["status"] == "idle", timeout_s=10, message="idle")
        offline = wait_for(lambda: client.get(url).json()["status"] == "offline", timeout_s=15, message="offline")
        final = client.get(url).json()

    assert idle and offline
    assert final["connected"] is False
