"""The agent side of the control stream: hello, heartbeats, goodbye, reconnects."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from gosight import __version__
from gosight.agent.exporter import Backoff
from gosight.agent.identity import Identity
from gosight.logconfig import Throttle
from gosight.wire import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)

_GOODBYE = object()


class ControlClient:
    """Keeps one control stream open, reconnecting with backoff until stopped."""

    def __init__(self, channel: grpc.Channel, identity: Identity, *, interval_s: float, heartbeat_s: float,
                 collectors: list[str], backoff: Backoff, stats: Callable[[], agent_pb2.Heartbeat],
                 metadata: tuple[tuple[str, str], ...] = ()):
        self.identity = identity
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.collectors = collectors
        self.backoff = backoff
        self.stats = stats
        self.metadata = metadata
        self.start_time_ms = int(time.time() * 1000)
        self.welcomed = threading.Event()
        self._stub = agent_pb2_grpc.AgentServiceStub(channel)
        self._stop = threading.Event()
        self._outbox: queue.Queue = queue.Queue()
        self._call = None
        self._thread: threading.Thread | None = None
        self._throttle = Throttle(60.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gosight-control", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Say goodbye on the open stream, if any, and stop reconnecting."""
        self._stop.set()
        self._outbox.put(_GOODBYE)
        if self._thread is not None:
            self._thread.join(timeout_s)
        call = self._call
        if call is not None and self._thread is not None and self._thread.is_alive():
            call.cancel()

    def hello(self) -> agent_pb2.Hello:
        identity = self.identity
        facts = identity.facts
        return agent_pb2.Hello(
            agent_id=identity.agent_id, endpoint_id=identity.endpoint_id, hostname=identity.hostname,
            host_id=identity.host_id, os=facts.get("os", ""), os_version=facts.get("os_version", ""),
            platform=facts.get("platform", ""), kernel_version=facts.get("kernel_version", ""),
            arch=facts.get("arch", ""), agent_version=__version__, labels=identity.labels,
            boot_time_unix_ms=identity.boot_time_ms, start_time_unix_ms=self.start_time_ms,
            interval_s=self.interval_s, collectors=self.collectors)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stream_once()
            except grpc.RpcError as error:
                self.welcomed.clear()
                if self._stop.is_set():
                    return
                code = error.code()
                suppressed = self._throttle.allow(code)
                if suppressed is not None:
                    log.warning("control stream closed; reconnecting", extra={"fields": {
                        "code": code.name, "error": error.details(), "suppressed": suppressed}})
                if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                            grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                    log.error("server refused this agent's control stream", extra={"fields": {
                        "code": code.name, "error": error.details()}})
            self._stop.wait(self.backoff.next_delay())

    def _stream_once(self) -> None:
        self._drain_outbox()
        call = self._stub.Connect(self._messages(), metadata=self.metadata)
        self._call = call
        try:
            for message in call:
                if message.WhichOneof("kind") == "welcome":
                    self.backoff.reset()
                    if not self.welcomed.is_set():
                        log.info("connected to server", extra={"fields": {
                            "server_version": message.welcome.server_version,
                            "endpoint_id": message.welcome.endpoint_id}})
                    self.welcomed.set()
        finally:
            self._call = None

    def _messages(self) -> Iterator[agent_pb2.AgentMessage]:
        yield agent_pb2.AgentMessage(hello=self.hello())
        while True:
            try:
                item = self._outbox.get(timeout=self.heartbeat_s)
            except queue.Empty:
                item = None
            if item is _GOODBYE:
                yield agent_pb2.AgentMessage(goodbye=agent_pb2.Goodbye(reason="agent shutting down"))
                return
            if self._stop.is_set():
                return
            yield agent_pb2.AgentMessage(heartbeat=self.stats())

    def _drain_outbox(self) -> None:
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            if item is _GOODBYE:
                self._outbox.put(_GOODBYE)
                return
