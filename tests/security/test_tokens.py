"""Agent tokens: creation, hashing at rest, status, binding, durations and the token CLI."""

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gosight.security.tokens import (
    ACTIVE,
    EXPIRED,
    REVOKED,
    TokenNotFound,
    TokenStore,
    hash_token,
    parse_duration_s,
)
from tests.security.support import cli_ok, run_cli


@pytest.fixture
def store(tmp_path: Path):
    opened = TokenStore(tmp_path / "meta.sqlite")
    yield opened
    opened.close()


def test_token_format_and_lookup(store: TokenStore):
    token, record = store.create("web1")

    found = store.lookup(token)

    assert token.startswith("gst_")
    assert len(token) == 4 + 43, "32 random bytes in unpadded base64url"
    assert found == record
    assert store.lookup(token + "x") is None
    assert store.lookup("gst_" + "A" * 43) is None


def test_only_the_hash_is_stored(store: TokenStore, tmp_path: Path):
    token, _ = store.create("web1")

    raw = b"".join(path.read_bytes() for path in tmp_path.glob("meta.sqlite*"))
    with sqlite3.connect(tmp_path / "meta.sqlite") as con:
        stored = con.execute("SELECT token_sha256 FROM agent_tokens").fetchone()[0]

    assert token.encode() not in raw
    assert stored == hash_token(token)


def test_status_revoked_and_expired(store: TokenStore):
    _, revoked = store.create("a")
    _, expiring = store.create("b", expires_in_s=0.001)
    _, lasting = store.create("c", expires_in_s=3600)
    time.sleep(0.01)

    store.revoke(revoked.token_id)
    first_revocation = store.get(revoked.token_id).revoked_ms
    store.revoke(revoked.token_id)
    now = int(time.time() * 1000)

    assert store.get(revoked.token_id).status(now) == REVOKED
    assert store.get(revoked.token_id).revoked_ms == first_revocation, "revoking again keeps the first time"
    assert store.get(expiring.token_id).status(now) == EXPIRED
    assert store.get(lasting.token_id).status(now) == ACTIVE
    with pytest.raises(TokenNotFound):
        store.revoke("nope")


def test_bind_first_agent_wins(store: TokenStore, tmp_path: Path):
    _, record = store.create("web1", bind_agent=True)
    other = TokenStore(tmp_path / "meta.sqlite")
    results: list[str | None] = []

    def bind(source: TokenStore, agent_id: str) -> None:
        results.append(source.bind(record.token_id, agent_id))

    threads = [threading.Thread(target=bind, args=(source, agent_id))
               for source, agent_id in ((store, "agent-a"), (other, "agent-b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()

    assert len(set(results)) == 1, f"both callers must see the same winner: {results}"
    assert store.get(record.token_id).agent_id == results[0]


@pytest.mark.parametrize("text, seconds", [
    ("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 14 * 86400), ("1.5h", 5400),
    ("never", None), ("", None),
])
def test_parse_duration(text: str, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["5", "5x", "-1d", "0d", "d", "30 days"])
def test_parse_duration_rejects(text: str):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_s(text)


def test_cli_token_flow(tmp_path: Path):
    data_dir = str(tmp_path)

    created = cli_ok("token", "create", "--data-dir", data_dir, "--name", "web1", "--expires", "30d",
                     "--bind-agent")
    token = created.stdout.strip()
    token_id = created.stderr.split("created token ", 1)[1].split()[0]
    listing = cli_ok("token", "list", "--data-dir", data_dir)
    revoked = cli_ok("token", "revoke", token_id, "--data-dir", data_dir)
    listing_after = cli_ok("token", "list", "--data-dir", data_dir)
    unknown = run_cli("token", "revoke", "nope", "--data-dir", data_dir)
    invalid = run_cli("token", "create", "--data-dir", data_dir, "--expires", "soon")

    assert created.stdout == token + "\n", "stdout holds the token alone, for scripts"
    assert "shown once" in created.stderr
    assert token not in created.stderr
    assert token_id in listing.stdout
    assert "web1" in listing.stdout
    assert "active" in listing.stdout
    assert "(first to use it)" in listing.stdout
    assert f"revoked token {token_id}" in revoked.stdout
    assert "revoked" in listing_after.stdout
    for result in (listing, revoked, listing_after, unknown, invalid):
        assert token not in result.stdout + result.stderr
    assert unknown.returncode == 1
    assert "no token with id 'nope'" in unknown.stderr
    assert invalid.returncode == 1
    assert "invalid duration 'soon'" in invalid.stderr
