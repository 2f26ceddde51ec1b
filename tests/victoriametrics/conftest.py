"""Fixtures for the VictoriaMetrics backend: a real VictoriaMetrics and a GoSight server that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Server, start_server, wait_for
from tests.victoriametrics.vmprocess import VictoriaMetrics, find_binary


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics on a free loopback port with its own data directory; skipped when not installed."""
    binary = find_binary()
    if binary is None:
        pytest.skip("VictoriaMetrics is not installed (Debian package victoria-metrics)")
    # Query results must include what was just written: no response cache, and no 30 s
    # delay before fresh samples become visible to queries.
    process = VictoriaMetrics(binary, tmp_path / "vm-data", tmp_path / "vm.log",
                              extra_args=("-search.disableCache", "-search.latencyOffset=0s"))
    process.start()
    yield process
    process.stop()


def start_vm_server(tmp_path: Path, victoria: VictoriaMetrics, *extra: str, name: str = "server") -> Server:
    return start_server(tmp_path / f"{name}-data", tmp_path / f"{name}.log",
                        "--store.metrics.backend", "victoriametrics",
                        "--store.metrics.victoriametrics_url", victoria.url, *extra)


@pytest.fixture
def vm_server(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[Server]:
    """A GoSight server with the victoriametrics backend, stopped after the test."""
    running = start_vm_server(tmp_path, victoria)
    yield running
    running.proc.stop()


def server_metric(client: httpx.Client, name: str, **labels: str) -> float:
    """Read one sample of the server's own /metrics; 0 when the series is absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}}" if labels else name
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return 0.0


def wait_forwarded(client: httpx.Client, samples: int, timeout_s: float = 60.0) -> None:
    """Wait until VictoriaMetrics accepted `samples` samples in all and the queue is empty."""
    def done() -> bool:
        sent = server_metric(client, "gosight_remote_write_samples_sent_total")
        return sent >= samples and server_metric(client, "gosight_remote_write_queue_samples") == 0

    wait_for(done, timeout_s=timeout_s,
             message=f"{samples} samples forwarded; sent so far "
                     f"{server_metric(client, 'gosight_remote_write_samples_sent_total')}")
