"""Container collector benchmark: the cost of one collection with many containers.

Starts a private Podman (its own storage in a temporary directory, runc, the Docker
Engine API on a socket there) and runs `--containers` busybox containers that sleep.
Then it calls the agent's containers collector once per `--interval-s`, in this
process, as the agent's loop does. For each collection it records:

- wall time of `collect()`;
- CPU time of this process during it (user plus system, all threads, from
  CLOCK_PROCESS_CPUTIME_ID), which is what the collector adds to the agent;
- CPU time of the Podman API service during it, spent serving the requests;
- requests sent to the engine.

The first collection connects and inspects every container, so it is reported apart;
the others reuse inspect replies. A second measurement times collections with no
engine at all, the cost on hosts without containers.

Usage: python bench/containers.py [--containers 50] [--runs 30] [--interval-s 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gosight.agent.collectors.containers import ContainersCollector  # noqa: E402
from gosight.config import load_config  # noqa: E402
from tests.containers.podman import missing_requirements, start_podman  # noqa: E402


def make_collector(address: str) -> ContainersCollector:
    config = load_config(["agent"], env={}, flags={"agent.server": "127.0.0.1:4317",
                                                    "agent.containers.socket": address})
    return ContainersCollector(config)


def measure_collection(collector: ContainersCollector, engine: psutil.Process | None) -> dict[str, float]:
    calls = collector.api_calls
    engine_cpu = _cpu(engine)
    cpu = time.process_time()
    started = time.perf_counter()
    samples = collector.collect()
    wall = time.perf_counter() - started
    return {
        "wall_ms": wall * 1000,
        "cpu_ms": (time.process_time() - cpu) * 1000,
        "engine_cpu_ms": (_cpu(engine) - engine_cpu) * 1000,
        "calls": collector.api_calls - calls,
        "samples": len(samples),
    }


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def summarize(rows: list[dict[str, float]], key: str, scale: float = 1.0) -> str:
    values = sorted(row[key] * scale for row in rows)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"median {statistics.median(values):.1f}, p90 {p90:.1f}, max {values[-1]:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50, help="running containers to create")
    parser.add_argument("--runs", type=int, default=30, help="measured collections after the first")
    parser.add_argument("--interval-s", type=float, default=1.0, help="time between two collections, seconds")
    args = parser.parse_args()

    reason = missing_requirements()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1

    podman = start_podman()
    try:
        print(f"creating {args.containers} containers", file=sys.stderr)
        for index in range(args.containers):
            podman.start_container(f"bench-{index:03d}")
        engine = psutil.Process(podman.service.pid)
        collector = make_collector(podman.url)
        try:
            first = measure_collection(collector, engine)
            rows = []
            for _ in range(args.runs):
                time.sleep(args.interval_s)
                rows.append(measure_collection(collector, engine))
        finally:
            collector.close()
    finally:
        podman.close()

    absent = make_collector("/nonexistent/gosight-bench.sock")
    absent_rows = [measure_collection(absent, None) for _ in range(1000)]
    absent.close()

    print(f"Machine: {psutil.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}, Python {platform.python_version()}")
    print(f"{args.containers} running containers, {args.runs} collections {args.interval_s:g} s apart\n")
    print("| Measure | Result |")
    print("| --- | --- |")
    print(f"| First collection (connect, inspect all) | {first['wall_ms']:.0f} ms wall, {first['cpu_ms']:.0f} ms CPU, "
          f"{first['calls']:.0f} requests, {first['samples']:.0f} samples |")
    print(f"| Wall time per collection, ms | {summarize(rows, 'wall_ms')} |")
    print(f"| Agent CPU time per collection, ms | {summarize(rows, 'cpu_ms')} |")
    print(f"| Engine CPU time per collection, ms | {summarize(rows, 'engine_cpu_ms')} |")
    print(f"| Engine requests per collection | {summarize(rows, 'calls')} |")
    print(f"| Samples per collection | {rows[-1]['samples']:.0f} |")
    print(f"| No engine: wall time per collection, µs | {summarize(absent_rows, 'wall_ms', 1000)} "
          "(1000 collections) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
