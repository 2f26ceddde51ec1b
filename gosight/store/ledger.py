"""The batch ledger: which numbered batches of each sender are already stored.

A sender that retries a batch after a lost acknowledgement sends the same
`(stream, sequence)` again. The ledger remembers, per stream, the highest sequence
stored and the sequences stored within a window below it, so a retry is recognised
even when a sender has several batches in flight. Only the writer thread changes it;
its state is saved in the same transaction as the samples it describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

WINDOW = 1024

# `<stream>:<sequence>`; the stream is the agent id and a spool epoch.
BATCH_ID_RE = re.compile(r"^([A-Za-z0-9._-]{1,128}):([0-9]{1,18})$")


def parse_batch_id(text: str) -> tuple[str, int]:
    """Split a batch id into stream and sequence; raise ValueError naming the expected form."""
    found = BATCH_ID_RE.match(text)
    if not found:
        raise ValueError(
            f"invalid batch id {text[:80]!r}: expected STREAM:SEQUENCE, where STREAM has up to 128 letters, "
            "digits, '.', '_' or '-' and SEQUENCE is a decimal number"
        )
    return found.group(1), int(found.group(2))


@dataclass
class StreamState:
    max_seq: int = -1
    recent: set[int] = field(default_factory=set)

    def contains(self, seq: int) -> bool:
        return seq in self.recent or seq <= self.max_seq - WINDOW

    def add(self, seq: int) -> None:
        self.recent.add(seq)
        if seq > self.max_seq:
            self.max_seq = seq
            floor = seq - WINDOW
            if len(self.recent) > WINDOW:
                self.recent = {kept for kept in self.recent if kept > floor}

    def encode(self) -> bytes:
        return np.array(sorted(self.recent), dtype=np.int64).tobytes()

    @classmethod
    def decode(cls, max_seq: int, blob: bytes) -> StreamState:
        return cls(max_seq=max_seq, recent=set(np.frombuffer(blob, dtype=np.int64).tolist()))


class BatchLedger:
    """Per-stream record of stored batch sequences. Not thread-safe: the writer owns it."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamState] = {}
        self.dirty: set[str] = set()

    def contains(self, batch_id: str) -> bool:
        stream, seq = parse_batch_id(batch_id)
        state = self.streams.get(stream)
        return state is not None and state.contains(seq)

    def add(self, batch_id: str) -> None:
        stream, seq = parse_batch_id(batch_id)
        self.streams.setdefault(stream, StreamState()).add(seq)
        self.dirty.add(stream)

    def snapshot_dirty(self) -> list[tuple[str, int, bytes]]:
        return [(stream, self.streams[stream].max_seq, self.streams[stream].encode()) for stream in self.dirty]
