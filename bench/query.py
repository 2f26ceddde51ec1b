"""Query benchmark: dashboard queries on GoSight's embedded store against VictoriaMetrics.

Loads one synthetic fleet (bench/fleet.py: 100 agent-shaped series per host, one
sample a minute) into a real `gosight server` over OTLP/gRPC, with past timestamps.
The server runs with the victoriametrics backend, so its remote write forwarder
loads a real VictoriaMetrics with the same samples in the same run. The store is
then compacted (MetricStore.compact, the code the server runs every ten minutes)
and the server restarted with the embedded backend.

It then times the dashboard's range queries over 1 h, 24 h and 7 d windows, with the
step and rate window the dashboard picks for a 600 px wide chart, against GoSight's
Prometheus API and against VictoriaMetrics' own API (with nocache=1, so its response
cache does not answer repeats). Latency is measured at the client, HTTP included.

The loaded data is kept in --workdir; a later run with the same --hosts and --days
skips loading and starts again from the uncompacted copy.

Usage: python bench/query.py [--hosts 50] [--days 7] [--repeats 3] [--workdir DIR] [--reload]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import grpc
import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import HostEncoder, check_encoding, host_series, host_values  # noqa: E402

from gosight.store.metrics_duckdb import MetricStore  # noqa: E402
from tests.support.otlp import EXPORT_METHOD  # noqa: E402
from tests.support.processes import start_server  # noqa: E402
from tests.victoriametrics.vmprocess import VictoriaMetrics, find_binary  # noqa: E402

INTERVAL_S = 60
POINTS_PER_REQUEST = 120  # two hours of one host per OTLP request
CHART_WIDTH_PX = 600
WINDOWS = (("1h", 3600), ("24h", 86_400), ("7d", 7 * 86_400))
QUEUE_HIGH_SAMPLES = 8_000_000
QUEUE_CAPACITY_SAMPLES = 20_000_000


# The dashboard's step and rate window, as gosight/ui/src/lib/time.ts computes them.

NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400)


def choose_step(span_s: int, width_px: int, min_step_s: int) -> int:
    points = max(50, min(1000, width_px // 2))
    raw = max(min_step_s, span_s / points)
    return next((step for step in NICE_STEPS if step >= raw), math.ceil(raw / 86_400) * 86_400)


def rate_window(step_s: int, interval_s: int) -> str:
    seconds = max(60, 4 * interval_s, step_s + interval_s)
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# The dashboard's queries, as gosight/ui/src/pages/panels.ts writes them.

def endpoint_queries(endpoint_id: str) -> list[str]:
    sel = f'endpoint_id="{endpoint_id}"'
    net = f'{{{sel}, device!="lo"}}'
    one = f"{{{sel}}}"
    rate = "[$__rate_interval]"
    cpu = f'100 * (1 - avg by (endpoint_id, host) (rate(node_cpu_seconds_total{{{sel}, mode="idle"}}{rate})))'
    memory = f"100 * (1 - node_memory_MemAvailable_bytes{one} / node_memory_MemTotal_bytes{one})"
    filesystem = f"100 * (1 - node_filesystem_avail_bytes{one} / node_filesystem_size_bytes{one})"
    queries = [
        cpu, memory, filesystem,
        f"sum(rate(node_network_receive_bytes_total{net}{rate}))",
        f"sum(rate(node_network_transmit_bytes_total{net}{rate}))",
        f"sum(rate(node_disk_read_bytes_total{one}{rate}))",
        f"sum(rate(node_disk_written_bytes_total{one}{rate}))",
        f"node_load1{one}", f"node_load5{one}", f"node_load15{one}",
        f'100 * avg by (mode) (rate(node_cpu_seconds_total{{{sel}, mode!="idle"}}{rate}))',
        f'100 * (1 - rate(node_cpu_seconds_total{{{sel}, mode="idle"}}{rate}))',
        f"node_procs_running{one}", f"node_procs_blocked{one}",
        f"rate(node_context_switches_total{one}{rate})", f"rate(node_intr_total{one}{rate})",
        f"rate(node_forks_total{one}{rate})",
        f"node_memory_MemTotal_bytes{one} - node_memory_MemAvailable_bytes{one}",
        f"node_memory_Cached_bytes{one}", f"node_memory_Buffers_bytes{one}", f"node_memory_MemFree_bytes{one}",
        f"node_memory_MemTotal_bytes{one}",
        f"node_memory_SwapTotal_bytes{one} - node_memory_SwapFree_bytes{one}",
        f"node_memory_SwapTotal_bytes{one}", f"node_memory_SwapCached_bytes{one}",
        f"node_memory_Slab_bytes{one}", f"node_memory_PageTables_bytes{one}", f"node_memory_Dirty_bytes{one}",
        f"node_memory_Writeback_bytes{one}",
        f"node_filesystem_size_bytes{one} - node_filesystem_avail_bytes{one}",
        f"rate(node_disk_read_bytes_total{one}{rate})", f"rate(node_disk_written_bytes_total{one}{rate})",
        f"rate(node_disk_reads_completed_total{one}{rate})", f"rate(node_disk_writes_completed_total{one}{rate})",
        f"100 * rate(node_disk_io_time_seconds_total{one}{rate})",
        f"100 * (1 - node_filesystem_files_free{one} / node_filesystem_files{one})",
    ]
    for direction in ("receive", "transmit"):
        for kind in ("bytes", "packets", "errs", "drop"):
            queries.append(f"rate(node_network_{direction}_{kind}_total{net}{rate})")
    return list(dict.fromkeys(queries))


def fleet_queries() -> list[str]:
    rate = "[$__rate_interval]"
    cpu = f'100 * (1 - avg by (endpoint_id, host) (rate(node_cpu_seconds_total{{mode="idle"}}{rate})))'
    memory = "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
    return [f"avg({cpu})", f"max({cpu})", f"avg({memory})", f"max({memory})",
            f'sum(rate(node_network_receive_bytes_total{{device!="lo"}}{rate}))',
            f'sum(rate(node_network_transmit_bytes_total{{device!="lo"}}{rate}))',
            "count(count by (endpoint_id) (node_load1))"]


def query_class(query: str, fleet: bool) -> str:
    if fleet:
        return "fleet overview"
    return "endpoint, rate()" if "rate(" in query else "endpoint, gauges"


# Loading.

async def load(target: str, server_url: str, hosts: int, days: int, end_s: int,
               headers: dict[str, str]) -> tuple[int, float]:
    """Send every host's samples, oldest first; return (samples sent, seconds)."""
    specs = host_series()
    points = days * 86_400 // INTERVAL_S
    start_s = end_s - (points - 1) * INTERVAL_S
    encoders = [HostEncoder(host, specs, (start_s - 86_400) * 10**9) for host in range(hosts)]
    values = [host_values(specs, host, start_s, INTERVAL_S, points) for host in range(hosts)]
    times_ns = (start_s + np.arange(points, dtype=np.int64) * INTERVAL_S) * 10**9
    check_encoding(encoders[0], times_ns[:3], values[0][:, :3])

    channel = grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    call = channel.unary_unary(EXPORT_METHOD, request_serializer=None, response_deserializer=None)
    queue: asyncio.Queue = asyncio.Queue(maxsize=64)
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while True:
            item = await queue.get()
            if item is None:
                return
            payload, count = item
            while True:
                try:
                    await call(payload, timeout=300)
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.1)
            sent += count

    started = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(8)]
    async with httpx.AsyncClient(base_url=server_url, timeout=30, headers=headers) as client:
        for first in range(0, points, POINTS_PER_REQUEST):
            window = slice(first, min(points, first + POINTS_PER_REQUEST))
            for host in range(hosts):
                payload = encoders[host].encode(times_ns[window], values[host][:, window])
                await queue.put((payload, len(specs) * (window.stop - window.start)))
            await _wait_for_forwarder(client, QUEUE_HIGH_SAMPLES)
            print(f"\r  sent {first + POINTS_PER_REQUEST:>6} of {points} intervals", end="", flush=True)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    await channel.close()
    print()
    return sent, time.perf_counter() - started


async def _wait_for_forwarder(client: httpx.AsyncClient, high_samples: int) -> None:
    # Pausing the senders keeps the remote write queue below its capacity, so nothing is dropped.
    while await _metric(client, "gosight_remote_write_queue_samples") > high_samples:
        await asyncio.sleep(0.5)


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def load_everything(args: argparse.Namespace, workdir: Path, vm: VictoriaMetrics) -> dict:
    shutil.rmtree(workdir / "gosight", ignore_errors=True)
    end_s = int(time.time()) // INTERVAL_S * INTERVAL_S - INTERVAL_S
    server = start_server(workdir / "gosight", workdir / "server-load.log",
                          "--store.metrics.backend", "victoriametrics",
                          "--store.metrics.victoriametrics_url", vm.url,
                          "--store.metrics.remote_write_queue_samples", str(QUEUE_CAPACITY_SAMPLES),
                          "--server.ingest.max_message_bytes", str(64 << 20))
    try:
        sent, seconds = asyncio.run(load(server.grpc, server.url, args.hosts, args.days, end_s,
                                         server.auth_headers()))
        print(f"  GoSight acknowledged {sent:,} samples in {seconds:.0f} s ({sent / seconds:,.0f} samples/s)")
        started = time.perf_counter()
        with server.client() as client:
            def forwarded() -> float:
                text = client.get("/metrics").text
                return sum(float(line.split()[-1]) for line in text.splitlines()
                           if line.startswith("gosight_remote_write_samples_sent_total"))
            while forwarded() < sent:
                time.sleep(0.5)
            dropped = sum(float(line.split()[-1]) for line in client.get("/metrics").text.splitlines()
                          if line.startswith("gosight_remote_write_samples_dropped_total"))
        forward_s = seconds + time.perf_counter() - started
        print(f"  VictoriaMetrics received {sent:,} samples by remote write {forward_s:.0f} s after the start; "
              f"dropped {dropped:.0f}")
    finally:
        server.proc.stop(timeout_s=600)
    vm.flush()
    shutil.copyfile(workdir / "gosight" / "metrics.duckdb", workdir / "metrics-uncompacted.duckdb")
    info = {"hosts": args.hosts, "days": args.days, "end_s": end_s, "samples": sent, "load_s": round(seconds),
            "forward_s": round(forward_s)}
    (workdir / "loaded.json").write_text(json.dumps(info))
    return info


def compact(workdir: Path, end_s: int) -> float:
    """Compact a fresh copy of the loaded store as the server would at the data's end time."""
    path = workdir / "gosight" / "metrics.duckdb"
    shutil.copyfile(workdir / "metrics-uncompacted.duckdb", path)
    wal = path.with_suffix(".duckdb.wal")
    wal.unlink(missing_ok=True)
    started = time.perf_counter()
    store = MetricStore(path)
    try:
        store.compact(now_ms=end_s * 1000)
        counts = store.counts()
    finally:
        store.close()
    seconds = time.perf_counter() - started
    print(f"  compaction took {seconds:.0f} s: {counts}")
    return seconds


# Measuring.

def run_queries(gosight_url: str, vm_url: str, info: dict, repeats: int,
                gosight_headers: dict[str, str]) -> tuple[dict, list[str]]:
    """Return latencies[(class, window)] = {"gosight": [...], "vm": [...]} and result mismatches."""
    end_s = info["end_s"]
    hosts = info["hosts"]
    latencies: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: {"gosight": [], "vm": []})
    mismatches: list[str] = []
    with httpx.Client(base_url=gosight_url, timeout=300, headers=gosight_headers) as gosight, \
            httpx.Client(base_url=vm_url, timeout=300) as vm:
        for window_name, span_s in WINDOWS:
            step_s = choose_step(span_s, CHART_WIDTH_PX, INTERVAL_S)
            rate = rate_window(step_s, INTERVAL_S)
            start_s = end_s - math.ceil(span_s / step_s) * step_s
            work = [(query, True) for query in fleet_queries()]
            for repeat in range(repeats):
                endpoint = f"host-bench{(repeat * 17 + 3) % hosts:07d}"
                work += [(query, False) for query in endpoint_queries(endpoint)]
            warmed: set[str] = set()
            for template, fleet in work:
                query = template.replace("$__rate_interval", rate)
                form = {"query": query, "start": str(start_s), "end": str(end_s), "step": str(step_s)}
                vm_form = {**form, "nocache": "1"}
                if query not in warmed:
                    # Warm up both sides once per query text: page cache, parsers, connections.
                    warmed.add(query)
                    _timed(gosight, "/prometheus/api/v1/query_range", form)
                    _timed(vm, "/api/v1/query_range", vm_form)
                rounds = repeats if fleet else 1
                for _ in range(rounds):
                    gosight_s, gosight_body = _timed(gosight, "/prometheus/api/v1/query_range", form)
                    vm_s, vm_body = _timed(vm, "/api/v1/query_range", vm_form)
                    bucket = latencies[(query_class(query, fleet), window_name)]
                    bucket["gosight"].append(gosight_s)
                    bucket["vm"].append(vm_s)
                got, expected = _series_count(gosight_body), _series_count(vm_body)
                if got != expected:
                    mismatches.append(f"{window_name} {query}: GoSight {got} series, VictoriaMetrics {expected}")
    return latencies, mismatches


def _timed(client: httpx.Client, path: str, form: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post(path, data=form)
    elapsed = time.perf_counter() - started
    body = response.json()
    if body.get("status") != "success":
        raise AssertionError(f"{path} failed for {form['query']}: {response.text[:300]}")
    return elapsed, body


def _series_count(body: dict) -> int:
    return len(body["data"]["result"])


def report(latencies: dict, info: dict, compaction_s: float) -> list[str]:
    lines = ["| Query class | Window (step) | Queries timed | GoSight p50 / p95 | VictoriaMetrics p50 / p95 | "
             "Ratio p50 / p95 |", "|---|---|---|---|---|---|"]
    worst = 0.0
    for (klass, window_name), bucket in sorted(latencies.items(), key=lambda item: (item[0][0], _order(item[0][1]))):
        ours = np.array(bucket["gosight"]) * 1000
        theirs = np.array(bucket["vm"]) * 1000
        p50, p95 = np.percentile(ours, 50), np.percentile(ours, 95)
        v50, v95 = np.percentile(theirs, 50), np.percentile(theirs, 95)
        worst = max(worst, p50 / v50, p95 / v95)
        span_s = dict(WINDOWS)[window_name]
        step = choose_step(span_s, CHART_WIDTH_PX, INTERVAL_S)
        lines.append(f"| {klass} | {window_name} ({step} s) | {ours.size} | {p50:.1f} / {p95:.1f} ms | "
                     f"{v50:.1f} / {v95:.1f} ms | {p50 / v50:.2f} / {p95 / v95:.2f} |")
    lines.append("")
    lines.append(f"Worst ratio: {worst:.2f} (target at most 2).")
    return lines


def _order(window_name: str) -> int:
    return [name for name, _ in WINDOWS].index(window_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="endpoints timed per window")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gosight-query-bench"))
    parser.add_argument("--reload", action="store_true", help="load the fleet again even if --workdir has it")
    args = parser.parse_args()

    binary = find_binary()
    if binary is None:
        raise SystemExit("bench/query.py needs VictoriaMetrics: install the victoria-metrics package")
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / "loaded.json"
    info = json.loads(marker.read_text()) if marker.exists() else None
    fresh = args.reload or info is None or (info["hosts"], info["days"]) != (args.hosts, args.days)
    if fresh:
        shutil.rmtree(workdir / "vm", ignore_errors=True)
        marker.unlink(missing_ok=True)
    vm = VictoriaMetrics(binary, workdir / "vm", workdir / "vm.log").start()
    try:
        if fresh:
            print(f"loading {args.hosts} hosts x 100 series x {args.days} days at {INTERVAL_S} s")
            info = load_everything(args, workdir, vm)
        print("compacting")
        compaction_s = compact(workdir, info["end_s"])
        server = start_server(workdir / "gosight", workdir / "server-query.log")
        try:
            gosight_rss = psutil.Process(server.proc.process.pid)
            print("querying")
            latencies, mismatches = run_queries(server.url, vm.url, info, args.repeats, server.auth_headers())
            rss_mib = gosight_rss.memory_info().rss / 2**20
        finally:
            server.proc.stop(timeout_s=120)
    finally:
        vm.stop()

    print(f"machine: {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB, Python {platform.python_version()}")
    print(f"data: {info['hosts']} hosts, {info['samples']:,} samples; load {info['load_s']} s, "
          f"remote write done after {info['forward_s']} s, compaction {compaction_s:.0f} s; "
          f"GoSight RSS after the queries {rss_mib:.0f} MiB")
    for line in report(latencies, info, compaction_s):
        print(line)
    for line in mismatches:
        print("series count differs:", line)


if __name__ == "__main__":
    main()
