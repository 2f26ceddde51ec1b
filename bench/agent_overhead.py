"""Agent overhead benchmark: CPU and resident memory of `gosight agent`, beside
node_exporter scraped at the same interval, in the same run.

For each interval, a real server, a real agent sending to it, and Debian's
node_exporter (`/usr/bin/prometheus-node-exporter`, default collectors) scraped over
HTTP at that interval run side by side for the same wall time. CPU is the process's
user plus system time over the measured window (after a warm-up); RSS is the largest
resident set size sampled once a second. The scraper's and the server's own costs are
not counted: only the agent and node_exporter processes. CPU time comes from the
scheduler's per-thread counters in /proc (nanoseconds), where readable.

Usage: python bench/agent_overhead.py [--seconds-1s 120] [--seconds-10s 300]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import free_port, start_agent, start_server, wait_for  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


class Sampler:
    """Samples a process's CPU time and RSS once a second in a thread."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.max_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def cpu_seconds(self) -> float:
        """Return CPU time used so far, from the scheduler's nanosecond counters when readable.

        psutil's user and system times count 10 ms clock ticks, too coarse for a process
        that uses a few milliseconds per collection; /proc/PID/task/*/schedstat counts
        nanoseconds on CPU for every thread.
        """
        total_ns = 0
        try:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                total_ns += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            times = self.process.cpu_times()
            return times.user + times.system
        return total_ns / 1e9

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_rss = max(self.max_rss, self.process.memory_info().rss)
            self._stop.wait(1.0)


def scrape_loop(url: str, interval_s: float, stop: threading.Event) -> None:
    with httpx.Client(timeout=10) as client:
        next_run = time.monotonic()
        while not stop.is_set():
            client.get(url).raise_for_status()
            next_run += interval_s
            stop.wait(max(0.0, next_run - time.monotonic()))


def measure(interval_s: float, seconds: float, base: Path) -> dict[str, tuple[float, float]]:
    server = start_server(base / "server", base / "server.log")
    agent = start_agent(server.grpc, base / "agent", base / "agent.log", "--interval", str(interval_s))
    port = free_port()
    exporter = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, message="node_exporter to answer")
    stop = threading.Event()
    scraper = threading.Thread(target=scrape_loop, args=(url, interval_s, stop), daemon=True)
    scraper.start()

    # Warm-up: both have run a few cycles and loaded everything they need.
    time.sleep(max(3 * interval_s, 5.0))
    samplers = {"gosight agent": Sampler(agent.process.pid), "node_exporter": Sampler(exporter.pid)}
    before = {name: sampler.cpu_seconds() for name, sampler in samplers.items()}
    for sampler in samplers.values():
        sampler.start()
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    result = {}
    for name, sampler in samplers.items():
        sampler.stop()
        result[name] = ((sampler.cpu_seconds() - before[name]) / elapsed, sampler.max_rss / 2**20)

    stop.set()
    scraper.join()
    exporter.terminate()
    exporter.wait(10)
    agent.stop()
    server.proc.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-1s", type=float, default=120.0, help="measured window at a 1 s interval")
    parser.add_argument("--seconds-10s", type=float, default=300.0, help="measured window at a 10 s interval")
    args = parser.parse_args()
    if not shutil.which(NODE_EXPORTER):
        raise SystemExit(f"{NODE_EXPORTER} not found: apt-get install prometheus-node-exporter")
    version = subprocess.run([NODE_EXPORTER, "--version"], capture_output=True, text=True)
    print(f"machine: {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB, Python {platform.python_version()}")
    print(f"node_exporter: {(version.stdout or version.stderr).splitlines()[0]}")
    print(f"{'interval':>8}  {'process':<14} {'CPU (% of a core)':>18} {'max RSS (MiB)':>14}")
    for interval_s, seconds in ((10.0, args.seconds_10s), (1.0, args.seconds_1s)):
        with tempfile.TemporaryDirectory() as base:
            result = measure(interval_s, seconds, Path(base))
        for name, (cpu, rss) in result.items():
            print(f"{interval_s:>7g}s  {name:<14} {cpu * 100:>17.3f}% {rss:>14.1f}")


if __name__ == "__main__":
    main()
