"""Password hashing and policy, login throttling and sealed secrets, without a server."""

from __future__ import annotations

import stat
from pathlib import Path

import pyotp
import pytest

from gosight.auth import passwords, totp
from gosight.auth.secretbox import KEY_FILE, SecretBox, SecretBoxError
from gosight.auth.principal_cache import PrincipalCache
from gosight.auth.service import AuthFailure, AuthService
from gosight.auth.store import AuthStore, now_ms
from gosight.auth.throttle import LoginThrottle
from gosight.config import load_config


def test_password_hash_verifies_and_is_salted():
    first = passwords.hash_password("a-long-test-passphrase-42")
    second = passwords.hash_password("a-long-test-passphrase-42")

    assert first != second
    assert first.startswith("scrypt$131072$8$1$")
    assert passwords.verify_password("a-long-test-passphrase-42", first)
    assert not passwords.verify_password("a-long-test-passphrase-43", first)
    assert not passwords.verify_password("anything", None)
    assert not passwords.verify_password("anything", "md5$garbage")


@pytest.mark.parametrize("password, message", [
    ("short", "too short"),
    ("qwerty123456", "common and breached"),
    ("Password123", "too short"),
    ("correcthorsebatterystaple", "common and breached"),
    ("alice-is-my-name-2024", "contains the user name"),
    (" leading-space-pass", "white space"),
    ("x" * 2000, "too long"),
])
def test_password_policy_rejects(password, message):
    with pytest.raises(passwords.PasswordRejected, match=message):
        passwords.check_policy(password, 12, "alice")


def test_password_policy_accepts_a_long_unusual_password():
    passwords.check_policy("violet-anchor-mango-41", 12, "alice")


def test_throttle_locks_then_doubles_then_clears():
    now = [1000.0]
    throttle = LoginThrottle(max_failures_account=3, max_failures_address=100, lockout_s=10, clock=lambda: now[0])

    for _ in range(2):
        throttle.failure("Alice", "10.0.0.1")
    open_after_two = throttle.retry_after("alice", "10.0.0.1")
    throttle.failure("alice", "10.0.0.1")
    first_lock = throttle.retry_after("ALICE", "10.0.0.2")
    now[0] += 11
    throttle.failure("alice", "10.0.0.1")
    second_lock = throttle.retry_after("alice", "10.0.0.1")
    throttle.success("alice")
    cleared = throttle.retry_after("alice", "10.0.0.1")

    assert open_after_two is None
    assert first_lock == ("account", 10)
    assert second_lock == ("account", 20), "each further failure doubles the lockout"
    assert cleared is None


def test_throttle_locks_an_address_spraying_many_names():
    throttle = LoginThrottle(max_failures_account=100, max_failures_address=3, lockout_s=5, clock=lambda: 50.0)

    for name in ("a", "b", "c"):
        throttle.failure(name, "192.0.2.7")

    assert throttle.retry_after("d", "192.0.2.7") == ("address", 5)
    assert throttle.retry_after("d", "192.0.2.8") is None


def test_secret_box_binds_owner_and_key(tmp_path: Path):
    box = SecretBox.from_data_dir(tmp_path)
    sealed = box.seal("JBSWY3DPEHPK3PXP", "user-1")
    other_key = SecretBox(b"\1" * 32)

    assert box.open(sealed, "user-1") == "JBSWY3DPEHPK3PXP"
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    with pytest.raises(SecretBoxError):
        box.open(sealed, "user-2")
    with pytest.raises(SecretBoxError):
        other_key.open(sealed, "user-1")
    assert SecretBox.from_data_dir(tmp_path).open(sealed, "user-1") == "JBSWY3DPEHPK3PXP", "the key file is reused"


def test_totp_window_and_format():
    seed = totp.new_seed()
    reference = pyotp.TOTP(seed)
    now = 1_800_000_000

    assert totp.matching_step(seed, reference.at(now), now) == reference.timecode(now)
    assert totp.matching_step(seed, reference.at(now - 30), now) == reference.timecode(now) - 1
    assert totp.matching_step(seed, reference.at(now - 90), now) is None
    assert totp.matching_step(seed, "12345", now) is None
    assert totp.qr_svg_data_url(totp.provisioning_uri(seed, "alice")).startswith("data:image/svg+xml;base64,")


def test_store_keeps_no_plain_secrets(tmp_path: Path):
    store = AuthStore(tmp_path)
    user = store.create_user("alice", passwords.hash_password("violet-anchor-mango-41"), "viewer")
    cookie, _ = store.create_session(user.user_id, stage="active", method="password", client_ip="127.0.0.1",
                                     user_agent="test", max_age_s=60)
    token, _ = store.create_token(user.user_id, "t", frozenset({"metrics:read"}), 2**62)
    seed = totp.new_seed()
    codes = store.enable_mfa(user.user_id, seed, 1)
    store.close()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("meta.sqlite*"))

    for secret in (cookie, token, seed, *codes, "violet-anchor-mango-41"):
        assert secret.encode() not in raw, secret


@pytest.fixture
def service(tmp_path: Path):
    service = AuthService(AuthStore(tmp_path), load_config(["server"], env={}, flags={"data_dir": str(tmp_path)}))
    yield service
    service.store.close()


def test_token_cache_stale_after_any_commit(service: AuthService, tmp_path: Path):
    user = service.store.create_user("alice", None, "editor")
    token, record = service.store.create_token(user.user_id, "t", frozenset({"metrics:read"}), now_ms() + 60_000)
    other_token, _ = service.store.create_token(user.user_id, "u", frozenset({"metrics:read"}), now_ms() + 60_000)

    before = service.remembered_principal("token", token)
    # The first use writes last_used, a commit of its own, so the second is the one remembered.
    service.token_principal(token)
    resolved = service.token_principal(token)
    remembered = service.remembered_principal("token", token)
    service.token_principal(other_token)
    service.token_principal(other_token)
    # Another process (here another connection to the same file) revokes the token.
    other_process = AuthStore(tmp_path)
    other_process.revoke_token(record.token_id)
    other_process.close()
    after_revoke = service.remembered_principal("token", token)

    assert before is None
    assert remembered is resolved
    assert after_revoke is None
    assert service.remembered_principal("token", other_token) is None, "any commit makes every entry stale"
    with pytest.raises(AuthFailure, match=f"API token {record.token_id} is revoked"):
        service.token_principal(token)


def test_session_cache_stale_after_sign_out(service: AuthService):
    user = service.store.create_user("bob", None, "viewer")
    cookie, session = service.store.create_session(user.user_id, stage="active", method="password",
                                                   client_ip="127.0.0.1", user_agent="test", max_age_s=60)

    service.session_principal(cookie)
    remembered = service.remembered_principal("session", cookie)
    service.store.end_session_by_digest(session.digest)

    assert remembered is not None and remembered.user.username == "bob"
    assert service.remembered_principal("session", cookie) is None


def test_principal_cache_version_and_expiry():
    cache: PrincipalCache[str] = PrincipalCache(ttl_s=0.0)
    cache.put("a", None, "alice")
    cache.put("b", (1, 1), "bob")

    assert cache.get("a", None) is None
    assert cache.get("b", (1, 1)) is None, "an entry with no time left is never returned"
