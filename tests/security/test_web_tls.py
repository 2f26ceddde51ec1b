"""TLS versions on both ports, OTLP/HTTP with tokens, and the token REST API."""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings
from pathlib import Path

import httpx
import pytest

from gosight.auth.service import AuthService
from gosight.auth.store import AuthStore, now_ms
from gosight.config import load_config
from gosight.security.authority import Authority
from gosight.security.tokens import TokenStore
from gosight.server.app import create_app
from tests.security.support import PROBE_METRIC, probe
from tests.support.processes import Server, bootstrap_admin, start_server
from tests.support.store import read_series


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("web-tls")
    running = start_server(base / "data", base / "server.log", "--server.tls.enabled", "true",
                           "--server.auth.require_agent_token", "true")
    yield running
    if running.proc.process.poll() is None:
        running.proc.stop()


def ca_file(server: Server) -> Path:
    return Authority(server.data_dir / "tls").ca_cert_path


def https(server: Server) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca_file(server)))
    return httpx.Client(base_url=f"https://{server.http}", verify=context, timeout=30.0, headers=server.auth_headers())


def handshake(address: str, version: ssl.TLSVersion, ciphers: str = "ALL:@SECLEVEL=0") -> str:
    """Connect offering only `version`; return the negotiated version, or raise ssl.SSLError or OSError."""
    host, port = address.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    with warnings.catch_warnings():
        # Offering TLS 1.1 is deprecated in Python itself; here it is the point of the test.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.set_ciphers(ciphers)
        context.minimum_version = version
        context.maximum_version = version
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.version()


@pytest.mark.parametrize("port", ["http", "grpc"])
def test_modern_tls_versions_accepted(tls_server: Server, port: str):
    address = getattr(tls_server, port)

    assert handshake(address, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(address, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


@pytest.mark.parametrize("port", ["http", "grpc"])
def test_tls_1_1_rejected(tls_server: Server, port: str):
    # The client offers TLS 1.1 with every cipher allowed, so a failure comes from the server.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(getattr(tls_server, port), ssl.TLSVersion.TLSv1_1)


def test_web_port_rejects_ciphers_without_forward_secrecy(tls_server: Server):
    with pytest.raises(ssl.SSLError):
        handshake(tls_server.http, ssl.TLSVersion.TLSv1_2, ciphers="AES128-SHA:AES256-SHA:AES128-GCM-SHA256")


def test_plain_http_to_tls_port_fails(tls_server: Server):
    with httpx.Client(base_url=f"http://{tls_server.http}", timeout=5.0) as client:
        with pytest.raises(httpx.HTTPError):
            client.get("/healthz")


def test_token_api_and_otlp_http(tls_server: Server):
    with https(tls_server) as client:
        created = client.post("/api/v1/tokens", json={"name": "collector", "expires": "1d"})
        token = created.json()["token"]
        listing = client.get("/api/v1/tokens")
        headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"}
        accepted = client.post("/v1/metrics", content=probe("http_token"), headers=headers)
        revoked = client.delete(f"/api/v1/tokens/{created.json()['id']}")
        rejected = client.post("/v1/metrics", content=probe("http_token_revoked"), headers=headers)
        missing = client.delete("/api/v1/tokens/nope")
        invalid = client.post("/api/v1/tokens", json={"expires": "soon"})

    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    assert token.startswith("gst_")
    assert created.json()["expires"] is not None
    assert token not in listing.text
    assert [row["name"] for row in listing.json()["tokens"]] == ["collector"]
    assert accepted.status_code == 200, accepted.text
    assert revoked.json()["status"] == "revoked"
    assert rejected.status_code == 401
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert invalid.status_code == 400
    assert "invalid duration 'soon'" in invalid.json()["error"]["message"]

    tls_server.proc.stop()
    stored = {dict(series.labels)["case"] for series in read_series(tls_server.data_dir, PROBE_METRIC)}
    assert stored == {"http_token"}
    assert token not in tls_server.proc.log_text()


def test_token_api_needs_tokens_manage_from_any_address(tmp_path: Path):
    tokens = TokenStore(tmp_path / "meta.sqlite")
    config = load_config(["server"], env={}, flags={"data_dir": str(tmp_path)})
    admin_token = bootstrap_admin(tmp_path)
    auth = AuthService(AuthStore(tmp_path), config)
    viewer = auth.store.create_user("viewer1", None, "viewer")
    viewer_token, _ = auth.store.create_token(viewer.user_id, "", frozenset({"metrics:read"}), now_ms() + 60_000)
    app = create_app({"config": config, "tokens": tokens, "auth": auth})

    async def request_from(address: str, token: str | None) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://gosight", headers=headers) as client:
            return await client.get("/api/v1/tokens")

    remote = asyncio.run(request_from("192.0.2.10", None))
    local = asyncio.run(request_from("127.0.0.1", None))
    remote_admin = asyncio.run(request_from("192.0.2.10", admin_token))
    local_viewer = asyncio.run(request_from("127.0.0.1", viewer_token))
    tokens.close()
    auth.store.close()

    assert remote.status_code == 401
    assert local.status_code == 401, "loopback clients get no exception any more"
    assert "sign in first" in local.json()["error"]["message"]
    assert remote_admin.status_code == 200
    assert local_viewer.status_code == 403
    assert "tokens:manage" in local_viewer.json()["error"]["message"]
