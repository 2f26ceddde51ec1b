"""Ingest benchmark: many simulated agents send OTLP/gRPC to a real server.

Reports, in one run:
- decode only: the rate at which this process parses and normalizes the same
  payloads into sample batches (MetricsDecoder, one thread), with nothing stored;
- end to end: samples per second acknowledged by a real `gosight server` process,
  where an acknowledgement means the samples are committed to DuckDB.

Usage: python bench/ingest.py [--agents 50] [--series 2000] [--rounds 20] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest  # noqa: E402

from gosight.server.normalize import MetricsDecoder  # noqa: E402
from gosight.store.series import SeriesRegistry  # noqa: E402
from tests.support.otlp import EXPORT_METHOD, attribute  # noqa: E402
from tests.support.processes import start_server  # noqa: E402

DAY_MS = 86_400_000


def build_payloads(agents: int, series: int, rounds: int, start_ns: int, step_ns: int) -> list[list[bytes]]:
    """Return payloads[round][agent]: one request per agent and round, shaped like the agent's."""
    per_metric = 40
    payloads = []
    for round_index in range(rounds):
        time_ns = start_ns + round_index * step_ns
        row = []
        for agent in range(agents):
            request = ExportMetricsServiceRequest()
            resource_metrics = request.resource_metrics.add()
            resource_metrics.resource.attributes.extend([
                attribute("service.name", "gosight-agent"), attribute("host.name", f"bench-{agent:04d}"),
                attribute("service.instance.id", f"bench-{agent:04d}"),
                attribute("gosight.endpoint.id", f"host-bench{agent:07d}")])
            scope = resource_metrics.scope_metrics.add()
            for metric_index in range(series // per_metric):
                metric = scope.metrics.add(name=f"node_bench_metric_{metric_index}_total", unit="s")
                metric.sum.is_monotonic = True
                metric.sum.aggregation_temporality = 2
                for point_index in range(per_metric):
                    point = metric.sum.data_points.add(time_unix_nano=time_ns,
                                                       as_double=float(round_index * 10 + point_index))
                    point.attributes.extend([attribute("cpu", str(point_index % 8)),
                                             attribute("mode", f"m{point_index // 8}")])
            row.append(request.SerializeToString())
        payloads.append(row)
    return payloads


def decode_rate(payloads: list[list[bytes]], samples_per_request: int) -> float:
    """Decode every round after the first, which creates the series, as the end-to-end run does."""
    decoder = MetricsDecoder(SeriesRegistry(), max_future_ms=600_000, max_age_ms=30 * DAY_MS)
    for payload in payloads[0]:
        decoder.decode(ExportMetricsServiceRequest.FromString(payload))
    started = time.perf_counter()
    count = 0
    for row in payloads[1:]:
        for payload in row:
            request = ExportMetricsServiceRequest()
            request.ParseFromString(payload)
            count += decoder.decode(request).batch.size
    elapsed = time.perf_counter() - started
    assert count == samples_per_request * sum(len(row) for row in payloads[1:])
    return count / elapsed


async def send_all(target: str, payloads: list[list[bytes]], concurrency: int, compression: bool,
                   round_offset: int = 0) -> float:
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    calls = [channel.unary_unary(EXPORT_METHOD, request_serializer=None, response_deserializer=None)
             for channel in channels]
    queue: asyncio.Queue = asyncio.Queue()
    for round_index, row in enumerate(payloads, start=round_offset):
        for agent, payload in enumerate(row):
            queue.put_nowait((agent, round_index, payload))

    async def worker(index: int) -> None:
        call = calls[index % len(calls)]
        while not queue.empty():
            agent, round_index, payload = queue.get_nowait()
            metadata = (("gosight-batch-id", f"bench-{agent}.e:{round_index}"),)
            while True:
                try:
                    await call(payload, timeout=120, metadata=metadata,
                               compression=grpc.Compression.Gzip if compression else None)
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.05)

    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return elapsed


def _sender(target, payloads, concurrency, compression, result) -> None:  # runs in a child process
    result.put(asyncio.run(send_all(target, payloads, concurrency, compression, round_offset=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--series", type=int, default=2000, help="samples per request (series per agent)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args()

    now_ns = time.time_ns()
    start_ns = now_ns - args.rounds * 10 * 10**9
    payloads = build_payloads(args.agents, args.series, args.rounds, start_ns, 10 * 10**9)
    per_request = (args.series // 40) * 40
    total = per_request * args.agents * args.rounds
    decode = decode_rate(payloads, per_request)

    with tempfile.TemporaryDirectory() as base:
        server = start_server(Path(base) / "data", Path(base) / "server.log")
        # Warm up: the first round creates every series, which is a one-time cost.
        warm = payloads[:1]
        asyncio.run(send_all(server.grpc, warm, args.concurrency, not args.no_gzip))
        measured = payloads[1:]
        result: multiprocessing.Queue = multiprocessing.Queue()
        sender = multiprocessing.Process(target=_sender,
                                         args=(server.grpc, measured, args.concurrency, not args.no_gzip, result))
        server_process = psutil.Process(server.proc.process.pid)
        cpu_before = server_process.cpu_times()
        sender.start()
        elapsed = result.get()
        sender.join()
        cpu_after = server_process.cpu_times()
        rss_mib = server_process.memory_info().rss / 2**20
        with server.client() as client:
            text = client.get("/metrics").text
        server.proc.stop()

    written = next(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("gosight_store_samples_written_total"))
    measured_samples = per_request * args.agents * (args.rounds - 1)
    end_to_end = measured_samples / elapsed
    server_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    print(f"machine: {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB, Python {platform.python_version()}")
    print(f"load: {args.agents} agents x {per_request} samples x {args.rounds} rounds = {total} samples, "
          f"gzip={'off' if args.no_gzip else 'on'}, concurrency {args.concurrency}")
    print(f"decode only (1 thread):   {decode:12,.0f} samples/s")
    print(f"end to end (committed):   {end_to_end:12,.0f} samples/s  ({end_to_end / decode:.0%} of decode only)")
    print(f"server CPU during run:    {server_cpu / elapsed:.2f} cores; server RSS {rss_mib:.0f} MiB")
    assert written == total, f"the server stored {written} samples, expected {total}"
    print(f"stored samples verified:  {int(written)}")


if __name__ == "__main__":
    main()
