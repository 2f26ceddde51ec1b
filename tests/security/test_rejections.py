"""Rejected senders: each row is one wrong credential against a server with mTLS and required tokens.

Every row sends one probe sample tagged with the row's name, checks the status code
and message, and checks through the query API that nothing was stored. The last test
stops the server and reads the store file itself: only the accepted probe is there.
Rows rejected during the TLS handshake never reach GoSight's code, so the client sees
only UNAVAILABLE; for those the reason is checked in the server's log, where gRPC's
core writes it.
"""

from __future__ import annotations

import datetime
import ssl
import time
from dataclasses import dataclass

import grpc
import httpx
import pytest
from google.rpc import status_pb2

from gosight.security import certs
from gosight.security.authority import Authority
from gosight.security.client_tls import PinMismatch, fetch_pinned_ca
from gosight.security.tokens import TokenStore
from tests.security.support import (
    PROBE_METRIC,
    ClientFiles,
    bearer,
    cli_ok,
    create_token,
    export_status,
    probe,
    tls_channel,
    write_client_cert,
    write_foreign_ca,
)
from tests.support.processes import Server, start_server, wait_for
from tests.support.store import read_series

PAST = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)


@dataclass
class MtlsSetup:
    server: Server
    authority: Authority
    clients: dict[str, ClientFiles]
    tokens: dict[str, str]
    sent_cases: list[str]

    def https(self, signed_in: bool = True) -> httpx.Client:
        """Return an HTTPS client; `signed_in` adds the admin's API token, which queries need and probes must not
        carry."""
        context = ssl.create_default_context(cafile=str(self.authority.ca_cert_path))
        return httpx.Client(base_url=f"https://{self.server.http}", verify=context, timeout=30.0,
                            headers=self.server.auth_headers() if signed_in else None)

    def stored_cases(self, case: str) -> list:
        with self.https() as client:
            response = client.get("/prometheus/api/v1/query", params={"query": f'{PROBE_METRIC}{{case="{case}"}}'})
        response.raise_for_status()
        return response.json()["data"]["result"]


@pytest.fixture(scope="module")
def mtls(tmp_path_factory) -> MtlsSetup:
    base = tmp_path_factory.mktemp("mtls")
    data_dir = base / "server-data"
    cli_ok("certs", "init", "--data-dir", str(data_dir))
    cli_ok("certs", "issue", "revoked-agent", "--data-dir", str(data_dir))

    authority = Authority(data_dir / "tls")
    ca_key, ca_cert = authority.load_ca()
    foreign_key, foreign_ca = write_foreign_ca(base)
    clients = {
        "good": write_client_cert(base, "good", ca_key, ca_cert),
        "expired": write_client_cert(base, "expired", ca_key, ca_cert, valid_from=PAST, validity_days=1),
        "foreign": write_client_cert(base, "foreign", foreign_key, foreign_ca),
        "revoked": ClientFiles(authority.clients_dir / "revoked-agent.crt",
                               authority.clients_dir / "revoked-agent.key"),
    }

    server = start_server(data_dir, base / "server.log", "--server.tls.enabled", "true",
                          "--server.tls.client_auth", "require", "--server.auth.require_agent_token", "true")
    bound_token, bound_id = create_token(data_dir, "--bind-agent")
    tokens = {"valid": create_token(data_dir)[0], "bound": bound_token}
    revoked_token, revoked_id = create_token(data_dir)
    cli_ok("token", "revoke", revoked_id, "--data-dir", str(data_dir))
    tokens["revoked"] = revoked_token
    # The revocation happens while the server runs: it must pick the new list up without a restart.
    cli_ok("certs", "revoke", "revoked-agent", "--data-dir", str(data_dir))
    store = TokenStore(data_dir / "meta.sqlite")
    tokens["expired"] = store.create("short-lived", expires_in_s=0.001)[0]
    # Bound up front, as its first agent's call would, so each replay row can run on its own.
    store.bind(bound_id, "first-agent")
    store.close()
    time.sleep(0.01)

    setup = MtlsSetup(server, authority, clients, tokens, [])
    yield setup
    if server.proc.process.poll() is None:
        server.proc.stop()


def server_log_has(server: Server, text: str) -> bool:
    return any(text in str(line.get("msg", "")) for line in server.proc.lines)


HANDSHAKE_ROWS = [
    # case, client certificate (None: no TLS at all, "": TLS without a certificate), reason in the server log
    ("plaintext_client", None, "WRONG_VERSION_NUMBER"),
    ("no_client_certificate", "", "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
    ("certificate_from_other_ca", "foreign", "unable to get local issuer certificate"),
    ("expired_certificate", "expired", "certificate has expired"),
]


@pytest.mark.parametrize("case, client, reason", HANDSHAKE_ROWS, ids=[row[0] for row in HANDSHAKE_ROWS])
def test_handshake_rejected(mtls: MtlsSetup, case: str, client: str | None, reason: str):
    target = mtls.server.grpc
    if client is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = tls_channel(target, mtls.authority.ca_cert_path, mtls.clients[client] if client else None)

    with channel:
        code, details = export_status(channel, case, bearer(mtls.tokens["valid"]))
    mtls.sent_cases.append(case)

    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert "Socket closed" in details, "the server must end the connection during the handshake"
    wait_for(lambda: server_log_has(mtls.server, reason), timeout_s=10, message=f"{reason!r} in the server log")
    assert mtls.stored_cases(case) == []


CALL_ROWS = [
    # case, client certificate, token name (None: no authorization header), agent id, code, message
    ("revoked_certificate", "revoked", "valid", "probe-agent", grpc.StatusCode.UNAUTHENTICATED,
     "client certificate 'revoked-agent' (serial"),
    ("missing_token", "good", None, "probe-agent", grpc.StatusCode.UNAUTHENTICATED, "missing agent token"),
    ("unknown_token", "good", "gst_" + "U" * 43, "probe-agent", grpc.StatusCode.UNAUTHENTICATED,
     "unknown agent token"),
    ("expired_token", "good", "expired", "probe-agent", grpc.StatusCode.UNAUTHENTICATED, "expired at"),
    ("revoked_token", "good", "revoked", "probe-agent", grpc.StatusCode.UNAUTHENTICATED, "was revoked"),
    ("malformed_authorization", "good", "Basic dXNlcjpwYXNz", "probe-agent", grpc.StatusCode.UNAUTHENTICATED,
     "malformed authorization header"),
    ("bound_token_other_agent", "good", "bound", "intruder-agent", grpc.StatusCode.PERMISSION_DENIED,
     "is bound to agent first-agent and cannot be used by agent intruder-agent"),
    ("bound_token_no_agent_id", "good", "bound", None, grpc.StatusCode.PERMISSION_DENIED,
     "the call must carry the gosight-agent-id header"),
]


def call_metadata(mtls: MtlsSetup, token: str | None, agent_id: str | None) -> tuple:
    metadata = []
    if token is not None:
        value = mtls.tokens.get(token, token)
        metadata.append(("authorization", value if value.startswith("Basic") else f"Bearer {value}"))
    if agent_id is not None:
        metadata.append(("gosight-agent-id", agent_id))
    return tuple(metadata)


def test_valid_credentials_accepted(mtls: MtlsSetup):
    with tls_channel(mtls.server.grpc, mtls.authority.ca_cert_path, mtls.clients["good"]) as channel:
        code, details = export_status(channel, "accepted", bearer(mtls.tokens["valid"]))
        bound_code, bound_details = export_status(channel, "accepted_bound", bearer(mtls.tokens["bound"],
                                                                                    "first-agent"))

    assert code == grpc.StatusCode.OK, details
    assert bound_code == grpc.StatusCode.OK, bound_details
    assert len(mtls.stored_cases("accepted")) == 1


@pytest.mark.parametrize("case, client, token, agent_id, expected_code, expected_message", CALL_ROWS,
                         ids=[row[0] for row in CALL_ROWS])
def test_call_rejected(mtls: MtlsSetup, case, client, token, agent_id, expected_code, expected_message):
    with tls_channel(mtls.server.grpc, mtls.authority.ca_cert_path, mtls.clients[client]) as channel:
        code, details = export_status(channel, case, call_metadata(mtls, token, agent_id))
    mtls.sent_cases.append(case)

    assert code == expected_code, details
    assert expected_message in details
    assert mtls.stored_cases(case) == []


HTTP_ROWS = [
    ("http_missing_token", None, "probe-agent", 401, 16, "missing agent token"),
    ("http_unknown_token", "gst_" + "V" * 43, "probe-agent", 401, 16, "unknown agent token"),
    ("http_bound_token_other_agent", "bound", "intruder-agent", 403, 7, "is bound to agent first-agent"),
]


@pytest.mark.parametrize("case, token, agent_id, status, code, message", HTTP_ROWS, ids=[row[0] for row in HTTP_ROWS])
def test_http_rejected(mtls: MtlsSetup, case, token, agent_id, status, code, message):
    headers = {"Content-Type": "application/x-protobuf", "gosight-agent-id": agent_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {mtls.tokens.get(token, token)}"

    with mtls.https(signed_in=False) as client:
        response = client.post("/v1/metrics", content=probe(case), headers=headers)
    mtls.sent_cases.append(case)
    body = status_pb2.Status.FromString(response.content)

    assert response.status_code == status, response.text
    assert body.code == code
    assert message in body.message
    assert mtls.stored_cases(case) == []


def test_revoked_token_ends_open_stream(mtls: MtlsSetup):
    from gosight.wire import agent_pb2, agent_pb2_grpc

    token, token_id = create_token(mtls.server.data_dir)
    hello = agent_pb2.AgentMessage(hello=agent_pb2.Hello(agent_id="stream-agent", endpoint_id="host-stream",
                                                         hostname="stream"))
    heartbeat = agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat())
    revoked = []

    def messages():
        yield hello
        wait_for(lambda: server_log_has(mtls.server, "agent connected"), message="the stream to open")
        cli_ok("token", "revoke", token_id, "--data-dir", str(mtls.server.data_dir))
        revoked.append(True)
        yield heartbeat

    with tls_channel(mtls.server.grpc, mtls.authority.ca_cert_path, mtls.clients["good"]) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stub.Connect(messages(), metadata=bearer(token, "stream-agent"), timeout=30):
                pass

    assert revoked, "the token was revoked while the stream was open"
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert f"agent token {token_id} was revoked" in caught.value.details()


def test_hello_must_match_agent_header(mtls: MtlsSetup):
    from gosight.wire import agent_pb2, agent_pb2_grpc

    hello = agent_pb2.AgentMessage(hello=agent_pb2.Hello(agent_id="intruder-agent", endpoint_id="host-intruder",
                                                         hostname="intruder"))

    with tls_channel(mtls.server.grpc, mtls.authority.ca_cert_path, mtls.clients["good"]) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stub.Connect(iter([hello]), metadata=bearer(mtls.tokens["bound"], "first-agent"), timeout=30):
                pass

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "hello names agent intruder-agent" in caught.value.details()


def test_pinned_fetch_with_client_certificate(mtls: MtlsSetup):
    pin = certs.fingerprint(mtls.authority.load_ca_cert())
    good = mtls.clients["good"]

    fetched = fetch_pinned_ca(mtls.server.grpc, pin, cert_pem=good.cert.read_bytes(), key_pem=good.key.read_bytes())
    with pytest.raises(PinMismatch) as caught:
        fetch_pinned_ca(mtls.server.grpc, "sha256:" + "0" * 64)

    assert certs.fingerprint(fetched) == pin
    assert "none has fingerprint sha256:0000" in str(caught.value)
    assert "gosight certs fingerprint" in str(caught.value)


def test_rejected_senders_stored_nothing(mtls: MtlsSetup):
    # A sample accepted just before the stop proves that the store read below finds what was sent.
    with tls_channel(mtls.server.grpc, mtls.authority.ca_cert_path, mtls.clients["good"]) as channel:
        code, details = export_status(channel, "accepted_last", bearer(mtls.tokens["valid"]))
    mtls.server.proc.stop()

    stored = {dict(series.labels).get("case") for series in read_series(mtls.server.data_dir, PROBE_METRIC)}

    assert code == grpc.StatusCode.OK, details
    assert "accepted_last" in stored
    assert not stored & set(mtls.sent_cases), f"rejected probes were stored: {stored & set(mtls.sent_cases)}"
    assert stored <= {"accepted", "accepted_bound", "accepted_last"}, stored
    assert "Traceback" not in mtls.server.proc.log_text()
