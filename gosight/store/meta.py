"""Metadata in SQLite: endpoints, agent tokens, users and their sessions; rules as they arrive.

SQLite in WAL mode lets admin commands change metadata while the server runs,
which DuckDB's single-process lock would not. Schema changes are numbered
migrations applied in order on open.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from gosight.model import Endpoint

_MIGRATIONS = [
    """
    CREATE TABLE endpoints (
        endpoint_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        hostname TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        labels TEXT NOT NULL,
        facts TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        last_data_ms INTEGER NOT NULL
    );
    """,
    # Agent tokens: only the SHA-256 of each token is kept (see gosight/security/tokens.py).
    """
    CREATE TABLE agent_tokens (
        token_id TEXT PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        revoked_ms INTEGER,
        last_used_ms INTEGER,
        bind_agent INTEGER NOT NULL,
        agent_id TEXT
    );
    """,
    # Containers: the host endpoint they run on, and when their agent reported them removed.
    """
    ALTER TABLE endpoints ADD COLUMN parent TEXT NOT NULL DEFAULT '';
    ALTER TABLE endpoints ADD COLUMN gone_ms INTEGER NOT NULL DEFAULT 0;
    """,
    # Web users, custom roles, sessions, API tokens, MFA and security events (gosight/auth/store.py).
    # Session ids, tokens and recovery codes are kept as SHA-256 digests, TOTP seeds sealed with auth.key.
    """
    CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        email TEXT COLLATE NOCASE,
        role TEXT NOT NULL,
        password_hash TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        password_changed_ms INTEGER,
        last_login_ms INTEGER,
        mfa_secret TEXT,
        mfa_pending_secret TEXT,
        mfa_last_step INTEGER NOT NULL DEFAULT 0,
        mfa_enabled_ms INTEGER
    );
    CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;
    CREATE TABLE roles (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        permissions TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE user_sessions (
        session_sha256 TEXT PRIMARY KEY,
        session_id TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        stage TEXT NOT NULL,
        method TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        client_ip TEXT NOT NULL,
        user_agent TEXT NOT NULL
    );
    CREATE INDEX user_sessions_user ON user_sessions (user_id);
    CREATE TABLE user_tokens (
        token_id TEXT PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        permissions TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        revoked_ms INTEGER,
        last_used_ms INTEGER
    );
    CREATE INDEX user_tokens_user ON user_tokens (user_id);
    CREATE TABLE recovery_codes (
        user_id TEXT NOT NULL,
        code_sha256 TEXT NOT NULL,
        used_ms INTEGER,
        PRIMARY KEY (user_id, code_sha256)
    );
    CREATE TABLE oidc_links (
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (issuer, subject)
    );
    CREATE TABLE auth_settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE security_events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        type TEXT NOT NULL,
        user_id TEXT,
        username TEXT,
        actor TEXT,
        client_ip TEXT,
        detail TEXT NOT NULL
    );
    CREATE INDEX security_events_time ON security_events (time_ms);
    """,
    # For a host split off because another agent already used its endpoint id: the id its agent reported.
    """
    ALTER TABLE endpoints ADD COLUMN claimed_id TEXT NOT NULL DEFAULT '';
    """,
]


class MetaStore:
    """Thread-safe access to the metadata database; one connection behind a lock."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        # Grows with every committed write through this object, so readers can tell
        # whether what they remember is still current.
        self.generation = 0
        self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            version = self._con.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._con.execute("BEGIN")
                self._run_script(script)
                self._con.execute(f"PRAGMA user_version={number}")
                self._con.execute("COMMIT")

    def _run_script(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self._con.execute(statement)

    def load_endpoints(self) -> list[Endpoint]:
        with self._lock:
            rows = self._con.execute(
                "SELECT endpoint_id, kind, hostname, agent_id, labels, facts, first_seen_ms, last_seen_ms, "
                "last_data_ms, parent, gone_ms, claimed_id FROM endpoints"
            ).fetchall()
        return [
            Endpoint(endpoint_id=row[0], kind=row[1], hostname=row[2], agent_id=row[3], labels=json.loads(row[4]),
                     facts=json.loads(row[5]), first_seen_ms=row[6], last_seen_ms=row[7], last_data_ms=row[8],
                     parent=row[9], gone_ms=row[10], claimed_id=row[11])
            for row in rows
        ]

    def save_endpoints(self, endpoints: list[Endpoint]) -> None:
        if not endpoints:
            return
        rows = [
            (e.endpoint_id, e.kind, e.hostname, e.agent_id, json.dumps(e.labels, sort_keys=True),
             json.dumps(e.facts, sort_keys=True), e.first_seen_ms, e.last_seen_ms, e.last_data_ms, e.parent,
             e.gone_ms, e.claimed_id)
            for e in endpoints
        ]
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.executemany(
                    "INSERT OR REPLACE INTO endpoints (endpoint_id, kind, hostname, agent_id, labels, facts, "
                    "first_seen_ms, last_seen_ms, last_data_ms, parent, gone_ms, claimed_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the connection lock and run the caller's statements in one transaction.

        The transaction commits when the block ends and rolls back when it raises.
        BEGIN IMMEDIATE takes the write lock at once, so a read followed by a write
        inside the block cannot be overtaken by another process.
        """
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
            self.generation += 1

    def version(self) -> tuple[int, int] | None:
        """Return a value that changes whenever anyone commits to the database; None if that would wait.

        SQLite's data_version counts commits by other connections, including other
        processes, and `generation` counts this object's own. The check never waits for
        the lock, so an event loop may call it. A busy database returns None.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            others = self._con.execute("PRAGMA data_version").fetchone()[0]
        finally:
            self._lock.release()
        return others, self.generation

    def query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """Run one read-only statement and return every row."""
        with self._lock:
            return self._con.execute(sql, parameters).fetchall()

    def close(self) -> None:
        with self._lock:
            self._con.close()
