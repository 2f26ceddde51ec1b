"""Single-file executable benchmark: size, server start to first HTTP 200, agent memory.

Measures the executable built by build/build-binary.sh (default dist/gosight):
- its size on disk;
- the time from starting `gosight server` to the first HTTP 200 from /healthz, over
  several starts, each with a fresh data directory (a onefile executable unpacks itself
  into a new temporary directory on every start, so every start pays that cost);
- the resident memory of `gosight agent` after a number of collections at a 1 s
  interval: the bootloader process and the Python process it starts, added together.

References, measured in the same run: VictoriaMetrics from Debian (one static Go
executable with its own store and query API) for size and start to first 200 from
/health, and node_exporter from Debian, scraped every second, for resident memory.

Usage: python bench/binary.py [--binary dist/gosight] [--starts 5] [--agent-seconds 30]
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import free_port  # noqa: E402


VICTORIA_METRICS = Path("/usr/bin/victoria-metrics")
NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")


def first_200_seconds(command: list[str], port: int, path: str) -> float:
    """Start `command` and return the seconds until GET `path` on `port` returns 200."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with status {process.returncode} before it responded")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                    pass
                if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except (OSError, httpx.HTTPError):
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(30)


def server_start(binary: Path, data_dir: Path) -> float:
    port = free_port()
    return first_200_seconds([str(binary), "server", "--data-dir", str(data_dir), "--http-listen",
                              f"127.0.0.1:{port}", "--grpc-listen", "127.0.0.1:0"], port, "/healthz")


def victoria_metrics_start(data_dir: Path) -> float:
    port = free_port()
    return first_200_seconds([str(VICTORIA_METRICS), f"-storageDataPath={data_dir}",
                              f"-httpListenAddr=127.0.0.1:{port}"], port, "/health")


def node_exporter_rss_mib(seconds: float) -> float:
    """Return node_exporter's resident memory after `seconds` of scrapes once a second."""
    port = free_port()
    exporter = subprocess.Popen([str(NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except httpx.HTTPError:
                pass
            time.sleep(1)
        return psutil.Process(exporter.pid).memory_info().rss / 2**20
    finally:
        exporter.terminate()
        exporter.wait(30)


def agent_rss_mib(binary: Path, seconds: float, base: Path) -> tuple[float, float]:
    """Return the agent's resident memory in MiB (bootloader plus Python), and the Python part alone."""
    server = subprocess.Popen([str(binary), "server", "--data-dir", str(base / "server"), "--http-listen",
                               "127.0.0.1:0", "--grpc-listen", f"127.0.0.1:{(grpc_port := free_port())}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = subprocess.Popen([str(binary), "agent", "--server", f"127.0.0.1:{grpc_port}", "--data-dir",
                              str(base / "agent"), "--interval", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds)
        bootloader = psutil.Process(agent.pid)
        children = bootloader.children(recursive=True)
        python_rss = sum(child.memory_info().rss for child in children)
        return (bootloader.memory_info().rss + python_rss) / 2**20, python_rss / 2**20
    finally:
        for process in (agent, server):
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=Path("dist/gosight"))
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--agent-seconds", type=float, default=30.0)
    args = parser.parse_args()
    if not args.binary.exists():
        raise SystemExit(f"{args.binary} not found: run build/build-binary.sh first")

    size_mb = args.binary.stat().st_size / 1e6
    with tempfile.TemporaryDirectory() as base:
        starts = [server_start(args.binary, Path(base) / f"start-{index}") for index in range(args.starts)]
        vm_starts = [victoria_metrics_start(Path(base) / f"vm-{index}") for index in range(args.starts)]
        total_rss, python_rss = agent_rss_mib(args.binary, args.agent_seconds, Path(base))
        exporter_rss = node_exporter_rss_mib(args.agent_seconds)

    print(f"machine: {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB, {platform.platform()}")
    print(f"binary: {args.binary} {size_mb:.1f} MB ({args.binary.stat().st_size / 2**20:.1f} MiB)  target <= 60 MB")
    print(f"server start to first HTTP 200: median {statistics.median(starts):.2f} s, "
          f"min {min(starts):.2f} s, max {max(starts):.2f} s over {len(starts)} starts  target <= 1.5 s")
    print(f"agent resident memory after {args.agent_seconds:g} s at 1 s: {total_rss:.1f} MiB "
          f"(Python process {python_rss:.1f} MiB)  target <= 50 MiB")
    print(f"reference: {VICTORIA_METRICS} {VICTORIA_METRICS.stat().st_size / 1e6:.1f} MB, start to first "
          f"HTTP 200 median {statistics.median(vm_starts):.2f} s, min {min(vm_starts):.2f} s, "
          f"max {max(vm_starts):.2f} s")
    print(f"reference: {NODE_EXPORTER} {NODE_EXPORTER.stat().st_size / 1e6:.1f} MB, resident memory after "
          f"{args.agent_seconds:g} s scraped every 1 s: {exporter_rss:.1f} MiB")


if __name__ == "__main__":
    main()
