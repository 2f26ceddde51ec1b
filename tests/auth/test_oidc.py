"""Single sign-on: end to end against a real OpenID Connect provider, and bad ID tokens that must be refused.

The real provider is the `oidc-provider` package from npm, run by Node with
tests/auth/oidc-provider/provider.mjs. Tokens a real provider would never issue
(another nonce, issuer or audience, expired, signed by an unknown key) come from a
small provider in this process (fake_idp.py) that signs what the test chooses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.auth.fake_idp import CLIENT_ID, CLIENT_SECRET, RunningIdp
from tests.support.processes import ADMIN_PASSWORD, Server, free_port, start_server, wait_for

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc-provider"
REAL_CLIENT_ID = "gosight"
REAL_CLIENT_SECRET = "real-provider-client-secret"
SSO_EMAIL = "ada@example.test"


def _oidc_flags(issuer: str, client_id: str) -> list[str]:
    return ["--server.auth.oidc.provider", "generic", "--server.auth.oidc.issuer", issuer,
            "--server.auth.oidc.client_id", client_id, "--server.auth.oidc.display_name", "Test IdP",
            "--server.auth.oidc.role_claim", "groups",
            "--server.auth.oidc.role_map", "gosight-admins=admin,gosight-editors=editor"]


@pytest.fixture(scope="module")
def real_provider(tmp_path_factory):
    """Start GoSight and the npm oidc-provider, each configured with the other's address."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed; build/setup.sh installs it")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("oidc-provider is not installed; run npm ci in tests/auth/oidc-provider (build/setup.sh does)")
    base = tmp_path_factory.mktemp("oidc")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    server = start_server(base / "data", base / "server.log", *_oidc_flags(issuer, REAL_CLIENT_ID),
                          env={"GOSIGHT_SERVER_AUTH_OIDC_CLIENT_SECRET": REAL_CLIENT_SECRET})
    log = open(base / "provider.log", "w")  # noqa: SIM115 - closed after the process
    provider = subprocess.Popen(["node", "provider.mjs"], cwd=PROVIDER_DIR, stdout=subprocess.PIPE, stderr=log,
                                text=True, env={
                                    "PATH": "/usr/local/bin:/usr/bin:/bin", "OIDC_PORT": str(port),
                                    "OIDC_CLIENT_ID": REAL_CLIENT_ID, "OIDC_CLIENT_SECRET": REAL_CLIENT_SECRET,
                                    "OIDC_REDIRECT_URI": f"{server.url}/api/v1/auth/oidc/callback",
                                    "OIDC_USER_EMAIL": SSO_EMAIL, "OIDC_USER_GROUPS": "staff,gosight-editors"})
    try:
        ready = json.loads(provider.stdout.readline() or "{}")
        assert ready.get("listening") == issuer, f"oidc-provider did not start: {(base / 'provider.log').read_text()}"
        yield server
    finally:
        provider.terminate()
        provider.wait(10)
        provider.stdout.close()
        log.close()
        server.proc.stop()


def sso_login(server: Server, client: httpx.Client, next_path: str = "/endpoints") -> httpx.Response:
    return client.get(f"{server.url}/api/v1/auth/oidc/login", params={"next": next_path})


def follow_to_callback(client: httpx.Client, response: httpx.Response, server: Server) -> httpx.Response:
    """Follow redirects until the provider sends the browser to GoSight's callback; return that redirect."""
    for _ in range(10):
        location = response.headers.get("location", "")
        if location.startswith(f"{server.url}/api/v1/auth/oidc/callback"):
            return response
        assert response.status_code in (302, 303), f"{response.status_code} {response.text[:300]}"
        response = client.get(location if location.startswith("http") else str(response.url.join(location)))
    raise AssertionError("the provider never redirected to the callback")


def test_sso_login_end_to_end(real_provider: Server):
    with httpx.Client(timeout=30, follow_redirects=True) as browser:
        landed = sso_login(real_provider, browser)
        me = browser.get(f"{real_provider.url}/api/v1/auth/me")
        again = sso_login(real_provider, browser, "/")
        me_again = browser.get(f"{real_provider.url}/api/v1/auth/me")
    with real_provider.client() as admin:
        users = [user for user in admin.get("/api/v1/users").json()["users"] if user["email"] == SSO_EMAIL]
        events = admin.get("/api/v1/security/events", params={"type": "login_succeeded"}).json()["events"]

    assert landed.status_code == 200, landed.text[:300]
    assert landed.url.path == "/endpoints", "the browser returns to the page it asked for"
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == SSO_EMAIL
    assert me.json()["user"]["role"] == "editor", "the groups claim maps gosight-editors to editor"
    assert me.json()["method"] == "oidc"
    assert me.json()["user"]["has_password"] is False
    assert again.url.path == "/"
    assert me_again.json()["user"]["id"] == me.json()["user"]["id"], "the second sign-in finds the linked user"
    assert len(users) == 1
    assert any(event["detail"].get("method") == "oidc" for event in events)


def test_sso_wrong_state_is_refused(real_provider: Server):
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        callback = follow_to_callback(browser, sso_login(real_provider, browser), real_provider)
        location = callback.headers["location"]
        tampered = location.replace("state=", "state=x", 1)
        refused = browser.get(tampered)
        me = browser.get(f"{real_provider.url}/api/v1/auth/me")
    with httpx.Client(timeout=30, follow_redirects=False) as other_browser:
        # The untampered callback in a browser that did not start this sign-in.
        foreign = other_browser.get(location)
        other_me = other_browser.get(f"{real_provider.url}/api/v1/auth/me")

    for response in (refused, foreign):
        assert response.status_code == 303
        assert urlsplit(response.headers["location"]).path == "/login"
        error = parse_qs(urlsplit(response.headers["location"]).query)["error"][0]
        assert "state" in error, error
    assert "gosight_session" not in refused.headers.get("set-cookie", "")
    assert me.status_code == 401
    assert other_me.status_code == 401


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    running = RunningIdp()
    idp = running.start()
    base = tmp_path_factory.mktemp("fake-oidc")
    server = start_server(base / "data", base / "server.log", *_oidc_flags(idp.issuer, CLIENT_ID),
                          "--server.auth.local_login", "false",
                          env={"GOSIGHT_SERVER_AUTH_OIDC_CLIENT_SECRET": CLIENT_SECRET})
    yield server, idp
    server.proc.stop()
    running.stop()


def fake_sign_in(server: Server, idp, scenario: dict) -> tuple[httpx.Response, httpx.Response]:
    """Run one sign-in through the fake provider; return the callback's answer and /api/v1/auth/me."""
    idp.scenario = scenario
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        to_provider = sso_login(server, browser)
        to_callback = browser.get(to_provider.headers["location"])
        answer = browser.get(to_callback.headers["location"])
        me = browser.get(f"{server.url}/api/v1/auth/me")
    return answer, me


def test_fake_provider_good_token_is_accepted(fake):
    server, idp = fake

    answer, me = fake_sign_in(server, idp, {})

    assert answer.status_code == 303
    assert answer.headers["location"] == "/endpoints", answer.headers
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "sso.user@example.test"
    assert idp.token_requests[-1]["code_verifier"], "the code exchange carries the PKCE verifier"


BAD_TOKENS = [
    ("wrong_nonce", {"claims": {"nonce": "another-sign-in"}}, "nonce"),
    ("wrong_issuer", {"claims": {"iss": "https://evil.example.test"}}, "issuer"),
    ("wrong_audience", {"claims": {"aud": "another-client"}}, "audience"),
    ("several_audiences_without_azp", {"claims": {"aud": [CLIENT_ID, "another-client"]}}, "azp"),
    ("expired", {"claims": {"exp": 1_700_000_000, "iat": 1_699_999_000}}, "expired"),
    ("signed_by_other_key", {"sign_with_other_key": True}, "signature"),
    ("unverified_email", {"claims": {"sub": "new-subject", "email": "x@example.test", "email_verified": False}},
     "verified email"),
]


@pytest.mark.parametrize("case, scenario, reason", BAD_TOKENS, ids=[row[0] for row in BAD_TOKENS])
def test_bad_id_token_is_refused(fake, case, scenario, reason):
    server, idp = fake

    answer, me = fake_sign_in(server, idp, scenario)

    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.path == "/login", answer.headers
    assert reason in parse_qs(location.query)["error"][0]
    assert me.status_code == 401
    wait_for(lambda: any(line.get("msg") == "single sign-on rejected" and reason in str(line.get("error"))
                         for line in server.proc.lines), timeout_s=5, message=f"the log line for {case}")


def test_local_login_can_be_turned_off(fake):
    server, _ = fake

    with httpx.Client(base_url=server.url, timeout=30) as browser:
        options = browser.get("/api/v1/auth/providers").json()
        login = browser.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})

    assert options["local"] is False
    assert options["oidc"] == {"name": "Test IdP", "login_url": "/api/v1/auth/oidc/login"}
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "local_login_disabled"
