"""Encode sample batches as Prometheus remote write 1.0 requests.

The message types are those of gosight/wire/remote_write.proto. Label sets are
serialized once per series id with the generated classes and cached. Samples are
encoded with numpy instead: a `Sample` is a fixed-width double and a varint
timestamp, so the bytes of every sample in a request are built as one array, and
only the per-series framing runs in Python. The result parses as a `WriteRequest`
(the tests check this against the generated decoder).
"""

from __future__ import annotations

from collections.abc import Callable

import cramjam
import numpy as np

from gosight.model import Labels
from gosight.wire import remote_write_pb2

# Wire bytes: field number << 3 | wire type.
_TIMESERIES_TAG = b"\x0a"  # WriteRequest.timeseries = 1, length-delimited
_SAMPLE_TAG = 0x12  # TimeSeries.samples = 2, length-delimited
_VALUE_TAG = 0x09  # Sample.value = 1, 64-bit
_TIMESTAMP_TAG = 0x10  # Sample.timestamp = 2, varint
_MAX_VARINT_BYTES = 10
# Tag, length, value tag, 8 value bytes, timestamp tag: the fixed part of one sample record.
_SAMPLE_FIXED_BYTES = 12


class LabelCache:
    """Serialized `TimeSeries.labels` fields per series id, built on first use.

    Series ids and their label sets never change, so an entry stays valid for the
    life of the process. Thread-safe for one writer: entries are only added.
    """

    def __init__(self, labels_of: Callable[[int], Labels]):
        self._labels_of = labels_of
        self._encoded: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self._encoded)

    def get(self, series_id: int) -> bytes:
        encoded = self._encoded.get(series_id)
        if encoded is None:
            encoded = encode_labels(self._labels_of(series_id))
            self._encoded[series_id] = encoded
        return encoded


def encode_labels(labels: Labels) -> bytes:
    """Serialize a label set as the repeated `labels` field of a TimeSeries.

    `Labels` tuples are sorted by name, which is the order the specification requires.
    """
    series = remote_write_pb2.TimeSeries(
        labels=[remote_write_pb2.Label(name=name, value=value) for name, value in labels])
    return series.SerializeToString()


def encode_write_request(series_ids: np.ndarray, timestamps_ms: np.ndarray, values: np.ndarray,
                         labels: LabelCache) -> bytes:
    """Serialize samples as an uncompressed WriteRequest, one TimeSeries per series id.

    Samples are grouped by series and sorted by time within each series, as the
    specification requires. Values keep their exact bits, so staleness markers
    arrive as Prometheus' StaleNaN.
    """
    if series_ids.size == 0:
        return b""
    order = np.lexsort((timestamps_ms, series_ids))
    ids = np.asarray(series_ids)[order]
    records, record_ends = _sample_records(np.asarray(timestamps_ms, dtype=np.int64)[order],
                                           np.asarray(values, dtype=np.float64)[order])
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], ids.size]
    byte_starts = np.r_[0, record_ends[:-1]][starts].tolist()
    byte_ends = record_ends[ends - 1].tolist()

    parts: list[bytes] = []
    for series_id, begin, end in zip(ids[starts].tolist(), byte_starts, byte_ends):
        label_bytes = labels.get(series_id)
        parts.append(_TIMESERIES_TAG)
        parts.append(_varint(len(label_bytes) + end - begin))
        parts.append(label_bytes)
        parts.append(records[begin:end])
    return b"".join(parts)


def compress(payload: bytes) -> bytes:
    """Snappy block format (not the framed format), as remote write requires."""
    return bytes(cramjam.snappy.compress_raw(payload))


def _sample_records(timestamps_ms: np.ndarray, values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Return the concatenated `samples` field records and the end offset of each record."""
    count = timestamps_ms.size
    unsigned = timestamps_ms.view(np.uint64)
    # Protobuf encodes a negative int64 as its 64-bit two's complement, in ten varint bytes.
    groups = np.empty((count, _MAX_VARINT_BYTES), dtype=np.uint8)
    widths = np.ones(count, dtype=np.int64)
    for index in range(_MAX_VARINT_BYTES):
        shifted = unsigned >> np.uint64(7 * index)
        groups[:, index] = (shifted & np.uint64(0x7F)).astype(np.uint8)
        if index:
            widths += shifted != 0
    columns = np.arange(_MAX_VARINT_BYTES)
    groups |= np.where(columns[None, :] < (widths - 1)[:, None], np.uint8(0x80), np.uint8(0))

    table = np.zeros((count, _SAMPLE_FIXED_BYTES + _MAX_VARINT_BYTES), dtype=np.uint8)
    table[:, 0] = _SAMPLE_TAG
    table[:, 1] = _SAMPLE_FIXED_BYTES - 2 + widths  # the Sample message's length
    table[:, 2] = _VALUE_TAG
    table[:, 3:11] = np.ascontiguousarray(values, dtype="<f8").view(np.uint8).reshape(count, 8)
    table[:, 11] = _TIMESTAMP_TAG
    table[:, _SAMPLE_FIXED_BYTES:] = groups
    used = np.arange(table.shape[1])[None, :] < (_SAMPLE_FIXED_BYTES + widths)[:, None]
    return table[used].tobytes(), np.cumsum(_SAMPLE_FIXED_BYTES + widths)


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
