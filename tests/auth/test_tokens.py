"""API tokens and Basic credentials: what each may do, on the APIs and on metric ingest."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest

from tests.auth.support import PASSWORD, SessionClient, create_user
from tests.security.support import probe
from tests.support.processes import Server, start_server, wait_for

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("tokens")
    running = start_server(base / "data", base / "server.log", "--server.auth.require_agent_token", "true")
    create_user(running, "writer", "editor")
    create_user(running, "reader", "viewer")
    yield running
    running.proc.stop()


def token_of(server: Server, username: str, permissions: list[str], expires: str = "1d") -> str:
    with SessionClient(server).signed_in(username) as session:
        response = session.post("/api/v1/auth/tokens", json={"name": "t", "permissions": permissions,
                                                             "expires": expires})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def stored(server: Server, case: str) -> list:
    with server.client() as client:
        response = client.get("/prometheus/api/v1/query", params={"query": f'security_probe{{case="{case}"}}'})
    return response.json()["data"]["result"]


def test_api_token_with_metrics_write_sends_metrics(server: Server):
    writer = token_of(server, "writer", ["metrics:write"])
    reader = token_of(server, "writer", ["metrics:read"])

    with httpx.Client(base_url=server.url, timeout=30) as sender:
        accepted = sender.post("/v1/metrics", content=probe("user_token"),
                               headers={**PROTOBUF, "Authorization": f"Bearer {writer}"})
        refused = sender.post("/v1/metrics", content=probe("read_token"),
                              headers={**PROTOBUF, "Authorization": f"Bearer {reader}"})
        anonymous = sender.post("/v1/metrics", content=probe("anonymous"), headers=PROTOBUF)
        query_with_writer = sender.get("/prometheus/api/v1/query", params={"query": "1"},
                                       headers={"Authorization": f"Bearer {writer}"})

    assert accepted.status_code == 200, accepted.text
    wait_for(lambda: stored(server, "user_token"), message="the probe sent with an API token")
    assert refused.status_code == 403
    assert "metrics:write" in refused.json()["error"]["message"]
    assert anonymous.status_code == 401, "this server requires a token on ingest"
    assert query_with_writer.status_code == 403, "a token carries only the permissions it was given"
    assert stored(server, "read_token") == []


def test_viewer_cannot_make_a_token_beyond_the_role(server: Server):
    with SessionClient(server).signed_in("reader") as session:
        response = session.post("/api/v1/auth/tokens", json={"name": "t", "permissions": ["metrics:write"]})
        no_expiry = session.post("/api/v1/auth/tokens", json={"name": "t", "permissions": ["metrics:read"],
                                                              "expires": "never"})

    assert response.status_code == 403
    assert no_expiry.status_code == 400
    assert "expiry" in no_expiry.json()["error"]["message"]


def test_token_shrinks_with_the_role_and_stops_when_revoked(server: Server):
    create_user(server, "shrinking", "editor")
    token = token_of(server, "shrinking", ["metrics:read", "endpoints:read"])
    headers = {"Authorization": f"Bearer {token}"}

    with server.client() as admin, httpx.Client(base_url=server.url, timeout=30, headers=headers) as script:
        before = script.get("/api/v1/endpoints").status_code
        user_id = next(user["id"] for user in admin.get("/api/v1/users").json()["users"]
                       if user["username"] == "shrinking")
        admin.post("/api/v1/roles", json={"name": "query-only", "permissions": ["metrics:read"]})
        admin.patch(f"/api/v1/users/{user_id}", json={"role": "query-only"})
        after_role = script.get("/api/v1/endpoints").status_code
        still_query = script.get("/prometheus/api/v1/query", params={"query": "1"}).status_code
        admin.patch(f"/api/v1/users/{user_id}", json={"disabled": True})
        after_disable = script.get("/prometheus/api/v1/query", params={"query": "1"}).status_code

    assert before == 200
    assert after_role == 403
    assert still_query == 200
    assert after_disable == 401


def test_agent_token_is_refused_outside_ingest(server: Server):
    from tests.security.support import create_token

    agent_token, _ = create_token(server.data_dir)

    response = httpx.get(f"{server.url}/api/v1/endpoints", headers={"Authorization": f"Bearer {agent_token}"})

    assert response.status_code == 401
    assert "agent tokens only send metrics" in response.json()["error"]["message"]


def test_basic_auth_on_prometheus_api_only_and_not_with_mfa(server: Server):
    create_user(server, "basic-mfa", "viewer")
    with SessionClient(server).signed_in("basic-mfa") as session:
        seed = session.post("/api/v1/auth/mfa/enrollment").json()["secret"]
        code = pyotp.TOTP(seed).at(time.time())
        assert session.post("/api/v1/auth/mfa/enrollment/confirm", json={"code": code}).status_code == 200

    with httpx.Client(base_url=server.url, timeout=30) as grafana:
        query = grafana.get("/prometheus/api/v1/query", params={"query": "1"}, auth=("reader", PASSWORD))
        wrong = grafana.get("/prometheus/api/v1/query", params={"query": "1"}, auth=("reader", "wrong-password-1"))
        elsewhere = grafana.get("/api/v1/endpoints", auth=("reader", PASSWORD))
        with_mfa = grafana.get("/prometheus/api/v1/query", params={"query": "1"}, auth=("basic-mfa", PASSWORD))
        metrics = grafana.get("/metrics", auth=("reader", PASSWORD))

    assert query.status_code == 200, query.text
    assert wrong.status_code == 401
    assert wrong.json()["status"] == "error", "the Prometheus API answers errors in its own shape"
    assert elsewhere.status_code == 401
    assert with_mfa.status_code == 401
    assert "uses MFA" in with_mfa.json()["error"]
    assert metrics.status_code == 403, "a viewer lacks system:metrics"
