"""Compressed sample chunks: the long-term form of one series over one time block.

Timestamps are stored as delta-of-delta and values as XOR with the previous value,
the two transforms of Facebook's Gorilla paper, applied with numpy over the whole
chunk and then compressed with zstd. Regular scrape intervals turn timestamps into
runs of zeros, and slowly changing values into words with few set bits, which zstd
packs well. Values round-trip bit for bit, NaN payloads (staleness markers) included.
"""

from __future__ import annotations

import cramjam
import numpy as np

_LEVEL = 3


def encode_timestamps(timestamps_ms: np.ndarray) -> bytes:
    deltas = np.diff(timestamps_ms.astype(np.int64), prepend=np.int64(0))
    second = np.diff(deltas, prepend=np.int64(0))
    return bytes(cramjam.zstd.compress(second.tobytes(), level=_LEVEL))


def decode_timestamps(blob: bytes) -> np.ndarray:
    second = np.frombuffer(bytes(cramjam.zstd.decompress(blob)), dtype=np.int64)
    return np.cumsum(np.cumsum(second))


def encode_values(values: np.ndarray) -> bytes:
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    xored = bits.copy()
    xored[1:] ^= bits[:-1]
    return bytes(cramjam.zstd.compress(xored.tobytes(), level=_LEVEL))


def decode_values(blob: bytes) -> np.ndarray:
    xored = np.frombuffer(bytes(cramjam.zstd.decompress(blob)), dtype=np.uint64)
    # A prefix XOR undoes the encoding: value[i] = xored[0] ^ ... ^ xored[i].
    bits = np.bitwise_xor.accumulate(xored)
    return bits.view(np.float64)
