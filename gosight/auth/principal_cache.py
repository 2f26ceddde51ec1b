"""A short-lived memory of resolved API tokens and session cookies.

Resolving a credential reads the user database, which the server does on a worker
thread so that a slow disk cannot stall the event loop. A dashboard or Grafana sends
the same credential many times a second, and the thread hop costs more than the
query it guards. So a resolved principal is kept for a few seconds, together with
the database's version at the time of the lookup. Any commit to the user database,
by this process or another one such as `gosight user` (a revoked token, a disabled
account, a changed role, a signed-out session), changes the version and makes every
entry stale at once. When the version cannot be read without waiting, nothing is
remembered or recalled.

Entries are keyed by a SHA-256 of the credential, so the memory contains no usable secret.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

TTL_S = 2.0
# A flood of distinct credentials cannot grow the memory past this; it is emptied instead.
MAX_ENTRIES = 10_000

Value = TypeVar("Value")


def credential_key(kind: str, credential: str) -> str:
    return hashlib.sha256(f"{kind}\0{credential}".encode()).hexdigest()


class PrincipalCache(Generic[Value]):
    def __init__(self, ttl_s: float = TTL_S):
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[Hashable, float, Value]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, version: Hashable | None) -> Value | None:
        """Return the value stored under `key` if the database is still at `version` and it is fresh."""
        if version is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_version, expires, value = entry
            if stored_version != version or time.monotonic() >= expires:
                del self._entries[key]
                return None
            return value

    def put(self, key: str, version: Hashable | None, value: Value) -> None:
        """Remember `value`; `version` must have been read before the lookup that produced it."""
        if version is None:
            return
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (version, time.monotonic() + self.ttl_s, value)

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
