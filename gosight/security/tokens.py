"""Agent tokens: created by an operator, presented by agents on every call, stored hashed.

A token is `gst_` followed by 32 random bytes in base64url. The metadata store keeps
only its SHA-256 digest. A slow password hash (bcrypt, scrypt, Argon2) protects
low-entropy secrets against guessing. No one can search 2^256 values, so a fast hash
loses nothing here and lets the server find a token with one index lookup on every
call. The token itself is shown once, at creation, and never logged.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from gosight.store.meta import MetaStore

TOKEN_PREFIX = "gst_"
TOKEN_BYTES = 32
NAME_MAX = 100

ACTIVE = "active"
EXPIRED = "expired"
REVOKED = "revoked"

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_COLUMNS = "token_id, name, created_ms, expires_ms, revoked_ms, last_used_ms, bind_agent, agent_id"


class TokenNotFound(KeyError):
    """No token has the given id."""


@dataclass(frozen=True)
class TokenRecord:
    """A token's stored record: everything about it except the token itself."""

    token_id: str
    name: str
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None
    last_used_ms: int | None
    bind_agent: bool
    agent_id: str | None

    def status(self, now_ms: int) -> str:
        if self.revoked_ms is not None:
            return REVOKED
        if self.expires_ms is not None and now_ms >= self.expires_ms:
            return EXPIRED
        return ACTIVE


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_duration_s(text: str) -> float | None:
    """Parse `30d`, `12h`, `90m`, `3600s` or `2w` into seconds; `never` (or empty) returns None."""
    cleaned = text.strip().lower()
    if cleaned in ("", "never", "none", "0"):
        return None
    found = _DURATION_RE.match(cleaned)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"invalid duration {text!r}: expected a positive number with a unit s, m, h, d or w "
                         "(for example 30d), or never")
    return float(found.group(1)) * _DURATION_UNITS_S[found.group(2)]


def now_ms() -> int:
    return int(time.time() * 1000)


class TokenStore:
    """Agent tokens in the metadata database.

    Thread-safe. It opens its own connection, so token checks on the server's event loop
    do not queue behind endpoint writes. `gosight token` commands change tokens while
    the server runs, and every lookup reads the database, so a revocation applies from
    the next call.
    """

    def __init__(self, meta_path: str | Path):
        self._meta = MetaStore(meta_path)

    def create(self, name: str = "", expires_in_s: float | None = None,
               bind_agent: bool = False) -> tuple[str, TokenRecord]:
        """Create a token; return it (the only time it is available) and its record."""
        name = name.strip()
        if len(name) > NAME_MAX:
            raise ValueError(f"token name is {len(name)} characters long; at most {NAME_MAX} are allowed")
        token = generate_token()
        created = now_ms()
        record = TokenRecord(
            token_id=secrets.token_hex(6), name=name, created_ms=created,
            expires_ms=None if expires_in_s is None else created + int(expires_in_s * 1000),
            revoked_ms=None, last_used_ms=None, bind_agent=bind_agent, agent_id=None)
        with self._meta.transaction() as con:
            con.execute(f"INSERT INTO agent_tokens (token_sha256, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (hash_token(token), record.token_id, record.name, record.created_ms, record.expires_ms,
                         None, None, int(bind_agent), None))
        return token, record

    def list(self) -> list[TokenRecord]:
        rows = self._meta.query(f"SELECT {_COLUMNS} FROM agent_tokens ORDER BY created_ms, token_id")
        return [_record(row) for row in rows]

    def get(self, token_id: str) -> TokenRecord:
        rows = self._meta.query(f"SELECT {_COLUMNS} FROM agent_tokens WHERE token_id = ?", (token_id,))
        if not rows:
            raise TokenNotFound(token_id)
        return _record(rows[0])

    def lookup(self, token: str) -> TokenRecord | None:
        """Return the record of `token`, whatever its status, or None when no such token exists."""
        rows = self._meta.query(f"SELECT {_COLUMNS} FROM agent_tokens WHERE token_sha256 = ?", (hash_token(token),))
        return _record(rows[0]) if rows else None

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token; revoking it again keeps the first revocation time."""
        with self._meta.transaction() as con:
            updated = con.execute("UPDATE agent_tokens SET revoked_ms = COALESCE(revoked_ms, ?) WHERE token_id = ?",
                                  (now_ms(), token_id)).rowcount
        if not updated:
            raise TokenNotFound(token_id)
        return self.get(token_id)

    def bind(self, token_id: str, agent_id: str) -> str | None:
        """Bind an unbound token to `agent_id`; return the agent id it is bound to afterwards.

        When two agents race for the same unbound token, the first committed update
        wins and both callers see the winner's id.
        """
        with self._meta.transaction() as con:
            con.execute("UPDATE agent_tokens SET agent_id = ? WHERE token_id = ? AND agent_id IS NULL",
                        (agent_id, token_id))
            row = con.execute("SELECT agent_id FROM agent_tokens WHERE token_id = ?", (token_id,)).fetchone()
        return row[0] if row else None

    def touch(self, token_id: str, used_ms: int) -> None:
        with self._meta.transaction() as con:
            con.execute("UPDATE agent_tokens SET last_used_ms = ? WHERE token_id = ?", (used_ms, token_id))

    def close(self) -> None:
        self._meta.close()


def _record(row: tuple) -> TokenRecord:
    return TokenRecord(token_id=row[0], name=row[1], created_ms=row[2], expires_ms=row[3], revoked_ms=row[4],
                       last_used_ms=row[5], bind_agent=bool(row[6]), agent_id=row[7])
