"""The agent control stream, gosight.v1.AgentService/Connect.

The first message must be Hello; it registers the endpoint and the server answers
Welcome, with the endpoint id the agent's data is stored under. Heartbeats keep the
endpoint online. A new stream from the same agent replaces the old one, which is
cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import re

import grpc

from gosight import __version__
from gosight.security.guard import AGENT_ID_HEADER, Principal, current_principal
from gosight.server.endpoints import EndpointRegistry, report_conflict
from gosight.server.selfmetrics import ServerMetrics
from gosight.wire import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)

AGENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
ENDPOINT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,160}$")


class AgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, endpoints: EndpointRegistry, metrics: ServerMetrics, heartbeat_interval_s: float = 5.0):
        self.endpoints = endpoints
        self.metrics = metrics
        self.heartbeat_interval_s = heartbeat_interval_s
        self._streams: dict[str, asyncio.Task] = {}

    async def Connect(self, request_iterator, context: grpc.aio.ServicerContext):  # noqa: N802 - gRPC method name
        first = await _next(request_iterator)
        if first is None:
            return
        if first.WhichOneof("kind") != "hello":
            await self._reject(context, "no_hello", grpc.StatusCode.FAILED_PRECONDITION,
                               "the first message on the control stream must be hello; this agent is unknown "
                               "to the server until it sends hello with its agent_id")
        hello = first.hello
        problem = _check_hello(hello)
        if problem:
            await self._reject(context, "invalid_hello", grpc.StatusCode.INVALID_ARGUMENT, problem)
        # A token bound to an agent was checked against the call's gosight-agent-id header, so hello must match it.
        principal = current_principal() or Principal()
        if principal.agent_id is not None and hello.agent_id != principal.agent_id:
            await self._reject(context, "agent_id_mismatch", grpc.StatusCode.PERMISSION_DENIED,
                               f"hello names agent {hello.agent_id}, but the call's {AGENT_ID_HEADER} header names "
                               f"agent {principal.agent_id}; both must carry the same agent id")

        agent_id = hello.agent_id
        self._replace_stream(agent_id)
        claim = self.endpoints.hello(hello.endpoint_id, agent_id, hello.hostname, dict(hello.labels), _facts(hello))
        # Differs from hello.endpoint_id when another agent already uses that id, as on a cloned machine.
        endpoint_id = claim.endpoint_id
        for conflict in claim.conflicts:
            report_conflict(conflict, self.metrics)
        self.metrics.control_streams.inc()
        fields = {"agent_id": agent_id, "endpoint_id": endpoint_id, "hostname": hello.hostname, "peer": context.peer(),
                  **principal.log_fields()}
        if endpoint_id != hello.endpoint_id:
            fields["claimed_endpoint_id"] = hello.endpoint_id
        log.info("agent connected", extra={"fields": fields})

        goodbye = False
        try:
            yield agent_pb2.ServerMessage(welcome=agent_pb2.Welcome(
                server_version=__version__, heartbeat_interval_s=self.heartbeat_interval_s, endpoint_id=endpoint_id))
            while True:
                message = await _next(request_iterator)
                if message is None:
                    break
                kind = message.WhichOneof("kind")
                if kind == "heartbeat":
                    self.endpoints.heartbeat(endpoint_id, _heartbeat_facts(message.heartbeat))
                    if message.heartbeat.HasField("containers"):
                        self._containers_listed(endpoint_id, message.heartbeat)
                elif kind == "goodbye":
                    goodbye = True
                    break
                elif kind == "hello":
                    await self._reject(context, "second_hello", grpc.StatusCode.FAILED_PRECONDITION,
                                       "hello may be sent only once per control stream; open a new stream")
        finally:
            self.metrics.control_streams.dec()
            self.endpoints.disconnected(endpoint_id, goodbye)
            if self._streams.get(agent_id) is asyncio.current_task():
                del self._streams[agent_id]
            log.info("agent disconnected", extra={"fields": {
                "agent_id": agent_id, "endpoint_id": endpoint_id, "goodbye": goodbye}})

    def _containers_listed(self, endpoint_id: str, heartbeat: agent_pb2.Heartbeat) -> None:
        listed = [item for item in heartbeat.containers.endpoint_ids if ENDPOINT_ID_RE.match(item)]
        listed_ms = heartbeat.time_unix_ms or self.endpoints.now_ms()
        removed = self.endpoints.containers_listed(endpoint_id, listed, listed_ms)
        if removed:
            log.info("containers removed", extra={"fields": {
                "endpoint_id": endpoint_id, "containers": ",".join(removed)}})

    def close_all(self) -> None:
        """Cancel every open stream, so shutdown does not wait for agents to hang up."""
        for task in list(self._streams.values()):
            task.cancel()

    def _replace_stream(self, agent_id: str) -> None:
        previous = self._streams.get(agent_id)
        if previous is not None and not previous.done():
            previous.cancel()
            log.info("agent stream replaced by a newer one", extra={"fields": {"agent_id": agent_id}})
        self._streams[agent_id] = asyncio.current_task()

    async def _reject(self, context: grpc.aio.ServicerContext, reason: str, code: grpc.StatusCode,
                      message: str) -> None:
        self.metrics.control_rejections.labels(reason).inc()
        log.warning("control stream rejected", extra={"fields": {"reason": reason, "peer": context.peer()}})
        await context.abort(code, message)


async def _next(request_iterator):
    try:
        return await request_iterator.__anext__()
    except StopAsyncIteration:
        return None


def _check_hello(hello: agent_pb2.Hello) -> str | None:
    if not AGENT_ID_RE.match(hello.agent_id):
        return (f"invalid agent_id {hello.agent_id[:80]!r} in hello: expected 1 to 128 letters, digits, "
                "'.', '_' or '-'")
    if not ENDPOINT_ID_RE.match(hello.endpoint_id):
        return (f"invalid endpoint_id {hello.endpoint_id[:80]!r} in hello: expected 1 to 160 letters, digits, "
                "'.', '_', ':' or '-'")
    if len(hello.labels) > 64:
        return f"hello carries {len(hello.labels)} labels; at most 64 are allowed"
    return None


def _facts(hello: agent_pb2.Hello) -> dict[str, str]:
    facts = {
        "os": hello.os, "os_version": hello.os_version, "platform": hello.platform,
        "kernel_version": hello.kernel_version, "arch": hello.arch, "agent_version": hello.agent_version,
        "host_id": hello.host_id,
    }
    if hello.boot_time_unix_ms:
        facts["boot_time_unix_ms"] = str(hello.boot_time_unix_ms)
    if hello.start_time_unix_ms:
        facts["agent_start_time_unix_ms"] = str(hello.start_time_unix_ms)
    if hello.interval_s:
        facts["interval_s"] = f"{hello.interval_s:g}"
    if hello.collectors:
        facts["collectors"] = ",".join(hello.collectors)
    return {key: value for key, value in facts.items() if value}


def _heartbeat_facts(heartbeat: agent_pb2.Heartbeat) -> dict[str, str]:
    return {
        "spool_batches": str(heartbeat.spool_batches),
        "spool_bytes": str(heartbeat.spool_bytes),
        "dropped_batches": str(heartbeat.dropped_batches),
    }
