"""Metadata in SQLite: endpoints now; users, tokens and rules as they arrive.

SQLite in WAL mode lets admin commands change metadata while the server runs,
which DuckDB's single-process lock would not. Schema changes are numbered
migrations applied in order on open.
"""

from __future__ import annotations

import json
import sqlite3
import threading
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
]


class MetaStore:
    """Thread-safe access to the metadata database; one connection behind a lock."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
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
                "last_data_ms FROM endpoints"
            ).fetchall()
        return [
            Endpoint(endpoint_id=row[0], kind=row[1], hostname=row[2], agent_id=row[3], labels=json.loads(row[4]),
                     facts=json.loads(row[5]), first_seen_ms=row[6], last_seen_ms=row[7], last_data_ms=row[8])
            for row in rows
        ]

    def save_endpoints(self, endpoints: list[Endpoint]) -> None:
        if not endpoints:
            return
        rows = [
            (e.endpoint_id, e.kind, e.hostname, e.agent_id, json.dumps(e.labels, sort_keys=True),
             json.dumps(e.facts, sort_keys=True), e.first_seen_ms, e.last_seen_ms, e.last_data_ms)
            for e in endpoints
        ]
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.executemany("INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._con.close()
