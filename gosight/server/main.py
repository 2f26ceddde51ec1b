"""Server start-up and shutdown, as a sequence of short steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import grpc
import uvicorn

from gosight import __version__
from gosight.config import Config, DataDirError, ensure_data_dir, join_host_port, split_host_port
from gosight.auth.grpc_ingest import api_token_check
from gosight.auth.startup import log_setup_link, start_auth
from gosight.server.app import create_app
from gosight.server.endpoints import EndpointRegistry
from gosight.server.ingest import IngestPipeline
from gosight.server.live import LiveHub, engine_evaluator, query_metric_names
from gosight.server.normalize import MetricsDecoder
from gosight.server.receivers.control import AgentService
from gosight.server.receivers.metrics import MetricsReceiver
from gosight.server.receivers.otlp_grpc import metrics_service_handler
from gosight.security.certs import CertificateError
from gosight.security.guard import ApiTokenCheck, CallGuard, GuardInterceptor, token_required_on
from gosight.security.server_tls import ServerTLS, prepare_server_tls
from gosight.security.tokens import TokenStore
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.meta import MetaStore
from gosight.store.metrics_duckdb import MetricStore
from gosight.store.promql import Engine
from gosight.store.query_backend import EmbeddedBackend, QueryBackend
from gosight.store.victoriametrics import RemoteWriter, VictoriaMetricsBackend
from gosight.wire import agent_pb2_grpc

log = logging.getLogger(__name__)

ENDPOINT_FLUSH_S = 10.0
# Maximum time shutdown spends sending queued samples to VictoriaMetrics.
REMOTE_WRITE_DRAIN_S = 5.0
DAY_MS = 86_400_000


class StartupError(Exception):
    """The server cannot start; the message says what to change."""


@dataclass
class Listening:
    http: str
    grpc: str
    # The one-time link that creates the first admin, while no user exists.
    setup_url: str | None = None


class _Uvicorn(uvicorn.Server):
    """Uvicorn without its own signal handling: the server's shutdown sequence owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    def install_signal_handlers(self) -> None:
        return None


async def serve(config: Config, stop: asyncio.Event | None = None,
                on_listening: Callable[[Listening], None] | None = None,
                on_stopping: Callable[[], None] | None = None) -> None:
    """Run the server until `stop` is set or SIGTERM/SIGINT arrives, then shut down cleanly.

    Each started part registers its own shutdown step, so a failure half-way through
    start-up closes what was opened, and a normal stop runs the steps in reverse:
    listeners first, then the ingest queue drains, then the stores close.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    async with contextlib.AsyncExitStack() as shutdown:
        # The HTTP port is bound first so a busy port fails before anything is opened.
        data_dir = _ensure_data_dir(config.data_dir)
        _make_files_private(data_dir)
        http_socket = _bind(config["server.http.listen"], "server.http.listen")
        shutdown.callback(http_socket.close)
        log.info("starting gosight server", extra={"fields": {
            "version": __version__, "data_dir": str(data_dir), "data_dir_source": config.sources.get("data_dir")}})
        # TLS files are checked (and created on a first start) before anything listens.
        tls = _prepare_tls(config)

        # Storage: nothing may be accepted before the store can take it.
        meta = _open_meta(data_dir / "meta.sqlite")
        shutdown.callback(meta.close)
        store = _open_store(data_dir, config["store.chunk_cache_mb"] << 20)
        metrics = ServerMetrics()
        tokens = TokenStore(data_dir / "meta.sqlite")
        shutdown.callback(tokens.close)
        auth = await start_auth(config, data_dir, shutdown)
        guard = _call_guard(config, tokens, tls, metrics, api_token_check(auth))
        # The forwarder closes after the pipeline, so it still gets the last commits of the drain.
        forwarder = _start_remote_write(config, store, metrics)
        if forwarder is not None:
            shutdown.push_async_callback(_close_remote_write, forwarder, config["server.shutdown_timeout_s"])
        pipeline = IngestPipeline(store, metrics, capacity_samples=config["server.ingest.queue_samples"],
                                  retention_ms=int(config["store.retention_days"] * DAY_MS))
        if forwarder is not None:
            pipeline.add_listener(forwarder.on_commit)
        pipeline.start()
        shutdown.push_async_callback(_close_pipeline, pipeline, config["server.shutdown_timeout_s"])

        # Ingest path.
        endpoints = EndpointRegistry(meta, idle_after_s=config["server.presence.idle_after_s"],
                                     offline_after_s=config["server.presence.offline_after_s"])
        shutdown.callback(endpoints.flush)
        decoder = MetricsDecoder(store.registry, max_future_ms=config["server.ingest.max_future_s"] * 1000,
                                 max_age_ms=int(config["store.retention_days"] * DAY_MS))
        receiver = MetricsReceiver(decoder, pipeline, endpoints, metrics)
        shutdown.callback(receiver.close)
        metrics.add_gauge_callback("gosight_endpoints", "Endpoints by presence status.", ["status"],
                                   lambda: [([status], count) for status, count in endpoints.counts().items()])
        metrics.add_gauge_callback("gosight_store_series", "Series in the metric store.", [],
                                   lambda: [([], len(store.registry))])

        # Listeners.
        agent_service = AgentService(endpoints, metrics, heartbeat_interval_s=5.0)
        grpc_server, grpc_address = await _start_grpc(config, receiver, agent_service, tls, guard)
        shutdown.push_async_callback(_stop_grpc, grpc_server, agent_service, config["server.shutdown_timeout_s"])
        query_engine = Engine(store, lookback_ms=int(config["query.lookback_delta_s"] * 1000),
                              max_samples=config["query.max_samples"], timeout_s=config["query.timeout_s"],
                              max_points_per_series=config["query.max_points_per_series"])
        query_backend = _query_backend(config, query_engine)
        if isinstance(query_backend, VictoriaMetricsBackend):
            shutdown.callback(query_backend.close)
        app = create_app({"config": config, "store": store, "endpoints": endpoints, "server_metrics": metrics,
                          "metrics_receiver": receiver, "pipeline": pipeline, "query_engine": query_engine,
                          "query_backend": query_backend, "call_guard": guard, "tokens": tokens,
                          "auth": auth})
        # Live mode: the dashboard's WebSockets get fresh query results after each commit.
        live_hub = LiveHub(store.registry, engine_evaluator(query_backend), query_metric_names, metrics=metrics)
        app.state.live_hub = live_hub
        # When VictoriaMetrics serves queries, fresh values exist there only once they are forwarded.
        # NOTE: VictoriaMetrics makes accepted samples searchable within about a second, so a
        # live evaluation may still miss the newest samples; the next one shows them.
        (forwarder or pipeline).add_listener(live_hub.on_commit)
        live_hub.start()
        shutdown.push_async_callback(live_hub.stop)
        http_address = join_host_port(*http_socket.getsockname()[:2])
        web = _Uvicorn(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                      timeout_graceful_shutdown=config["server.shutdown_timeout_s"],
                                      **(tls.uvicorn_options() if tls else {})))
        web_task = asyncio.create_task(web.serve(sockets=[http_socket]))
        shutdown.push_async_callback(_stop_web, web, web_task)
        flush_task = asyncio.create_task(_flush_endpoints_periodically(endpoints))
        shutdown.callback(flush_task.cancel)

        while not web.started and not web_task.done():
            await asyncio.sleep(0.01)
        if web_task.done():
            web_task.result()
        log.info("server listening", extra={"fields": {
            "http": http_address, "grpc": grpc_address, "tls": tls is not None,
            "agent_token_required": ",".join(sorted(guard.token_required_on)) or "none"}})
        setup_url = log_setup_link(auth, config, http_address, tls is not None)
        if on_listening is not None:
            on_listening(Listening(http=http_address, grpc=grpc_address, setup_url=setup_url))

        await stop.wait()
        log.info("shutting down")
        if on_stopping is not None:
            await asyncio.to_thread(on_stopping)
    log.info("server stopped", extra={"fields": {"drained": pipeline.drained}})


def _start_remote_write(config: Config, store: MetricStore, metrics: ServerMetrics) -> RemoteWriter | None:
    """Start forwarding to VictoriaMetrics when it is the backend.

    The embedded store keeps its own copy of every sample in this mode too: it is
    where a batch is durable before the sender is acknowledged.
    """
    if config["store.metrics.backend"] != "victoriametrics":
        return None
    forwarder = RemoteWriter(config["store.metrics.victoriametrics_url"], store.registry, metrics,
                             capacity_samples=config["store.metrics.remote_write_queue_samples"])
    forwarder.start()
    return forwarder


async def _close_remote_write(forwarder: RemoteWriter, timeout_s: float) -> None:
    await asyncio.to_thread(forwarder.close, min(REMOTE_WRITE_DRAIN_S, timeout_s))


def _query_backend(config: Config, engine: Engine) -> QueryBackend:
    if config["store.metrics.backend"] != "victoriametrics":
        return EmbeddedBackend(engine)
    url = config["store.metrics.victoriametrics_url"]
    log.info("metric queries go to victoriametrics", extra={"fields": {"url": url}})
    return VictoriaMetricsBackend(url, max_points_per_series=config["query.max_points_per_series"],
                                  timeout_s=config["query.timeout_s"])


async def _stop_grpc(server: grpc.aio.Server, agent_service: AgentService, timeout_s: float) -> None:
    agent_service.close_all()
    await server.stop(grace=min(5.0, timeout_s))


async def _stop_web(web: uvicorn.Server, task: asyncio.Task) -> None:
    web.should_exit = True
    await task


async def _close_pipeline(pipeline: IngestPipeline, timeout_s: float) -> None:
    await asyncio.to_thread(pipeline.close, timeout_s)


async def _start_grpc(config: Config, receiver: MetricsReceiver, agent_service: AgentService,
                      tls: ServerTLS | None, guard: CallGuard) -> tuple[grpc.aio.Server, str]:
    limit = config["server.ingest.max_message_bytes"]
    server = grpc.aio.server(interceptors=[GuardInterceptor(guard)], options=[
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        # gRPC sets SO_REUSEPORT by default, so a second server on a busy port would start
        # and take a share of the agents. Without it, a busy port fails the start.
        ("grpc.so_reuseport", 0),
    ])
    server.add_generic_rpc_handlers((metrics_service_handler(receiver),))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(agent_service, server)
    listen = config["server.grpc.listen"]
    try:
        port = server.add_secure_port(listen, tls.grpc_credentials()) if tls else server.add_insecure_port(listen)
    except RuntimeError:
        port = 0
    if not port:
        await server.stop(None)
        raise StartupError(f"cannot listen on {listen} for gRPC: the address is in use or not local; "
                           "change server.grpc.listen (--grpc-listen)")
    await server.start()
    host, _ = split_host_port(listen)
    return server, join_host_port(host, port)


def _prepare_tls(config: Config) -> ServerTLS | None:
    try:
        return prepare_server_tls(config)
    except (CertificateError, OSError) as error:
        raise StartupError(f"cannot set up TLS: {error}") from None


def _call_guard(config: Config, tokens: TokenStore, tls: ServerTLS | None, metrics: ServerMetrics,
                api_tokens: ApiTokenCheck) -> CallGuard:
    try:
        revocations = tls.revocation_list() if tls else None
    except CertificateError as error:
        raise StartupError(f"cannot read the certificate revocation list: {error}; fix or remove it "
                           "(server.tls.crl_file)") from None
    return CallGuard(tokens, token_required_on=token_required_on(config), revocations=revocations,
                     registry=metrics.registry, api_tokens=api_tokens)


def _bind(listen: str, setting: str) -> socket.socket:
    host, port = split_host_port(listen)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise StartupError(f"cannot resolve {host!r} from {setting}: {error}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise StartupError(f"cannot listen on {listen}: {error.strerror}; change {setting}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _make_files_private(data_dir: Path) -> None:
    """Take group and other access from the data directory's files, as from files of older versions."""
    opened = []
    for path in data_dir.iterdir():
        try:
            status = path.lstat()
            if stat.S_ISREG(status.st_mode) and status.st_mode & 0o077 and status.st_uid == os.geteuid():
                path.chmod(stat.S_IMODE(status.st_mode) & 0o700)
                opened.append(path.name)
        except OSError as error:
            log.warning("cannot make a data file private", extra={"fields": {"path": str(path), "error": str(error)}})
    if opened:
        log.warning("made data files readable by their owner only; they were open to other users",
                    extra={"fields": {"files": sorted(opened)}})


def _open_meta(path: Path) -> MetaStore:
    try:
        return MetaStore(path)
    except sqlite3.Error as error:
        raise StartupError(f"cannot open the metadata database {path}: {error}. It contains users, tokens and "
                           "endpoints: restore it from a backup, or move it away to start without them") from None


def _open_store(data_dir: Path, chunk_cache_bytes: int) -> MetricStore:
    path = data_dir / "metrics.duckdb"
    try:
        return MetricStore(path, chunk_cache_bytes=chunk_cache_bytes)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            advice = ("another gosight server may be using this data directory, so stop it or set a different "
                      "data_dir (--data-dir)")
        else:
            advice = "the file may be damaged: restore it from a backup, or move it away to start with no metrics"
        raise StartupError(f"cannot open the metric store {path}: {error}; {advice}") from None
    except duckdb.Error as error:
        raise StartupError(f"cannot open the metric store {path}: {error}; the file may be damaged: restore it "
                           "from a backup, or move it away to start with no metrics") from None


def _ensure_data_dir(path: Path) -> Path:
    try:
        return ensure_data_dir(path)
    except DataDirError as error:
        raise StartupError(str(error)) from None


async def _flush_endpoints_periodically(endpoints: EndpointRegistry) -> None:
    while True:
        await asyncio.sleep(ENDPOINT_FLUSH_S)
        try:
            await asyncio.to_thread(endpoints.flush)
        except Exception as error:  # noqa: BLE001 - presence is saved again on the next turn
            log.error("saving endpoints failed", extra={"fields": {"error": str(error)}})
