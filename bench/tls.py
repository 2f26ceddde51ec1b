"""Transport security benchmark: ingest rate over plaintext, TLS, mutual TLS and mutual TLS with a token.

Each mode gets a fresh `gosight server` process with its own store, the same payloads
(bench/ingest.py's builder) and the same sender (bench/ingest.py's send_all, in a child
process). The first round creates the series and is not measured. A rate is samples
acknowledged per second, where an acknowledgement means the samples are committed.

Usage: python bench/tls.py [--agents 50] [--series 2000] [--rounds 20] [--concurrency 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.ingest as ingest  # noqa: E402
from gosight.security.authority import Authority  # noqa: E402
from gosight.security.guard import GRPC, CallGuard  # noqa: E402
from gosight.security.revocation import RevocationList  # noqa: E402
from gosight.security.tokens import TokenStore  # noqa: E402
from tests.support.processes import start_server  # noqa: E402


@dataclass
class Mode:
    name: str
    server_flags: tuple[str, ...]
    tls: bool = False
    client_cert: bool = False
    token: bool = False


MODES = [
    Mode("plaintext", ()),
    Mode("TLS", ("--server.tls.enabled", "true"), tls=True),
    Mode("mutual TLS", ("--server.tls.enabled", "true", "--server.tls.client_auth", "require"), tls=True,
         client_cert=True),
    Mode("mutual TLS + token", ("--server.tls.enabled", "true", "--server.tls.client_auth", "require",
                                "--server.auth.require_agent_token", "true"), tls=True, client_cert=True, token=True),
]


@dataclass
class Credentials:
    """Client credentials of one mode, as bytes and strings so they pickle into the sender's process."""

    ca_pem: bytes | None = None
    key_pem: bytes | None = None
    cert_pem: bytes | None = None
    token: str | None = None


def secure_grpc_module(credentials: Credentials) -> types.SimpleNamespace:
    """Return a stand-in for the grpc module whose insecure_channel opens the mode's channel.

    bench/ingest.py's send_all opens its channels with grpc.aio.insecure_channel. Replacing
    the module it uses keeps one sender for every mode, so the modes differ only in transport.
    """
    channel_credentials = grpc.ssl_channel_credentials(credentials.ca_pem, credentials.key_pem, credentials.cert_pem)
    if credentials.token:
        call_credentials = grpc.access_token_call_credentials(credentials.token)
        channel_credentials = grpc.composite_channel_credentials(channel_credentials, call_credentials)

    def secure_channel(target: str) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(target, channel_credentials,
                                       options=[("grpc.ssl_target_name_override", "localhost")])

    aio = types.SimpleNamespace(insecure_channel=secure_channel, AioRpcError=grpc.aio.AioRpcError)
    return types.SimpleNamespace(aio=aio, Compression=grpc.Compression, StatusCode=grpc.StatusCode)


def send(target: str, payloads, concurrency: int, credentials: Credentials | None, round_offset: int) -> float:
    previous = ingest.grpc
    if credentials is not None:
        ingest.grpc = secure_grpc_module(credentials)
    try:
        return asyncio.run(ingest.send_all(target, payloads, concurrency, True, round_offset=round_offset))
    finally:
        ingest.grpc = previous


def _sender(target, payloads, concurrency, credentials, result) -> None:  # runs in a child process
    result.put(send(target, payloads, concurrency, credentials, round_offset=1))


def prepare(mode: Mode, data_dir: Path) -> Credentials | None:
    """Create the TLS files (and token) a mode needs before its server starts."""
    if not mode.tls:
        return None
    authority = Authority(data_dir / "tls")
    authority.init(["localhost", "127.0.0.1"], 30, 30)
    credentials = Credentials(ca_pem=authority.ca_cert_path.read_bytes())
    if mode.client_cert:
        issued = authority.issue("bench", 30)
        credentials.cert_pem = issued.cert_path.read_bytes()
        credentials.key_pem = issued.key_path.read_bytes()
    if mode.token:
        data_dir.mkdir(parents=True, exist_ok=True)
        tokens = TokenStore(data_dir / "meta.sqlite")
        credentials.token = tokens.create("bench")[0]
        tokens.close()
    return credentials


def run_mode(mode: Mode, payloads, concurrency: int, base: Path) -> tuple[float, float]:
    """Return (elapsed seconds of the measured rounds, server CPU cores used meanwhile)."""
    base.mkdir(parents=True, exist_ok=True)
    data_dir = base / mode.name.replace(" ", "-").replace("+", "and")
    credentials = prepare(mode, data_dir)
    server = start_server(data_dir, base / f"{data_dir.name}.log", *mode.server_flags)
    try:
        send(server.grpc, payloads[:1], concurrency, credentials, round_offset=0)
        result: multiprocessing.Queue = multiprocessing.Queue()
        sender = multiprocessing.Process(target=_sender,
                                         args=(server.grpc, payloads[1:], concurrency, credentials, result))
        server_process = psutil.Process(server.proc.process.pid)
        cpu_before = server_process.cpu_times()
        sender.start()
        elapsed = result.get()
        sender.join()
        cpu_after = server_process.cpu_times()
    finally:
        server.proc.stop()
    server_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return elapsed, server_cpu / elapsed


def guard_cost_us(base: Path, calls: int = 20_000) -> float:
    """Return the time of one CallGuard check with a token and a client certificate, in microseconds."""
    authority = Authority(base / "guard" / "tls")
    authority.init(["localhost"], 30, 30)
    issued = authority.issue("bench", 30)
    revocations = RevocationList(authority.crl_path, [authority.load_ca_cert()])
    revocations.load()
    tokens = TokenStore(base / "guard" / "meta.sqlite")
    token = tokens.create("bench")[0]
    guard = CallGuard(tokens, token_required_on=frozenset({GRPC}), revocations=revocations,
                      registry=CollectorRegistry())
    pem = issued.cert_path.read_bytes()
    authorization = f"Bearer {token}"

    async def check_all() -> float:
        await guard.authenticate(GRPC, authorization, "bench-agent", pem, "bench")
        started = time.perf_counter()
        for _ in range(calls):
            await guard.authenticate(GRPC, authorization, "bench-agent", pem, "bench")
        return time.perf_counter() - started

    elapsed = asyncio.run(check_all())
    tokens.close()
    return elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--series", type=int, default=2000, help="samples per request (series per agent)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of every mode, interleaved so that load from other programs spreads evenly")
    args = parser.parse_args()

    # The sender runs in a spawned child: the parent has used gRPC channels by then, and gRPC's fork support
    # is off by default (GRPC_ENABLE_FORK_SUPPORT).
    multiprocessing.set_start_method("spawn")
    start_ns = time.time_ns() - args.rounds * 10 * 10**9
    payloads = ingest.build_payloads(args.agents, args.series, args.rounds, start_ns, 10 * 10**9)
    per_request = (args.series // 40) * 40
    measured = per_request * args.agents * (args.rounds - 1)

    print(f"machine: {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB, Python {platform.python_version()}")
    print(f"load: {args.agents} agents x {per_request} samples x {args.rounds} rounds (first round not measured), "
          f"gzip on, concurrency {args.concurrency}, {args.repeat} runs per mode")
    rates: dict[str, list[float]] = {mode.name: [] for mode in MODES}
    cores: dict[str, list[float]] = {mode.name: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as base:
        print(f"server check per call (token lookup, revocation check): {guard_cost_us(Path(base)):.1f} us")
        for run in range(args.repeat):
            for mode in MODES:
                elapsed, used = run_mode(mode, payloads, args.concurrency, Path(base) / f"run{run}")
                rates[mode.name].append(measured / elapsed)
                cores[mode.name].append(used)

    baseline = statistics.median(rates[MODES[0].name])
    for mode in MODES:
        rate = statistics.median(rates[mode.name])
        print(f"{mode.name:<20} median {rate:10,.0f} samples/s ({min(rates[mode.name]):,.0f} to "
              f"{max(rates[mode.name]):,.0f}), {rate / per_request:6,.0f} requests/s, {rate / baseline:.0%} of "
              f"plaintext, server CPU {statistics.median(cores[mode.name]):.2f} cores")


if __name__ == "__main__":
    main()
