"""Passwords, TOTP secrets, recovery codes and session ids never show in logs, CLI output or API answers.

One test drives a full run: first-run setup, users from the API and the CLI, sign-ins
right and wrong, MFA enrolment and use, API tokens, sessions listed and ended. Every
JSON answer and every CLI output is kept, together with the server log, and each is
searched for every secret of the run. The few answers whose purpose is to show a
secret once (the new token, the enrolment seed, the recovery codes) may contain that
secret and no other. The metadata database is searched too: it keeps digests only.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp

from tests.support.processes import Server, start_server

REPO = Path(__file__).resolve().parents[2]

OIDC_SECRET = "oidc-client-secret-never-printed"


@dataclass
class Recorder:
    """Every answer and output of the run, with the secrets each may show once."""

    outputs: list[tuple[str, str, set[str]]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def secret(self, kind: str, value: str) -> str:
        assert value, kind
        self.secrets[value] = kind
        return value

    def answer(self, response: httpx.Response, shows: set[str] | None = None) -> httpx.Response:
        label = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
        if response.headers.get("content-type", "").startswith("application/json"):
            self.outputs.append((label, response.text, shows or set()))
        return response

    def cli(self, *args: str, data_dir: Path, stdin: str = "", shows_stdout: bool = False) -> str:
        result = subprocess.run([sys.executable, "-m", "gosight", *args, "--data-dir", str(data_dir)], input=stdin,
                                capture_output=True, text=True, timeout=60, cwd=REPO,
                                env={"PATH": "/usr/bin:/bin", "HOME": "/tmp",
                                     "GOSIGHT_SERVER_AUTH_OIDC_CLIENT_SECRET": OIDC_SECRET})
        assert result.returncode == 0, f"gosight {' '.join(args)}: {result.stderr}"
        shown = {result.stdout.strip()} if shows_stdout else set()
        self.outputs.append((f"gosight {' '.join(args)} (stdout)", result.stdout, shown))
        self.outputs.append((f"gosight {' '.join(args)} (stderr)", result.stderr, set()))
        return result.stdout.strip()


class Browser:
    """A session client that records every answer."""

    def __init__(self, server: Server, recorder: Recorder):
        self.server = server
        self.recorder = recorder
        self.http = httpx.Client(base_url=server.url, timeout=30)
        recorder.clients.append(self.http)
        self.csrf = ""

    def call(self, method: str, path: str, shows: set[str] | None = None, **kwargs) -> httpx.Response:
        headers = {"Origin": self.server.url, "X-CSRF-Token": self.csrf}
        response = self.recorder.answer(self.http.request(method, path, headers=headers, **kwargs), shows)
        cookie = self.http.cookies.get("gosight_session")
        if cookie:
            self.recorder.secret("session id", cookie)
        if response.status_code == 200 and "csrf_token" in response.text:
            self.csrf = response.json()["csrf_token"] or self.csrf
        return response


def test_secrets_never_leak(tmp_path: Path):
    recorder = Recorder()
    data_dir = tmp_path / "data"
    server = start_server(data_dir, tmp_path / "server.log", bootstrap=False,
                          env={"GOSIGHT_SERVER_AUTH_OIDC_CLIENT_SECRET": OIDC_SECRET})
    recorder.secret("OIDC client secret", OIDC_SECRET)
    try:
        run_everything(server, recorder, data_dir)
    finally:
        for client in recorder.clients:
            client.close()
        server.proc.stop()
    recorder.outputs.append(("server log", server.proc.log_text(), set()))
    database = b"".join(path.read_bytes() for path in data_dir.glob("meta.sqlite*"))

    assert len(recorder.secrets) >= 20, recorder.secrets
    leaks = []
    for label, text, shown in recorder.outputs:
        for value, kind in recorder.secrets.items():
            if value in text and value not in shown:
                leaks.append(f"{kind} in {label}")
    assert not leaks, "secrets found:\n" + "\n".join(sorted(set(leaks)))
    stored = [kind for value, kind in recorder.secrets.items() if value.encode() in database]
    assert not stored, f"stored in plain text in meta.sqlite: {stored}"
    assert len(recorder.outputs) > 40


def run_everything(server: Server, recorder: Recorder, data_dir: Path) -> None:
    link = server.proc.wait_for_log("first start: open the setup link to create the admin account")["url"]
    admin_password = recorder.secret("password", "leak-check-admin-pass-1")
    admin = Browser(server, recorder)
    admin.call("POST", "/api/v1/auth/setup", json={"token": link.split("token=")[1], "username": "boss",
                                                  "password": admin_password})
    admin.call("GET", "/api/v1/auth/me")

    # Users from the API and from the CLI, with passwords that must stay unseen.
    viewer_password = recorder.secret("password", "leak-check-viewer-pass-2")
    admin.call("POST", "/api/v1/users", json={"username": "vera", "password": viewer_password, "role": "viewer"})
    weak = recorder.secret("password", "short-pw")
    admin.call("POST", "/api/v1/users", json={"username": "weak", "password": weak, "role": "viewer"})
    cli_password = recorder.secret("password", "leak-check-cli-pass-3")
    recorder.cli("user", "add", "carl", "--role", "editor", "--password-stdin", data_dir=data_dir,
                 stdin=cli_password + "\n")
    reset_password = recorder.secret("password", "leak-check-reset-pass-4")
    recorder.cli("user", "set-password", "carl", "--password-stdin", data_dir=data_dir, stdin=reset_password + "\n")
    recorder.cli("user", "list", data_dir=data_dir)
    recorder.cli("check-config", "--role", "server", data_dir=data_dir)
    cli_token = recorder.cli("user", "token", "carl", "--token-name", "script", data_dir=data_dir,
                             shows_stdout=True)
    recorder.secret("API token", cli_token)

    # Wrong and right sign-ins.
    carl = Browser(server, recorder)
    wrong = recorder.secret("password", "leak-check-wrong-guess-5")
    carl.call("POST", "/api/v1/auth/login", json={"username": "carl", "password": wrong})
    carl.call("POST", "/api/v1/auth/login", json={"username": "carl", "password": reset_password})
    carl.call("GET", "/api/v1/auth/sessions")

    # MFA: enrolment shows the seed once and the recovery codes once.
    started = carl.call("POST", "/api/v1/auth/mfa/enrollment")
    seed = recorder.secret("TOTP secret", started.json()["secret"])
    started_shows = {seed, started.json()["otpauth_uri"], started.json()["qr_svg"]}
    recorder.outputs[-1] = (recorder.outputs[-1][0], recorder.outputs[-1][1], started_shows)
    totp = pyotp.TOTP(seed)
    step = totp.timecode(int(time.time()))
    confirmed = carl.call("POST", "/api/v1/auth/mfa/enrollment/confirm", json={"code": totp.generate_otp(step)})
    codes = confirmed.json()["recovery_codes"]
    for code in codes:
        recorder.secret("recovery code", code)
    recorder.outputs[-1] = (recorder.outputs[-1][0], recorder.outputs[-1][1], set(codes))
    carl.call("GET", "/api/v1/auth/me")

    second = Browser(server, recorder)
    second.call("POST", "/api/v1/auth/login", json={"username": "carl", "password": reset_password})
    second.call("POST", "/api/v1/auth/mfa/verify", json={"code": "000000"})
    second.call("POST", "/api/v1/auth/mfa/verify", json={"recovery_code": codes[0]})
    second.call("POST", "/api/v1/auth/mfa/verify", json={"recovery_code": codes[0]})
    third = Browser(server, recorder)
    third.call("POST", "/api/v1/auth/login", json={"username": "carl", "password": reset_password})
    third.call("POST", "/api/v1/auth/mfa/verify", json={"code": totp.generate_otp(step + 1)})
    third.call("POST", "/api/v1/auth/mfa/verify", json={"code": totp.generate_otp(step + 1)})

    # API tokens: shown once at creation, then used.
    created = third.call("POST", "/api/v1/auth/tokens", json={"name": "grafana", "permissions": ["metrics:read"]})
    api_token = recorder.secret("API token", created.json()["token"])
    recorder.outputs[-1] = (recorder.outputs[-1][0], recorder.outputs[-1][1], {api_token})
    third.call("GET", "/api/v1/auth/tokens")
    with httpx.Client(base_url=server.url, timeout=30) as grafana:
        recorder.answer(grafana.get("/prometheus/api/v1/query", params={"query": "1"},
                                    headers={"Authorization": f"Bearer {api_token}"}))
        recorder.answer(grafana.get("/prometheus/api/v1/query", params={"query": "1"}, auth=("vera", viewer_password)))
        recorder.answer(grafana.get("/prometheus/api/v1/query", params={"query": "1"}, auth=("vera", wrong)))
        recorder.answer(grafana.get("/api/v1/endpoints", headers={"Authorization": f"Bearer {cli_token}"}))
        recorder.answer(grafana.get("/api/v1/endpoints", headers={"Authorization": f"Bearer {api_token}x"}))

    # Sessions listed and ended, passwords changed, admin views.
    sessions = third.call("GET", "/api/v1/auth/sessions").json()["sessions"]
    other = next(session["id"] for session in sessions if not session["current"])
    third.call("DELETE", f"/api/v1/auth/sessions/{other}")
    new_password = recorder.secret("password", "leak-check-changed-pass-6")
    third.call("PUT", "/api/v1/auth/password", json={"current_password": reset_password, "new_password": new_password})
    third.call("PUT", "/api/v1/auth/password", json={"current_password": wrong, "new_password": new_password})
    admin.call("GET", "/api/v1/users")
    admin.call("GET", "/api/v1/security/events", params={"limit": 1000})
    admin.call("GET", "/api/v1/roles")
    users = admin.call("GET", "/api/v1/users").json()["users"]
    carl_id = next(user["id"] for user in users if user["username"] == "carl")
    admin.call("DELETE", f"/api/v1/users/{carl_id}/mfa")
    admin_reset = recorder.secret("password", "leak-check-admin-reset-7")
    admin.call("PUT", f"/api/v1/users/{carl_id}/password", json={"password": admin_reset})
    agent = admin.call("POST", "/api/v1/tokens", json={"name": "agent"})
    recorder.outputs[-1] = (recorder.outputs[-1][0], recorder.outputs[-1][1], {agent.json()["token"]})
    admin.call("GET", "/api/v1/tokens")
    admin.call("POST", "/api/v1/auth/logout")
    recorder.cli("user", "reset-mfa", "carl", data_dir=data_dir)
    recorder.cli("user", "list", data_dir=data_dir)
