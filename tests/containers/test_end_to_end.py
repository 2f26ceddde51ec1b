"""Containers end to end: Podman, a real agent and a real server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.containers.podman import LOCAL_IMAGE, Podman
from tests.support.processes import GosightProcess, Server, start_agent, start_server, wait_for

pytestmark = pytest.mark.slow

INTERVAL_S = 1.0
# A state change must show in the samples of the first or second collection after it;
# the slack covers delays of the agent's collection loop on a busy machine.
SLACK_S = 0.5


@dataclass
class Setup:
    podman: Podman
    server: Server
    agent: GosightProcess
    client: httpx.Client
    host_endpoint: str
    ids: dict[str, str]


@pytest.fixture(scope="module")
def setup(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("containers-e2e")
    ids = {
        "e2e-web": podman.start_container("e2e-web", "--memory", "64m", "--label", "app=web"),
        "e2e-worker": podman.start_container("e2e-worker"),
        "e2e-stopped": podman.start_container("e2e-stopped"),
    }
    podman.run("stop", "--time", "0", "e2e-stopped")
    server = start_server(root / "server-data", root / "server.log")
    agent = None
    client = server.client()
    try:
        agent = start_agent(server.grpc, root / "agent-data", root / "agent.log", "--interval", str(INTERVAL_S),
                            "--agent.heartbeat_s", "1", "--agent.containers.socket", str(podman.socket),
                            "--agent.containers.labels", "app")
        host = wait_for(lambda: _endpoints(client, kind="host"), message="the host endpoint")[0]
        wait_for(lambda: len(_endpoints(client, kind="container")) >= len(ids), timeout_s=30,
                 message="an endpoint for every container")
        yield Setup(podman, server, agent, client, host["endpoint_id"], ids)
    finally:
        client.close()
        if agent is not None:
            agent.stop()
        server.proc.stop()
        podman.run("rm", "--force", "--time", "0", *ids, check=False)


def _endpoints(client: httpx.Client, **params: str) -> list[dict]:
    response = client.get("/api/v1/endpoints", params=params)
    assert response.status_code == 200, response.text
    return response.json()["endpoints"]


def _query(client: httpx.Client, query: str) -> list[dict]:
    response = client.get("/prometheus/api/v1/query", params={"query": query})
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


def _endpoint_id(container_id: str) -> str:
    return "ctr-" + container_id[:12]


def test_containers_are_endpoints_of_their_host(setup):
    rows = {row["endpoint_id"]: row for row in _endpoints(setup.client, kind="container", host=setup.host_endpoint)}

    for name, container_id in setup.ids.items():
        row = rows.get(_endpoint_id(container_id))
        assert row is not None, f"no endpoint for {name}; have {sorted(rows)}"
        assert row["kind"] == "container"
        assert row["parent"] == setup.host_endpoint
        assert row["facts"]["container_name"] == name
        assert row["facts"]["image"] == LOCAL_IMAGE
        assert row["facts"]["runtime"] == "podman"
        assert row["status"] == "online", row
    hosts = _endpoints(setup.client, kind="host")
    assert [row["endpoint_id"] for row in hosts] == [setup.host_endpoint], hosts


def test_host_filter_excludes_other_hosts(setup):
    rows = _endpoints(setup.client, host="host-000000000000")

    assert rows == []


def test_container_series_carry_identity(setup):
    container_id = setup.ids["e2e-web"]
    wait_for(lambda: _query(setup.client, 'container_memory_usage_bytes{name="e2e-web"}'),
             message="memory usage of e2e-web")

    result = _query(setup.client, 'container_memory_usage_bytes{name="e2e-web"}')

    assert len(result) == 1, result
    labels = result[0]["metric"]
    assert labels["endpoint_id"] == _endpoint_id(container_id)
    assert labels["id"] == container_id
    assert labels["image"] == LOCAL_IMAGE
    assert labels["container_label_app"] == "web"
    assert labels["job"] == "gosight-agent"
    host = _endpoints(setup.client, kind="host")[0]
    assert labels["host"] == host["hostname"]
    assert labels["instance"] == host["hostname"]


def test_limits_and_states_reach_the_store(setup):
    wait_for(lambda: _query(setup.client, 'container_state{name="e2e-stopped", state="exited"} == 1'),
             message="state of e2e-stopped")

    limits = {item["metric"]["name"]: float(item["value"][1])
              for item in _query(setup.client, 'container_spec_memory_limit_bytes{name=~"e2e-.*"}')}
    running = {item["metric"]["name"] for item in _query(setup.client, 'container_state{state="running"} == 1')}

    assert limits == {"e2e-web": 64 * 1024 * 1024, "e2e-worker": 0.0, "e2e-stopped": 0.0}, limits
    assert {"e2e-web", "e2e-worker"} <= running, running
    assert "e2e-stopped" not in running
    assert _query(setup.client, 'container_cpu_usage_seconds_total{name="e2e-stopped"}') == []


def test_collector_reports_up(setup):
    result = wait_for(lambda: _query(setup.client, 'gosight_collector_up{collector="containers"} == 1'),
                      message="containers collector up")

    assert result[0]["metric"]["endpoint_id"] == setup.host_endpoint


def test_stop_changes_state_within_two_intervals(setup):
    setup.podman.start_container("e2e-stop-me")
    wait_for(lambda: _query(setup.client, 'container_state{name="e2e-stop-me", state="running"} == 1'),
             timeout_s=20, message="e2e-stop-me running")

    setup.podman.run("stop", "--time", "0", "e2e-stop-me")
    stopped_at = time.time()
    stamps = wait_for(lambda: _exited_stamps(setup.client, "e2e-stop-me"), timeout_s=20,
                      message="an exited sample of e2e-stop-me")
    setup.podman.run("rm", "--force", "e2e-stop-me")

    first_exited = min(stamps)
    assert first_exited - stopped_at <= 2 * INTERVAL_S + SLACK_S, (
        f"first exited sample {first_exited - stopped_at:.2f} s after the stop")


def test_removed_container_is_gone(setup):
    container_id = setup.podman.start_container("e2e-remove-me")
    endpoint = _endpoint_id(container_id)
    wait_for(lambda: any(row["endpoint_id"] == endpoint for row in _endpoints(setup.client, kind="container")),
             timeout_s=20, message="an endpoint for e2e-remove-me")

    setup.podman.run("rm", "--force", "--time", "0", "e2e-remove-me")
    row = wait_for(lambda: _status_gone(setup.client, endpoint), timeout_s=20,
                   message="e2e-remove-me marked gone")

    assert row["gone_at"] is not None
    gone = [item["endpoint_id"] for item in _endpoints(setup.client, status="gone")]
    assert endpoint in gone
    # The agent also sent staleness markers, so PromQL stops returning the series at once.
    wait_for(lambda: _query(setup.client, 'container_state{name="e2e-remove-me"}') == [], timeout_s=10,
             message="the series of e2e-remove-me ended")
    others = {row["endpoint_id"]: row["status"] for row in _endpoints(setup.client, kind="container")}
    assert others[_endpoint_id(setup.ids["e2e-web"])] == "online", others


def _exited_stamps(client: httpx.Client, name: str) -> list[float]:
    """Return the times of the samples that show the container exited, from the raw series."""
    result = _query(client, f'container_state{{name="{name}", state="exited"}}[1m]')
    return [float(stamp) for series in result for stamp, text in series["values"] if text == "1"]


def _status_gone(client: httpx.Client, endpoint: str) -> dict | None:
    response = client.get(f"/api/v1/endpoints/{endpoint}")
    row = response.json()
    return row if row.get("status") == "gone" else None


def test_agent_log_has_no_errors(setup):
    errors = [line for line in setup.agent.lines if line.get("level") == "error"]

    assert not errors, errors
    assert any(line.get("msg") == "container engine connected" for line in setup.agent.lines)

