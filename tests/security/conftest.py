"""Fixtures of the transport security tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import GosightProcess


@pytest.fixture
def launched() -> Iterator[list[GosightProcess]]:
    """Processes a test started; any still running afterwards (a failed test) is stopped, then killed."""
    processes: list[GosightProcess] = []
    yield processes
    for proc in processes:
        if proc.process.poll() is None:
            try:
                proc.stop(timeout_s=15)
            except AssertionError:
                # stop() killed it after the timeout; the test's own result matters more than this.
                pass
