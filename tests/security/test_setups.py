"""The three documented set-ups with real server and agent processes, and agents that must be rejected.

1. Token over TLS with a pinned CA: the server creates its certificates, the agent
   pins the logged fingerprint and sends a token.
2. Mutual TLS with `gosight certs init` and `gosight certs issue`.
3. Plain loopback, for a first try.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from gosight.security import certs
from gosight.security.authority import Authority
from tests.security.support import cli_ok, create_token, launch_agent, launch_server, run_cli
from tests.support.processes import GosightProcess, Server, wait_for
from tests.support.store import read_series

INTERVAL = ("--interval", "0.5")
COLLECTIONS = "gosight_agent_collections_total"


def https_client(server: Server, ca_file: Path) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca_file))
    return httpx.Client(base_url=f"https://{server.http}", verify=context, timeout=30.0, headers=server.auth_headers())


def collections_seen(client: httpx.Client, who: str) -> float:
    response = client.get("/prometheus/api/v1/query", params={"query": f'{COLLECTIONS}{{who="{who}"}}'})
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def write_token_file(path: Path, token: str) -> Path:
    certs.write_file(path, token.encode() + b"\n", private=True)
    return path


def stored_collections(data_dir: Path) -> dict[str, list[float]]:
    return {dict(series.labels).get("who", ""): series.values.tolist() for series in read_series(data_dir, COLLECTIONS)}


def log_records(proc: GosightProcess, message: str) -> list[dict]:
    return [record for record in proc.lines if record.get("msg") == message]


def assert_clean_stop(proc: GosightProcess) -> None:
    assert proc.stop() == 0, proc.log_text()
    assert "Traceback" not in proc.log_text()


def test_token_over_tls_with_pinned_ca(tmp_path: Path, artifacts: Path, launched: list):
    data_dir = tmp_path / "server-data"
    server = launch_server(launched, data_dir, artifacts / "server.log", "--server.tls.enabled", "true",
                           "--server.auth.require_agent_token", "true")
    fingerprint = server.proc.wait_for_log("tls enabled")["ca_fingerprint"]
    token, _ = create_token(data_dir, "--name", "pinned-agent", "--bind-agent")
    token_file = write_token_file(tmp_path / "agent.token", token)
    agent_dir = tmp_path / "agent-data"

    agent = launch_agent(launched, server.grpc, agent_dir, artifacts / "agent.log", *INTERVAL,
                         "--agent.labels", "who=pinned", "--agent.tls.ca_fingerprint", fingerprint,
                         "--agent.token_file", str(token_file))
    ca_file = Authority(data_dir / "tls").ca_cert_path
    with https_client(server, ca_file) as client:
        wait_for(lambda: collections_seen(client, "pinned") >= 2, message="two collections over TLS")
    assert_clean_stop(agent)
    second_start = launch_agent(launched, server.grpc, agent_dir, artifacts / "agent-again.log", *INTERVAL,
                                "--agent.labels", "who=pinned", "--agent.tls.ca_fingerprint", fingerprint,
                                "--agent.token_file", str(token_file))
    second_start.wait_for_log("connected to server")
    assert_clean_stop(second_start)
    server.proc.stop()

    stored = stored_collections(data_dir)
    assert fingerprint == certs.fingerprint(certs.load_certs(ca_file)[0])
    assert (agent_dir / "tls" / "server-ca.crt").read_bytes() == ca_file.read_bytes()
    assert log_records(agent, "server CA certificate matches the pinned fingerprint")
    assert not log_records(second_start, "server CA certificate matches the pinned fingerprint"), \
        "a later start must use the saved CA"
    assert len(stored["pinned"]) >= 2


def test_mutual_tls_with_issued_certificates(tmp_path: Path, artifacts: Path, launched: list):
    data_dir = tmp_path / "server-data"
    cli_ok("certs", "init", "--data-dir", str(data_dir))
    cli_ok("certs", "issue", "web1", "--data-dir", str(data_dir))
    authority = Authority(data_dir / "tls")
    server = launch_server(launched, data_dir, artifacts / "server.log", "--server.tls.enabled", "true",
                           "--server.tls.client_auth", "require")

    agent = launch_agent(launched, server.grpc, tmp_path / "agent-data", artifacts / "agent.log", *INTERVAL,
                         "--agent.labels", "who=mtls", "--agent.tls.ca_file", str(authority.ca_cert_path),
                         "--agent.tls.cert_file", str(authority.clients_dir / "web1.crt"),
                         "--agent.tls.key_file", str(authority.clients_dir / "web1.key"))
    with https_client(server, authority.ca_cert_path) as client:
        wait_for(lambda: collections_seen(client, "mtls") >= 2, message="two collections over mutual TLS")
    connected = server.proc.wait_for_log("agent connected")
    cli_ok("certs", "revoke", "web1", "--data-dir", str(data_dir))
    rejected = wait_for(lambda: log_records(agent, "server rejected this agent's credentials; keeping the batch and "
                                                  "retrying"), message="the agent to be rejected after revocation")
    assert agent.process.poll() is None, "a rejected agent keeps running and retrying"
    assert_clean_stop(agent)
    server.proc.stop()

    assert connected["client_cert"] == "web1"
    assert rejected[0]["code"] == "UNAUTHENTICATED"
    assert "client certificate 'web1'" in rejected[0]["error"]
    assert "was revoked" in rejected[0]["error"]
    assert len(stored_collections(data_dir)["mtls"]) >= 2


def test_plain_loopback(tmp_path: Path, artifacts: Path, launched: list):
    data_dir = tmp_path / "server-data"
    server = launch_server(launched, data_dir, artifacts / "server.log")
    listening = server.proc.wait_for_log("server listening")

    agent = launch_agent(launched, server.grpc, tmp_path / "agent-data", artifacts / "agent.log", *INTERVAL,
                         "--agent.labels", "who=plain")
    with server.client() as client:
        wait_for(lambda: collections_seen(client, "plain") >= 2, message="two collections over plaintext")
    assert_clean_stop(agent)
    server.proc.stop()

    assert listening["tls"] is False
    assert listening["agent_token_required"] == "none"
    assert len(stored_collections(data_dir)["plain"]) >= 2


def test_rejected_agents_keep_retrying(tmp_path: Path, artifacts: Path, launched: list):
    """One good agent and three rejected ones on one server; only the good one's samples are stored."""
    data_dir = tmp_path / "server-data"
    server = launch_server(launched, data_dir, artifacts / "server.log", "--server.tls.enabled", "true",
                           "--server.auth.require_agent_token", "true")
    fingerprint = server.proc.wait_for_log("tls enabled")["ca_fingerprint"]
    token, _ = create_token(data_dir, "--bind-agent")
    token_file = write_token_file(tmp_path / "agent.token", token)
    _, foreign_ca = certs.create_ca("unrelated CA", 30)
    common = (*INTERVAL, "--agent.token_file", str(token_file), "--agent.backoff.max_s", "1")

    def agent(who: str, *extra: str) -> GosightProcess:
        return launch_agent(launched, server.grpc, tmp_path / f"agent-{who}", artifacts / f"agent-{who}.log",
                            *common, "--agent.labels", f"who={who}", *extra)

    good = agent("good", "--agent.tls.ca_fingerprint", fingerprint)
    with https_client(server, Authority(data_dir / "tls").ca_cert_path) as client:
        wait_for(lambda: collections_seen(client, "good") >= 1, message="the bound agent's first collection")
    replay = agent("replay", "--agent.tls.ca_fingerprint", fingerprint)
    wrong_pin = agent("wrong-pin", "--agent.tls.ca_fingerprint", certs.fingerprint(foreign_ca))
    plaintext = agent("plaintext")

    replay_rejected = wait_for(lambda: log_records(replay, "server rejected this agent's credentials; keeping the "
                                                          "batch and retrying"), message="the replayed token rejected")
    pin_message = "server certificate does not match the pinned fingerprint; will retry"
    pin_errors = wait_for(lambda: len(log_records(wrong_pin, pin_message)) >= 2 and log_records(wrong_pin, pin_message),
                          message="two attempts with the wrong pin")
    plaintext_errors = wait_for(lambda: log_records(plaintext, "export failed; will retry"),
                                message="the plaintext agent rejected")
    for proc in (replay, wrong_pin, plaintext):
        assert proc.process.poll() is None, f"a rejected agent must keep running:\n{proc.log_text()}"
    for proc in (good, replay, wrong_pin, plaintext):
        assert_clean_stop(proc)
    server.proc.stop()

    stored = stored_collections(data_dir)
    assert replay_rejected[0]["code"] == "PERMISSION_DENIED"
    assert "is bound to agent" in replay_rejected[0]["error"]
    assert pin_errors[0]["level"] == "error"
    assert f"none has fingerprint {certs.fingerprint(foreign_ca)}" in pin_errors[0]["error"]
    assert "agent.tls.ca_fingerprint" in pin_errors[0]["error"]
    assert plaintext_errors[0]["level"] == "error"
    assert "turn TLS on for the agent" in plaintext_errors[0]["hint"]
    assert set(stored) == {"good"}, f"only the accepted agent's samples may be stored: {sorted(stored)}"


def test_agent_without_token_file_exits_cleanly(tmp_path: Path):
    result = run_cli("agent", "--server", "127.0.0.1:1", "--data-dir", str(tmp_path),
                     "--agent.token_file", str(tmp_path / "absent.token"))

    assert result.returncode == 1
    assert "agent cannot start: agent.token_file" in result.stderr
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr
