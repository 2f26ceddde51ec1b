"""`gosight user` commands against the data directory of a running server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.auth.support import PASSWORD, SessionClient
from tests.support.processes import Server, start_server

REPO = Path(__file__).resolve().parents[2]


def login_status(server: Server, username: str, password: str = PASSWORD) -> int:
    with SessionClient(server) as browser:
        return browser.login(username, password).status_code


def user_cli(server: Server, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gosight", "user", *args, "--data-dir", str(server.data_dir)],
                          input=stdin, capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("user-cli")
    running = start_server(base / "data", base / "server.log")
    yield running
    running.proc.stop()


def test_user_commands_while_server_runs(server: Server):
    added = user_cli(server, "add", "dora", "--role", "editor", "--password-stdin", stdin=PASSWORD + "\n")
    with SessionClient(server).signed_in("dora") as dora:
        role_before = dora.get("/api/v1/auth/me").json()["user"]["role"]
        set_role = user_cli(server, "set-role", "dora", "viewer")
        role_after = dora.get("/api/v1/auth/me").json()["user"]["role"]
        disabled = user_cli(server, "disable", "dora")
        after_disable = dora.get("/api/v1/auth/me")
    refused = login_status(server, "dora")
    enabled = user_cli(server, "enable", "dora")
    new_password = user_cli(server, "set-password", "dora", "--password-stdin", stdin="violet-anchor-mango-41\n")
    old_refused = login_status(server, "dora")
    new_accepted = login_status(server, "dora", "violet-anchor-mango-41")
    token = user_cli(server, "token", "dora", "--token-name", "script", "--permission", "metrics:read")
    listing = user_cli(server, "list")
    deleted = user_cli(server, "delete", "dora")
    after_delete = login_status(server, "dora", "violet-anchor-mango-41")

    for result in (added, set_role, disabled, enabled, new_password, token, listing, deleted):
        assert result.returncode == 0, result.stderr
    assert role_before == "editor"
    assert role_after == "viewer", "a role change applies to open sessions at once"
    assert after_disable.status_code == 401
    assert refused == 403
    assert old_refused == 401
    assert new_accepted == 200
    assert token.stdout.strip().startswith("gsu_")
    assert "dora" in listing.stdout
    assert "viewer" in listing.stdout
    assert after_delete == 401


@pytest.mark.parametrize("args, stdin, message", [
    (("add", "eve", "--password-stdin"), "short\n", "password too short"),
    (("add", "eve", "--password-stdin"), "password123\n", "password too short"),
    (("add", "eve", "--password-stdin"), "correcthorsebatterystaple\n", "common and breached passwords"),
    (("add", "eve", "--role", "chief", "--password-stdin"), PASSWORD + "\n", "unknown role 'chief'"),
    (("add", "admin", "--password-stdin"), PASSWORD + "\n", "a user named 'admin' already exists"),
    (("set-role", "nobody", "viewer"), "", "no user named 'nobody'"),
    (("delete", "admin"), "", "last enabled admin"),
    (("token", "admin", "--expires", "never"), "", "need an expiry of at most 3 years"),
    (("token", "admin", "--expires", "10000d"), "", "invalid --expires '10000d'"),
])
def test_user_command_errors(server: Server, args, stdin, message):
    result = user_cli(server, *args, stdin=stdin)

    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_password_is_not_a_flag():
    result = subprocess.run([sys.executable, "-m", "gosight", "user", "add", "x", "--password", "secret-value"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)

    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
