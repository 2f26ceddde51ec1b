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



def decode_many(counts: np.ndarray, timestamp_blobs: list[bytes],
                value_blobs: list[bytes]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode many chunks of known sample counts; return (timestamps, values) per chunk, in order.

    The blobs are decompressed into one preallocated array per column, which a single
    cumulative sum or prefix XOR then undoes, corrected at chunk boundaries. The int64
    sums may wrap around across chunks; the correction still gives exact results
    because integer arithmetic in numpy is modular.
    """
    if not timestamp_blobs:
        return []
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    ends = starts + counts
    second = np.empty(int(counts.sum()), dtype=np.int64)
    xored = np.empty(second.size, dtype=np.uint64)
    for begin, end, ts_blob, values_blob in zip(starts.tolist(), ends.tolist(), timestamp_blobs, value_blobs):
        written = cramjam.zstd.decompress_into(ts_blob, second[begin:end])
        written += cramjam.zstd.decompress_into(values_blob, xored[begin:end])
        if written != 16 * (end - begin):
            raise ValueError(f"corrupt chunk: it contains {written // 16} samples, expected {end - begin}")

    with np.errstate(over="ignore"):
        deltas = _restart_at(np.cumsum(second), starts, counts)
        timestamps = _restart_at(np.cumsum(deltas), starts, counts)
    prefix = np.bitwise_xor.accumulate(xored)
    before = np.where(starts > 0, prefix[np.maximum(starts - 1, 0)], np.uint64(0))
    values = (prefix ^ np.repeat(before, counts)).view(np.float64)
    return [(timestamps[begin:end].copy(), values[begin:end].copy())
            for begin, end in zip(starts.tolist(), ends.tolist())]


def _restart_at(running: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Turn a running sum over concatenated chunks into one that restarts at each chunk."""
    before = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0)
    return running - np.repeat(before, counts)
