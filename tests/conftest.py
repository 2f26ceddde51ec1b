"""Fixtures shared by every test folder: real server and agent processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import GosightProcess, Server, start_agent, start_server


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def server(tmp_path: Path, artifacts: Path) -> Iterator[Server]:
    """A server on ephemeral ports with its own data directory, stopped after the test."""
    running = start_server(tmp_path / "server-data", artifacts / "server.log")
    yield running
    running.proc.stop()


@pytest.fixture
def agent_factory(tmp_path: Path, artifacts: Path) -> Iterator:
    """Start agents against a server; every agent started is stopped after the test."""
    started: list[GosightProcess] = []

    def start(server: Server, *extra: str, name: str = "agent") -> GosightProcess:
        proc = start_agent(server.grpc, tmp_path / f"{name}-data", artifacts / f"{name}.log", *extra)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.stop()
