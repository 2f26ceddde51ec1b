"""The agent's disk spool: a bounded first-in first-out queue of export batches.

Every batch is written here (compressed, renamed into place) before it is sent, and
removed only after the server acknowledged it, so batches survive both server
outages and agent restarts. A new batch is not fsynced: while the server answers,
it is acknowledged within moments, and a crash of the agent alone loses nothing
that reached the page cache. When an export fails, the exporter calls `sync`, which
fsyncs every batch still waiting, so an outage that ends in a power loss loses at
most the batches written since the last failed attempt. When a new batch would exceed `max_bytes`, the
oldest batches are dropped and counted.

A batch's file name `<order>-<epoch>.batch` carries its id: the server sees
`<agent id>.<epoch>:<order>`. Each run of the agent draws a new random epoch and
continues the order after the files left by earlier runs, so an id never repeats,
even after a crash, and a batch keeps its id when it is replayed after a restart.
This lets the server recognise a retried batch without the agent saving a counter.

Thread-safe: the collection loop appends while the exporter reads and removes.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gosight.logconfig import Throttle

log = logging.getLogger(__name__)

_RECENT_PAYLOADS = 16
_FILE_RE = re.compile(r"^(\d{16})-([0-9a-f]{8})\.batch$")


@dataclass(frozen=True)
class SpoolEntry:
    order: int
    epoch: str
    path: Path
    size: int


class Spool:
    def __init__(self, directory: Path, max_bytes: int, stream_prefix: str):
        self.directory = directory
        self.max_bytes = max_bytes
        self.stream_prefix = stream_prefix
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.epoch = secrets.token_hex(4)
        self.on_append: Callable[[], None] | None = None
        self.dropped_batches = 0
        self._lock = threading.Lock()
        # Payloads appended by this run, kept until sent so the exporter need not read
        # and decompress its own file; bounded so an outage does not grow memory.
        self._recent: dict[Path, bytes] = {}
        self._unsynced: set[Path] = set()
        self._entries: list[SpoolEntry] = self._scan()
        self._bytes = sum(entry.size for entry in self._entries)
        self._next_order = self._entries[-1].order + 1 if self._entries else 0
        self._throttle = Throttle(60.0)
        if self._entries:
            log.info("spool holds unsent batches from an earlier run", extra={"fields": {
                "batches": len(self._entries), "bytes": self._bytes}})

    def batch_id(self, entry: SpoolEntry) -> str:
        return f"{self.stream_prefix}.{entry.epoch}:{entry.order}"

    def append(self, payload: bytes) -> SpoolEntry:
        """Write one batch durably; drop the oldest batches if the spool would overflow."""
        data = zlib.compress(payload, 1)
        with self._lock:
            order = self._next_order
            self._next_order += 1
            path = self.directory / f"{order:016d}-{self.epoch}.batch"
            _write_file(path, data, sync=False)
            self._unsynced.add(path)
            if len(self._recent) < _RECENT_PAYLOADS:
                self._recent[path] = payload
            entry = SpoolEntry(order, self.epoch, path, len(data))
            self._entries.append(entry)
            self._bytes += entry.size
            self._drop_overflow()
        if self.on_append is not None:
            self.on_append()
        return entry

    def oldest(self) -> SpoolEntry | None:
        with self._lock:
            return self._entries[0] if self._entries else None

    def read(self, entry: SpoolEntry) -> bytes | None:
        """Return the batch's payload, or None if it was dropped or its file is damaged."""
        with self._lock:
            payload = self._recent.get(entry.path)
        if payload is not None:
            return payload
        try:
            return zlib.decompress(entry.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, zlib.error) as error:
            log.error("spooled batch unreadable; dropping it", extra={"fields": {
                "path": str(entry.path), "error": str(error)}})
            self.remove(entry)
            with self._lock:
                self.dropped_batches += 1
            return None

    def remove(self, entry: SpoolEntry) -> None:
        with self._lock:
            self._recent.pop(entry.path, None)
            self._unsynced.discard(entry.path)
            if entry in self._entries:
                self._entries.remove(entry)
                self._bytes -= entry.size
        try:
            entry.path.unlink()
        except FileNotFoundError:
            pass

    def sync(self) -> None:
        """Fsync every batch written since the last call; the exporter calls it when a send fails."""
        with self._lock:
            paths, self._unsynced = self._unsynced, set()
        for path in paths:
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    @property
    def batches(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _drop_overflow(self) -> None:
        dropped = 0
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            oldest = self._entries.pop(0)
            self._bytes -= oldest.size
            self._recent.pop(oldest.path, None)
            self._unsynced.discard(oldest.path)
            try:
                oldest.path.unlink()
            except FileNotFoundError:
                pass
            dropped += 1
        if dropped:
            self.dropped_batches += dropped
            suppressed = self._throttle.allow("overflow")
            if suppressed is not None:
                log.warning("spool full; oldest batches dropped", extra={"fields": {
                    "dropped": dropped, "dropped_total": self.dropped_batches, "max_bytes": self.max_bytes}})

    def _scan(self) -> list[SpoolEntry]:
        entries = []
        for path in self.directory.iterdir():
            found = _FILE_RE.match(path.name)
            if found:
                entries.append(SpoolEntry(int(found.group(1)), found.group(2), path, path.stat().st_size))
            elif path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
        entries.sort(key=lambda entry: entry.order)
        return entries


def _write_file(path: Path, data: bytes, sync: bool) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, data)
        if sync:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
