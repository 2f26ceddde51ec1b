"""Two real agents with one machine id, as on machines cloned from one image, against a real server.

Each agent has a data directory of its own, so a distinct agent id, and reads the same
machine id through agent.machine_id_file.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gosight.config import split_host_port
from gosight.server.endpoints import split_endpoint_id
from tests.support.processes import (
    GosightProcess,
    Server,
    start_agent,
    start_server,
    wait_for,
)

MACHINE_ID = "c10e0000000000000000000000000001"
ENDPOINT_ID = "host-" + MACHINE_ID[:12]
CONFLICT_LOG = "two agents report the same endpoint id; storing their data apart"
AGENT_WARNING = "endpoint id in use by another agent; the server stores this agent's data under a different one"
AGENT_FLAGS = ("--interval", "0.5", "--agent.heartbeat_s", "1", "--agent.backoff.max_s", "1")


def start_clone(server: Server, base, name: str) -> tuple[GosightProcess, str]:
    """Start an agent on the shared machine id; return it and its agent id."""
    agent = start_agent(server.grpc, base / f"{name}-data", base / f"{name}.log", *AGENT_FLAGS,
                        "--agent.hostname", name, "--agent.machine_id_file", str(base / "machine-id"))
    return agent, agent.wait_for_log("agent started")["agent_id"]


def collections_by_endpoint(client: httpx.Client) -> dict[tuple[str, str], float]:
    """Return the latest collection number of every agent, by (endpoint_id, host)."""
    response = client.get("/prometheus/api/v1/query", params={"query": "gosight_agent_collections_total"})
    response.raise_for_status()
    return {(item["metric"]["endpoint_id"], item["metric"]["host"]): float(item["value"][1])
            for item in response.json()["data"]["result"]}


def conflicts_counted(client: httpx.Client) -> float | None:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "gosight_endpoint_identity_conflicts_total":
                return sample.value
    return None


def conflict_logs(server: Server) -> list[dict]:
    return [record for record in server.proc.lines if record.get("msg") == CONFLICT_LOG]


def control_stream_open(server: Server, agent_id: str) -> bool:
    """Return whether the server logged the agent's control stream; only a stream carries a goodbye."""
    return any(record.get("msg") == "agent connected" and record.get("agent_id") == agent_id
               for record in server.proc.lines)


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    """A server, then agent clone-a, then agent clone-b with the same machine id, both sending data."""
    base = tmp_path_factory.mktemp("clones")
    (base / "machine-id").write_text(MACHINE_ID + "\n", encoding="ascii")
    server = start_server(base / "server", base / "server.log")
    started: list[GosightProcess] = []
    try:
        first, first_id = start_clone(server, base, "clone-a")
        started.append(first)
        with server.client() as client:
            wait_for(lambda: (ENDPOINT_ID, "clone-a") in collections_by_endpoint(client),
                     message="clone-a's first collection")
            second, second_id = start_clone(server, base, "clone-b")
            started.append(second)
            split_id = split_endpoint_id(ENDPOINT_ID, second_id)
            # Three collections from clone-b, so its data kept arriving after the conflict was found.
            wait_for(lambda: collections_by_endpoint(client).get((split_id, "clone-b"), 0) >= 3,
                     message=f"three collections of clone-b under {split_id}")
        yield server, (first, first_id), (second, second_id), split_id
    finally:
        for agent in started:
            agent.stop()
        server.proc.stop()


def test_conflict_logged_once(clones):
    server, (_, first_id), (_, second_id), split_id = clones

    records = conflict_logs(server)

    assert len(records) == 1, server.proc.log_text()
    record = records[0]
    assert record["level"] == "warning"
    assert record["endpoint_id"] == ENDPOINT_ID
    assert (record["agent_id"], record["hostname"]) == (first_id, "clone-a")
    assert (record["other_agent_id"], record["other_hostname"]) == (second_id, "clone-b")
    assert record["other_endpoint_id"] == split_id
    assert "systemd-machine-id-setup" in record["hint"]
    assert "agent.machine_id_file" in record["hint"]


def test_conflict_counted_in_metric(clones):
    server, *_ = clones

    with server.client() as client:
        counted = conflicts_counted(client)

    assert counted == 1


def test_each_agent_data_apart(clones):
    server, *_, split_id = clones

    with server.client() as client:
        latest = collections_by_endpoint(client)

    assert set(latest) == {(ENDPOINT_ID, "clone-a"), (split_id, "clone-b")}, latest


def test_endpoint_api_shows_conflict(clones):
    server, (_, first_id), (_, second_id), split_id = clones

    with server.client() as client:
        holder = client.get(f"/api/v1/endpoints/{ENDPOINT_ID}").json()
        clone = client.get(f"/api/v1/endpoints/{split_id}").json()
        listed = client.get("/api/v1/endpoints", params={"kind": "host"}).json()

    assert (holder["agent_id"], holder["hostname"]) == (first_id, "clone-a")
    assert (clone["agent_id"], clone["hostname"]) == (second_id, "clone-b")
    assert clone["facts"]["host_id"] == MACHINE_ID
    assert holder["conflict"] == clone["conflict"]
    conflict = holder["conflict"]
    assert conflict["endpoint_id"] == ENDPOINT_ID
    assert conflict["active"] is True
    assert conflict["detected_at"].endswith("Z")
    assert conflict["agents"] == [
        {"agent_id": first_id, "hostname": "clone-a", "endpoint_id": ENDPOINT_ID, "status": "online"},
        {"agent_id": second_id, "hostname": "clone-b", "endpoint_id": split_id, "status": "online"},
    ]
    assert "systemd-machine-id-setup" in conflict["hint"]
    assert sorted(row["endpoint_id"] for row in listed["endpoints"]) == [ENDPOINT_ID, split_id]


def test_clone_agent_warns(clones):
    _, (first, _), (second, _), split_id = clones

    warning = second.wait_for_log(AGENT_WARNING)

    assert warning["level"] == "warning"
    assert (warning["endpoint_id"], warning["stored_as"]) == (ENDPOINT_ID, split_id)
    assert "systemd-machine-id-setup" in warning["hint"]
    assert [record for record in first.lines if record.get("msg") == AGENT_WARNING] == []


def test_split_kept_after_restart_and_reinstall(tmp_path):
    """The split outlasts a server restart, and a clean reinstall on the holder's machine keeps its id."""
    (tmp_path / "machine-id").write_text(MACHINE_ID + "\n", encoding="ascii")
    server = start_server(tmp_path / "server", tmp_path / "server.log")
    agents: list[GosightProcess] = []
    try:
        first, first_id = start_clone(server, tmp_path, "clone-a")
        agents.append(first)
        with server.client() as client:
            wait_for(lambda: (ENDPOINT_ID, "clone-a") in collections_by_endpoint(client), message="clone-a's data")
        second, second_id = start_clone(server, tmp_path, "clone-b")
        agents.append(second)
        split_id = split_endpoint_id(ENDPOINT_ID, second_id)
        server.proc.wait_for_log(CONFLICT_LOG)

        # Restart the server on the same ports: both agents reconnect and keep their endpoints.
        server.proc.stop()
        _, grpc_port = split_host_port(server.grpc)
        server = start_server(tmp_path / "server", tmp_path / "server-2.log", grpc_listen=f"127.0.0.1:{grpc_port}")
        with server.client() as client:
            before_restart = collections_by_endpoint(client)
            wait_for(lambda: collections_by_endpoint(client).get((split_id, "clone-b"), 0)
                     > before_restart[(split_id, "clone-b")] + 1, message="clone-b's data after the restart")
            wait_for(lambda: collections_by_endpoint(client).get((ENDPOINT_ID, "clone-a"), 0)
                     > before_restart[(ENDPOINT_ID, "clone-a")] + 1, message="clone-a's data after the restart")
            after_restart = collections_by_endpoint(client)
            restart_conflict = server.proc.wait_for_log(CONFLICT_LOG)
            restart_count = conflicts_counted(client)

            # Reinstall on clone-a's machine: the old agent sends goodbye, a new agent id takes its endpoint.
            wait_for(lambda: control_stream_open(server, first_id), message="clone-a's control stream")
            first.stop()
            reinstalled, reinstalled_id = start_clone(server, tmp_path, "clone-a-reinstalled")
            agents.append(reinstalled)
            wait_for(lambda: (ENDPOINT_ID, "clone-a-reinstalled") in collections_by_endpoint(client),
                     message="the reinstalled agent's data")
            holder = client.get(f"/api/v1/endpoints/{ENDPOINT_ID}").json()
            reinstall_count = conflicts_counted(client)
    finally:
        for agent in agents:
            if agent.process.poll() is None:
                agent.stop()
        server.proc.stop()

    assert set(after_restart) == {(ENDPOINT_ID, "clone-a"), (split_id, "clone-b")}, after_restart
    assert (restart_conflict["agent_id"], restart_conflict["other_agent_id"]) == (first_id, second_id)
    assert restart_count == 1
    assert len(conflict_logs(server)) == 1, server.proc.log_text()
    assert reinstall_count == 1
    assert holder["agent_id"] == reinstalled_id
    assert holder["hostname"] == "clone-a-reinstalled"
    assert [agent["agent_id"] for agent in holder["conflict"]["agents"]] == [reinstalled_id, second_id]
