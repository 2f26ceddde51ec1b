"""Attacks on sign-in and sessions, one test each, against real servers on loopback."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from gosight.auth.store import AuthStore
from tests.auth.support import PASSWORD, SessionClient, create_user
from tests.support.processes import ADMIN_PASSWORD, ADMIN_USER, Server, start_server, wait_for


def _server(tmp_path: Path, name: str, *extra: str) -> Server:
    return start_server(tmp_path / f"{name}-data", tmp_path / f"{name}.log", *extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    running = _server(base, "main")
    yield running
    running.proc.stop()


def enroll_mfa(server: Server, username: str) -> tuple[str, list[str], int]:
    """Turn on TOTP for a user through the API; return the seed, the recovery codes and the step used."""
    with SessionClient(server).signed_in(username) as session:
        started = session.post("/api/v1/auth/mfa/enrollment")
        assert started.status_code == 200, started.text
        seed = started.json()["secret"]
        totp = pyotp.TOTP(seed)
        step = totp.timecode(int(time.time()))
        confirmed = session.post("/api/v1/auth/mfa/enrollment/confirm", json={"code": totp.generate_otp(step)})
        assert confirmed.status_code == 200, confirmed.text
        return seed, confirmed.json()["recovery_codes"], step


def test_session_fixation_planted_cookie_is_replaced(server: Server):
    create_user(server, "fixation1", "viewer")
    with SessionClient(server) as attacker:
        attacker.signed_in("fixation1")
        attacker_cookie = attacker.session_cookie
    planted = "attacker-chosen-session-id-0123456789abcdef"

    with SessionClient(server) as victim:
        victim.http.cookies.set("gosight_session", planted, domain="127.0.0.1")
        before = victim.get("/api/v1/auth/me")
        victim.signed_in("fixation1")
        after_login = victim.session_cookie
        with SessionClient(server) as replay:
            replay.http.cookies.set("gosight_session", planted)
            planted_after = replay.get("/api/v1/auth/me")

    assert before.status_code == 401
    assert after_login not in (planted, attacker_cookie)
    assert planted_after.status_code == 401


def test_session_id_rotates_at_each_sign_in_step(server: Server):
    create_user(server, "rotation1", "viewer")
    seed, _, step = enroll_mfa(server, "rotation1")

    with SessionClient(server) as browser:
        first = browser.login("rotation1")
        pending_cookie = browser.session_cookie
        verified = browser.post("/api/v1/auth/mfa/verify", json={"code": pyotp.TOTP(seed).generate_otp(step + 1)})
        active_cookie = browser.session_cookie
        with SessionClient(server) as thief:
            thief.http.cookies.set("gosight_session", pending_cookie)
            stolen = thief.get("/api/v1/auth/me")

    assert first.json()["status"] == "mfa_required"
    assert verified.status_code == 200, verified.text
    assert active_cookie != pending_cookie
    assert stolen.status_code == 401, "the pending session must end when the second factor is given"


def test_csrf_token_and_origin_are_required(server: Server):
    with SessionClient(server).signed_in(ADMIN_USER, ADMIN_PASSWORD) as admin:
        body = {"username": "csrf-victim", "password": PASSWORD, "role": "viewer"}
        missing = admin.http.post("/api/v1/users", json=body, headers={"Origin": server.url})
        wrong = admin.http.post("/api/v1/users", json=body, headers={"Origin": server.url, "X-CSRF-Token": "guess"})
        foreign = admin.http.post("/api/v1/users", json=body,
                                  headers={"Origin": "http://evil.test", "X-CSRF-Token": admin.csrf})
        no_origin = admin.http.post("/api/v1/users", json=body, headers={"X-CSRF-Token": admin.csrf})
        listing = admin.get("/api/v1/users")
        accepted = admin.post("/api/v1/users", json=body)

    for response in (missing, wrong, foreign, no_origin):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "csrf_failed"
    assert "csrf-victim" not in listing.text, "a refused request must change nothing"
    assert accepted.status_code == 201, accepted.text


def test_session_expires_when_idle(tmp_path: Path):
    running = _server(tmp_path, "idle", "--server.auth.session_idle_timeout_s", "2",
                      "--server.auth.session_max_age_s", "60")
    try:
        with SessionClient(running).signed_in(ADMIN_USER, ADMIN_PASSWORD) as browser:
            fresh = browser.get("/api/v1/auth/me")
            time.sleep(2.5)
            idle = browser.get("/api/v1/auth/me")
            again = browser.get("/api/v1/auth/me")
    finally:
        running.proc.stop()

    assert fresh.status_code == 200
    assert idle.status_code == 401
    assert idle.json()["error"]["code"] == "session_expired"
    assert "idle" in idle.json()["error"]["message"]
    assert again.json()["error"]["code"] == "session_invalid", "an expired session is deleted"


def test_session_expires_at_maximum_age_even_when_used(tmp_path: Path):
    running = _server(tmp_path, "absolute", "--server.auth.session_idle_timeout_s", "3",
                      "--server.auth.session_max_age_s", "4")
    try:
        with SessionClient(running).signed_in(ADMIN_USER, ADMIN_PASSWORD) as browser:
            started = time.monotonic()
            answers = []
            while time.monotonic() - started < 5.5:
                answers.append((round(time.monotonic() - started, 1), browser.get("/api/v1/auth/me").status_code))
                time.sleep(0.5)
    finally:
        running.proc.stop()

    early = [status for elapsed, status in answers if elapsed < 3.5]
    late = [status for elapsed, status in answers if elapsed > 4.5]
    assert set(early) == {200}, answers
    assert set(late) == {401}, answers


def test_totp_code_is_accepted_once(server: Server):
    create_user(server, "replay1", "viewer")
    seed, _, step = enroll_mfa(server, "replay1")
    code = pyotp.TOTP(seed).generate_otp(step + 1)

    with SessionClient(server) as first:
        first.login("replay1")
        accepted = first.post("/api/v1/auth/mfa/verify", json={"code": code})
    with SessionClient(server) as second:
        second.login("replay1")
        replayed = second.post("/api/v1/auth/mfa/verify", json={"code": code})
        older = second.post("/api/v1/auth/mfa/verify", json={"code": pyotp.TOTP(seed).generate_otp(step)})
        still_pending = second.get("/api/v1/auth/me")

    assert accepted.status_code == 200, accepted.text
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "code_reused"
    assert older.status_code == 401, "a code of an earlier step than one used is a replay too"
    assert still_pending.json()["stage"] == "mfa"


def test_recovery_code_works_once(server: Server):
    create_user(server, "recovery1", "viewer")
    _, codes, _ = enroll_mfa(server, "recovery1")

    with SessionClient(server) as first:
        first.login("recovery1")
        used = first.post("/api/v1/auth/mfa/verify", json={"recovery_code": codes[0].upper().replace("-", " ")})
        me = first.get("/api/v1/auth/me")
    with SessionClient(server) as second:
        second.login("recovery1")
        reused = second.post("/api/v1/auth/mfa/verify", json={"recovery_code": codes[0]})
        other = second.post("/api/v1/auth/mfa/verify", json={"recovery_code": codes[1]})

    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert used.status_code == 200, used.text
    assert me.json()["mfa"]["recovery_codes_left"] == 9
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "invalid_recovery_code"
    assert other.status_code == 200, other.text


def test_brute_force_locks_the_account(tmp_path: Path):
    running = _server(tmp_path, "account-throttle", "--server.auth.login_max_failures", "3",
                      "--server.auth.login_max_failures_per_address", "100", "--server.auth.login_lockout_s", "2")
    try:
        create_user(running, "target1", "viewer")
        with SessionClient(running) as attacker:
            failures = [attacker.login("target1", f"wrong-guess-{index}").status_code for index in range(3)]
            locked = attacker.login("target1", PASSWORD)
            other_account = attacker.login(ADMIN_USER, ADMIN_PASSWORD)
            unlocked = wait_for(lambda: attacker.login("target1", PASSWORD).status_code == 200, timeout_s=10,
                                interval_s=0.5, message="the lockout to end")
    finally:
        running.proc.stop()

    assert failures == [401, 401, 401]
    assert locked.status_code == 429, "even the right password waits until the lockout ends"
    message = locked.json()["error"]["message"]
    assert message.startswith("too many failed sign-in attempts for this account; retry in ")
    assert int(message.rsplit(" ", 2)[1]) >= 1
    assert int(locked.headers["retry-after"]) >= 1
    assert other_account.status_code == 200, "other accounts from the same address are not locked"
    assert unlocked


def test_brute_force_locks_the_address(tmp_path: Path):
    running = _server(tmp_path, "address-throttle", "--server.auth.login_max_failures", "100",
                      "--server.auth.login_max_failures_per_address", "4", "--server.auth.login_lockout_s", "30")
    try:
        with SessionClient(running) as sprayer:
            failures = [sprayer.login(f"user{index}", "Winter2025!").status_code for index in range(4)]
            locked = sprayer.login(ADMIN_USER, ADMIN_PASSWORD)
        with running.client() as client:
            events = client.get("/api/v1/security/events", params={"type": "login_throttled"}).json()
    finally:
        running.proc.stop()

    assert failures == [401, 401, 401, 401]
    assert locked.status_code == 429
    assert "too many failed sign-in attempts for this address; retry in" in locked.json()["error"]["message"]
    assert events["total"] == 1


def test_password_reset_needs_an_admin(server: Server):
    create_user(server, "viewer-reset", "viewer")
    create_user(server, "editor-reset", "editor")
    with server.client() as client:
        admin_id = next(user["id"] for user in client.get("/api/v1/users").json()["users"]
                        if user["username"] == ADMIN_USER)

    answers = {}
    for username in ("viewer-reset", "editor-reset"):
        with SessionClient(server).signed_in(username) as session:
            answers[username] = session.request("PUT", f"/api/v1/users/{admin_id}/password",
                                                json={"password": "taken-over-by-attacker-1"})
            answers[f"{username} own without current"] = session.request(
                "PUT", "/api/v1/auth/password", json={"current_password": "guess", "new_password": "another-pass-99"})
    with SessionClient(server) as check:
        admin_still = check.login(ADMIN_USER, ADMIN_PASSWORD)
        attacker = check.login(ADMIN_USER, "taken-over-by-attacker-1")

    assert answers["viewer-reset"].status_code == 403
    assert answers["editor-reset"].status_code == 403
    assert "users:manage" in answers["editor-reset"].json()["error"]["message"]
    for username in ("viewer-reset", "editor-reset"):
        assert answers[f"{username} own without current"].status_code == 403
    assert admin_still.status_code == 200
    assert attacker.status_code == 401


def test_old_security_events_are_deleted(tmp_path: Path):
    data_dir = tmp_path / "events" / "data"
    data_dir.mkdir(parents=True)
    store = AuthStore(data_dir)
    for age_days in (400, 40, 1):
        store.record_event("login_failed", actor="test", username=f"aged-{age_days}")
    store.close()
    with sqlite3.connect(data_dir / "meta.sqlite") as con:
        for age_days in (400, 40, 1):
            con.execute("UPDATE security_events SET time_ms = ? WHERE username = ?",
                        (int(time.time() * 1000) - age_days * 86_400_000, f"aged-{age_days}"))

    running = start_server(data_dir, tmp_path / "events" / "server.log",
                           "--server.auth.security_event_retention_days", "30")
    try:
        deleted = running.proc.wait_for_log("deleted old security events")
        with running.client() as client:
            events = client.get("/api/v1/security/events", params={"type": "login_failed"}).json()
    finally:
        running.proc.stop()

    assert deleted["deleted"] == 2
    assert deleted["retention_days"] == 30
    assert [event["user"] for event in events["events"]] == ["aged-1"]


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/setup"])
def test_unauthenticated_bodies_are_bounded(server: Server, path: str):
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        huge = anonymous.post(path, content=b"{" + b" " * (2 << 20) + b"}",
                              headers={"Content-Type": "application/json", "Origin": server.url})
        streamed = anonymous.post(path, content=iter([b" " * (1 << 16)] * 40),
                                  headers={"Content-Type": "application/json", "Origin": server.url})
        nested = anonymous.post(path, content=b"[" * 100_000 + b"]" * 100_000,
                                headers={"Content-Type": "application/json", "Origin": server.url})
        health = anonymous.get("/healthz")

    assert huge.status_code == 413
    assert "request body larger than 1,048,576 bytes" in huge.json()["error"]["message"]
    assert streamed.status_code == 413, "a body without Content-Length is cut off too"
    assert nested.status_code == 400
    assert nested.json()["error"]["message"] == "invalid JSON body: nested too deeply"
    assert health.status_code == 200


def test_prometheus_form_body_is_bounded(server: Server):
    with server.client() as client:
        response = client.post("/prometheus/api/v1/query",
                               content=b"query=" + b"1" * (2 << 20),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert response.status_code == 413
    assert response.json()["status"] == "error"
    assert "request body larger than 1,048,576 bytes" in response.json()["error"]
