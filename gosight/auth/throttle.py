"""Login throttling per account and per client address.

Each failed attempt (wrong password, wrong TOTP or recovery code) is counted for the
account name and for the client address within a sliding window. From the
`max_failures`-th failure on, that key is locked for `lockout_s`, doubled for each
further failure up to `max_lockout_s`. A success clears the account's count but not
the address's, so one valid account does not reset a password-spraying address.
Counts live in memory: a server restart clears them.

NOTE: locking an account lets an attacker who knows a user name keep that user out
while attacking it; the per-address limit is the answer to a single source, the
account limit to a distributed one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 900.0
# Keys kept at most; the oldest are dropped first, so a flood of names cannot exhaust memory.
MAX_KEYS = 100_000


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    """Thread-safe failure counts for account names (`account:NAME`) and client addresses (`address:IP`)."""

    def __init__(self, *, max_failures_account: int, max_failures_address: int, lockout_s: float,
                 max_lockout_s: float = 900.0, clock: Callable[[], float] = time.monotonic):
        self.max_failures = {"account": max_failures_account, "address": max_failures_address}
        self.lockout_s = lockout_s
        self.max_lockout_s = max(max_lockout_s, lockout_s)
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, account: str, address: str) -> tuple[str, float] | None:
        """Return which key is locked ("account" or "address") and the seconds left, or None."""
        now = self._clock()
        with self._lock:
            for kind, key in (("account", _account_key(account)), ("address", f"address:{address}")):
                failures = self._keys.get(key)
                if failures is not None and failures.locked_until > now:
                    return kind, failures.locked_until - now
        return None

    def failure(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for kind, key in (("account", _account_key(account)), ("address", f"address:{address}")):
                failures = self._keys.pop(key, None) or _Failures()
                failures.times = [moment for moment in failures.times if now - moment < WINDOW_S] + [now]
                excess = len(failures.times) - self.max_failures[kind]
                if excess >= 0:
                    failures.locked_until = now + min(self.lockout_s * 2 ** min(excess, 20), self.max_lockout_s)
                self._keys[key] = failures
            while len(self._keys) > MAX_KEYS:
                self._keys.popitem(last=False)

    def success(self, account: str) -> None:
        with self._lock:
            self._keys.pop(_account_key(account), None)


def _account_key(account: str) -> str:
    return f"account:{account.strip().lower()}"
