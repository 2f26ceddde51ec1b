"""Fixtures for the PromQL tests: in-memory stores with loaded series, and the conformance summary."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from gosight.model import SampleBatch, make_labels
from gosight.store.metrics_duckdb import MetricStore

# Conformance tables (one per storage mode) collected for the terminal summary.
CONFORMANCE_TABLES = pytest.StashKey[list[str]]()


def write_series(store: MetricStore, series: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> None:
    """Write series given as (labels, [(time in seconds, value), ...]) in one batch."""
    ids: list[int] = []
    stamps: list[int] = []
    values: list[float] = []
    for labels, points in series:
        series_id = store.registry.get_or_create(make_labels(labels))
        for seconds, value in points:
            ids.append(series_id)
            stamps.append(int(round(seconds * 1000)))
            values.append(value)
    order = np.lexsort((np.array(stamps), np.array(ids)))
    store.write([SampleBatch(np.array(ids, dtype=np.uint32)[order], np.array(stamps, dtype=np.int64)[order],
                             np.array(values, dtype=np.float64)[order], None)])


@pytest.fixture(params=["head", "chunks"])
def storage_mode(request) -> str:
    """Run a test with samples in the head table and again with them compacted into chunks."""
    return request.param


@pytest.fixture
def memory_store() -> Iterator[MetricStore]:
    store = MetricStore(None)
    yield store
    store.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    for table in config.stash.get(CONFORMANCE_TABLES, []):
        terminalreporter.write_sep("=", "PromQL conformance")
        terminalreporter.write_line(table)
