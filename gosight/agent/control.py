"""The agent side of the control stream: hello, heartbeats, goodbye, reconnects.

Runs as a coroutine on the agent's transport event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import grpc

from gosight import __version__
from gosight.agent.exporter import Backoff
from gosight.agent.identity import Identity
from gosight.logconfig import Throttle
from gosight.wire import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)

_REFUSALS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
             grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


class ControlClient:
    """Keeps one control stream open, reconnecting with backoff until stopped."""

    def __init__(self, channel: grpc.aio.Channel, identity: Identity, *, interval_s: float, heartbeat_s: float,
                 collectors: list[str], backoff: Backoff, stats: Callable[[], agent_pb2.Heartbeat],
                 metadata: tuple[tuple[str, str], ...] = (),
                 hint: Callable[[str], str | None] = lambda details: None):
        """`hint` turns a connection error's details into advice for the log, or None."""
        self.identity = identity
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.collectors = collectors
        self.backoff = backoff
        self.stats = stats
        self.metadata = metadata
        self.hint = hint
        self.start_time_ms = int(time.time() * 1000)
        self.welcomed = False
        self._stub = agent_pb2_grpc.AgentServiceStub(channel)
        self._stopping = asyncio.Event()
        self._throttle = Throttle(60.0)
        # The endpoint id in the server's latest Welcome, when it differs from the agent's own.
        self._stored_as = ""

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

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._stream_once()
            except grpc.aio.AioRpcError as error:
                self._report(error)
            self.welcomed = False
            if self._stopping.is_set():
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.backoff.next_delay())

    def stop(self) -> None:
        """Ask the loop to say goodbye on the open stream and stop reconnecting."""
        self._stopping.set()

    async def _stream_once(self) -> None:
        call = self._stub.Connect(metadata=self.metadata)
        reader = asyncio.ensure_future(self._read(call))
        try:
            await call.write(agent_pb2.AgentMessage(hello=self.hello()))
            while not reader.done():
                # Waking on the reader too reports a refused stream at once, not one heartbeat later.
                stopping = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({reader, stopping}, timeout=self.heartbeat_s,
                                   return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if reader.done():
                    break
                if self._stopping.is_set():
                    await call.write(agent_pb2.AgentMessage(goodbye=agent_pb2.Goodbye(reason="agent shutting down")))
                    await call.done_writing()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), 2.0)
                    return
                await call.write(agent_pb2.AgentMessage(heartbeat=self.stats()))
            await reader
        finally:
            reader.cancel()
            call.cancel()
            # A server that rejects the call at once fails the write above and the reader alike. The write's
            # error is reported, and the reader's is retrieved here so asyncio does not log it with a traceback.
            await asyncio.wait({reader})
            if not reader.cancelled():
                reader.exception()

    async def _read(self, call) -> None:
        async for message in call:
            if message.WhichOneof("kind") == "welcome":
                self.backoff.reset()
                if not self.welcomed:
                    log.info("connected to server", extra={"fields": {
                        "server_version": message.welcome.server_version,
                        "endpoint_id": message.welcome.endpoint_id}})
                    self._check_endpoint_id(message.welcome.endpoint_id)
                self.welcomed = True

    def _check_endpoint_id(self, stored_as: str) -> None:
        """Warn once when the server stores this agent's data under an endpoint id other than its own."""
        # Servers older than this check leave the field empty.
        if not stored_as or stored_as == self.identity.endpoint_id or stored_as == self._stored_as:
            return
        self._stored_as = stored_as
        machine_id_file = self.identity.machine_id_file
        origin = f"the machine id in {machine_id_file}" if machine_id_file else "this endpoint id"
        log.warning("endpoint id in use by another agent; the server stores this agent's data under a different one",
                    extra={"fields": {
                        "endpoint_id": self.identity.endpoint_id, "stored_as": stored_as,
                        "machine_id_file": machine_id_file,
                        "hint": f"another agent reports {origin}; if this machine was cloned from another, delete "
                                "/etc/machine-id, run systemd-machine-id-setup and restart the agent, or set "
                                "agent.machine_id_file to a file holding an id of its own"}})

    def _report(self, error: grpc.aio.AioRpcError) -> None:
        code = error.code()
        if code in _REFUSALS:
            log.error("server refused this agent's control stream", extra={"fields": {
                "code": code.name, "error": error.details()}})
            return
        suppressed = self._throttle.allow(code)
        if suppressed is not None:
            fields = {"code": code.name, "error": error.details(), "suppressed": suppressed}
            hint = self.hint(error.details() or "")
            if hint:
                fields["hint"] = hint
            log.warning("control stream closed; reconnecting", extra={"fields": fields})
