"""Authentication of agent calls on the server: tokens, token binding, revoked certificates.

Every gRPC call passes through `GuardInterceptor`, and POST /v1/metrics calls
`CallGuard.authenticate` itself, before anything is decoded or stored. A missing,
unknown, expired or revoked token and a revoked client certificate get UNAUTHENTICATED.
A token bound to another agent gets PERMISSION_DENIED. Every rejected call is counted in
`gosight_auth_rejected_requests_total`. Tokens never reach the log, but token ids do.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import ipaddress
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from cryptography import x509
from prometheus_client import Counter

from gosight.config import Config, split_host_port
from gosight.logconfig import Throttle
from gosight.security import certs
from gosight.security.headers import AGENT_ID_HEADER, AUTHORIZATION_HEADER
from gosight.security.revocation import RevocationList
from gosight.security.tokens import ACTIVE, EXPIRED, REVOKED, TokenRecord, TokenStore, now_ms

log = logging.getLogger(__name__)

GRPC = "grpc"
HTTP = "http"

UNAUTHENTICATED = "unauthenticated"
PERMISSION_DENIED = "permission_denied"
INVALID_ARGUMENT = "invalid_argument"

OTLP_EXPORT_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
# User API tokens start with this; agent tokens with gst_.
API_TOKEN_PREFIX = "gsu_"
# Checks a user API token for sending metrics: returns the user's name, or raises CallRejected.
ApiTokenCheck = Callable[[str], Awaitable[str]]

_GRPC_CODES = {
    UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
}
_AGENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# last_used_ms is written at most this often per token, so busy agents do not turn reads into writes.
TOUCH_INTERVAL_MS = 60_000
_SERIAL_CACHE_SIZE = 4096

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("gosight_principal", default=None)


class CallRejected(Exception):
    """The rejection of one call: `status` is one of the constants above, and `message` goes to the caller."""

    def __init__(self, status: str, reason: str, message: str, token_id: str | None = None,
                 client_cert_serial: int | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.token_id = token_id
        self.client_cert_serial = client_cert_serial

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_CODES[self.status]


@dataclass(frozen=True)
class Principal:
    """The identity behind one call: its token and client certificate, when it presented them."""

    token_id: str | None = None
    token_name: str = ""
    agent_id: str | None = None
    cert_serial: int | None = None
    cert_name: str = ""

    def log_fields(self) -> dict[str, str]:
        fields = {}
        if self.token_id:
            fields["token_id"] = self.token_id
        if self.cert_serial is not None:
            fields["client_cert"] = self.cert_name
            fields["client_cert_serial"] = certs.format_serial(self.cert_serial)
        return fields


def token_required_on(config: Config) -> frozenset[str]:
    """Return the transports (GRPC, HTTP) on which server.auth.require_agent_token demands a token."""
    mode = config["server.auth.require_agent_token"]
    if mode == "true":
        return frozenset({GRPC, HTTP})
    if mode == "false":
        return frozenset()
    required = set()
    for transport, setting in ((GRPC, "server.grpc.listen"), (HTTP, "server.http.listen")):
        host, _ = split_host_port(config[setting])
        if not is_loopback(host):
            required.add(transport)
    return frozenset(required)


def is_loopback(host: str) -> bool:
    """Return whether `host` is a loopback name or address; other names count as reachable from outside."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def current_principal() -> Principal | None:
    """Return the principal of the gRPC call being handled, set by GuardInterceptor."""
    return _principal.get()


class CallGuard:
    """Decide whether a call may proceed, from its token, agent id and client certificate."""

    def __init__(self, tokens: TokenStore | None, *, token_required_on: frozenset[str],
                 revocations: RevocationList | None = None, registry=None,
                 api_tokens: ApiTokenCheck | None = None):
        self.tokens = tokens
        self.api_tokens = api_tokens
        self.token_required_on = token_required_on
        self.revocations = revocations
        self.rejections = Counter("gosight_auth_rejected_requests", "Calls rejected by authentication, by "
                                  "transport and reason.", ["transport", "reason"], registry=registry)
        self._serials: OrderedDict[bytes, tuple[int, str]] = OrderedDict()
        self._touched: dict[str, int] = {}
        self._throttle = Throttle(60.0)

    async def authenticate(self, transport: str, authorization: str | None, agent_id: str | None,
                           client_cert_pem: bytes | None, peer: str, *, ingest_only: bool = False) -> Principal:
        """Return the caller's principal, or raise CallRejected after counting and logging it.

        `ingest_only` marks a call that only sends metrics, where a user's API token with
        metrics:write may stand in for an agent token.
        """
        try:
            serial, cert_name = self._check_certificate(client_cert_pem)
            api_token = _api_token(authorization)
            if api_token is not None:
                name = await self._check_api_token(api_token, ingest_only)
                return Principal(token_name=name, agent_id=agent_id, cert_serial=serial, cert_name=cert_name)
            record = self._check_token(transport, authorization)
            bound_agent = await self._check_agent(record, agent_id)
        except CallRejected as rejection:
            self._report(transport, rejection, peer)
            raise
        if record is not None:
            await self._touch(record)
        return Principal(token_id=record.token_id if record else None, token_name=record.name if record else "",
                         agent_id=bound_agent or agent_id, cert_serial=serial, cert_name=cert_name)

    def recheck(self, transport: str, principal: Principal, peer: str) -> None:
        """Check again that a long-lived call's token and certificate are still valid; raise CallRejected if not."""
        try:
            if principal.cert_serial is not None and self.revocations is not None:
                if self.revocations.is_revoked(principal.cert_serial):
                    raise _revoked_certificate(principal.cert_serial, principal.cert_name)
            if principal.token_id is not None and self.tokens is not None:
                try:
                    record = self.tokens.get(principal.token_id)
                except KeyError:
                    raise CallRejected(
                        UNAUTHENTICATED, "unknown_token",
                        "agent token was deleted; create a new one with 'gosight token create'",
                        principal.token_id) from None
                _check_status(record)
        except CallRejected as rejection:
            self._report(transport, rejection, peer)
            raise

    async def _check_api_token(self, token: str, ingest_only: bool) -> str:
        if not ingest_only or self.api_tokens is None:
            raise CallRejected(UNAUTHENTICATED, "api_token_not_accepted",
                               "API tokens only send metrics (OTLP Export); the agent's control stream needs an agent "
                               "token, made with 'gosight token create' on the server")
        return await self.api_tokens(token)

    def _check_certificate(self, pem: bytes | None) -> tuple[int | None, str]:
        if pem is None:
            return None, ""
        serial, name = self._serial_of(pem)
        if self.revocations is not None and self.revocations.is_revoked(serial):
            raise _revoked_certificate(serial, name)
        return serial, name

    def _serial_of(self, pem: bytes) -> tuple[int, str]:
        # Agents keep their connection, so the same certificate arrives on every call: parse it once.
        cached = self._serials.get(pem)
        if cached is not None:
            self._serials.move_to_end(pem)
            return cached
        cert = x509.load_pem_x509_certificate(pem)
        cached = (cert.serial_number, certs.common_name(cert))
        self._serials[pem] = cached
        if len(self._serials) > _SERIAL_CACHE_SIZE:
            self._serials.popitem(last=False)
        return cached

    def _check_token(self, transport: str, authorization: str | None) -> TokenRecord | None:
        if not authorization:
            if transport in self.token_required_on:
                raise CallRejected(
                    UNAUTHENTICATED, "missing_token",
                    "missing agent token: this server requires 'authorization: Bearer <token>' on every call; create "
                    "a token with 'gosight token create' on the server and give it to the agent with agent.token_file")
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise CallRejected(UNAUTHENTICATED, "malformed_authorization",
                               "malformed authorization header: expected 'Bearer <token>'")
        record = self.tokens.lookup(token) if self.tokens is not None else None
        if record is None:
            raise CallRejected(
                UNAUTHENTICATED, "unknown_token",
                "unknown agent token: no token on this server matches; check the agent's agent.token_file or create "
                "a token with 'gosight token create' on the server")
        _check_status(record)
        return record

    async def _check_agent(self, record: TokenRecord | None, agent_id: str | None) -> str | None:
        if agent_id is not None and not _AGENT_ID_RE.match(agent_id):
            raise CallRejected(
                INVALID_ARGUMENT, "invalid_agent_id",
                f"invalid {AGENT_ID_HEADER} header {agent_id[:80]!r}: expected 1 to 128 letters, digits, '.', '_' or "
                "'-'", record.token_id if record else None)
        if record is None or not record.bind_agent:
            return None
        if agent_id is None:
            raise CallRejected(
                PERMISSION_DENIED, "missing_agent_id",
                f"agent token {record.token_id} is bound to one agent, so the call must carry the {AGENT_ID_HEADER} "
                "header that GoSight agents send", record.token_id)
        bound = record.agent_id
        if bound is None:
            bound = await asyncio.to_thread(self.tokens.bind, record.token_id, agent_id)
            if bound == agent_id:
                log.info("agent token bound to its first agent", extra={"fields": {
                    "token_id": record.token_id, "agent_id": agent_id}})
        if bound != agent_id:
            raise CallRejected(
                PERMISSION_DENIED, "token_bound_to_other_agent",
                f"agent token {record.token_id} is bound to agent {bound} and cannot be used by agent {agent_id}; "
                "create one token per agent with 'gosight token create --bind-agent'", record.token_id)
        return bound

    async def _touch(self, record: TokenRecord) -> None:
        now = now_ms()
        last = max(record.last_used_ms or 0, self._touched.get(record.token_id, 0))
        if now - last < TOUCH_INTERVAL_MS:
            return
        self._touched[record.token_id] = now
        try:
            await asyncio.to_thread(self.tokens.touch, record.token_id, now)
        except Exception as error:  # noqa: BLE001 - a missed last-used time must not reject a valid call
            log.warning("recording token use failed", extra={"fields": {
                "token_id": record.token_id, "error": str(error)}})

    def _report(self, transport: str, rejection: CallRejected, peer: str) -> None:
        self.rejections.labels(transport, rejection.reason).inc()
        suppressed = self._throttle.allow((transport, rejection.reason, rejection.token_id))
        if suppressed is None:
            return
        fields = {"transport": transport, "reason": rejection.reason, "peer": peer, "suppressed": suppressed}
        if rejection.token_id:
            fields["token_id"] = rejection.token_id
        if rejection.client_cert_serial is not None:
            fields["client_cert_serial"] = certs.format_serial(rejection.client_cert_serial)
        log.warning("call rejected", extra={"fields": fields})


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Authenticate every gRPC call before its handler runs, and re-check streams on each message."""

    def __init__(self, guard: CallGuard):
        self.guard = guard

    async def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        serializers = {"request_deserializer": handler.request_deserializer,
                       "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(self._stream_stream(handler.stream_stream, method), **serializers)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(self._stream_unary(handler.stream_unary, method), **serializers)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(self._unary_stream(handler.unary_stream, method), **serializers)
        return grpc.unary_unary_rpc_method_handler(self._unary_unary(handler.unary_unary, method), **serializers)

    def _unary_unary(self, behavior: Callable, method: str) -> Callable:
        async def checked(request, context: grpc.aio.ServicerContext):
            await self._authenticate(context, method)
            return await behavior(request, context)

        return checked

    def _unary_stream(self, behavior: Callable, method: str) -> Callable:
        async def checked(request, context: grpc.aio.ServicerContext):
            await self._authenticate(context, method)
            async for response in behavior(request, context):
                yield response

        return checked

    def _stream_unary(self, behavior: Callable, method: str) -> Callable:
        async def checked(request_iterator, context: grpc.aio.ServicerContext):
            principal = await self._authenticate(context, method)
            return await behavior(self._rechecked(request_iterator, context, principal), context)

        return checked

    def _stream_stream(self, behavior: Callable, method: str) -> Callable:
        async def checked(request_iterator, context: grpc.aio.ServicerContext):
            principal = await self._authenticate(context, method)
            async for response in behavior(self._rechecked(request_iterator, context, principal), context):
                yield response

        return checked

    async def _rechecked(self, request_iterator, context: grpc.aio.ServicerContext, principal: Principal):
        """Yield the client's messages, checking before each that its token and certificate are still valid.

        A revoked token or certificate thereby also ends streams opened before the revocation.
        """
        async for message in request_iterator:
            try:
                self.guard.recheck(GRPC, principal, context.peer())
            except CallRejected as rejection:
                await context.abort(rejection.grpc_code, rejection.message)
            yield message

    async def _authenticate(self, context: grpc.aio.ServicerContext, method: str) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        pem = (context.auth_context().get("x509_pem_cert") or [None])[0]
        try:
            principal = await self.guard.authenticate(GRPC, _text(metadata.get(AUTHORIZATION_HEADER)),
                                                      _text(metadata.get(AGENT_ID_HEADER)), pem, context.peer(),
                                                      ingest_only=method == OTLP_EXPORT_METHOD)
        except CallRejected as rejection:
            await context.abort(rejection.grpc_code, rejection.message)
        _principal.set(principal)
        return principal


def _api_token(authorization: str | None) -> str | None:
    """Return the user API token in an authorization value, or None for anything else."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token.startswith(API_TOKEN_PREFIX) else None


def _check_status(record: TokenRecord) -> None:
    status = record.status(now_ms())
    if status == ACTIVE:
        return
    if status == REVOKED:
        raise CallRejected(
            UNAUTHENTICATED, "revoked_token",
            f"agent token {record.token_id} was revoked; create a new one with 'gosight token create' on the server, "
            "write it to the agent's agent.token_file and restart the agent",
            record.token_id)
    if status == EXPIRED:
        raise CallRejected(
            UNAUTHENTICATED, "expired_token",
            f"agent token {record.token_id} expired at {_iso(record.expires_ms)}; create a new one with "
            "'gosight token create' on the server, write it to the agent's agent.token_file and restart the agent",
            record.token_id)


def _revoked_certificate(serial: int, name: str) -> CallRejected:
    return CallRejected(
        UNAUTHENTICATED, "revoked_certificate",
        f"client certificate {name!r} (serial {certs.format_serial(serial)}) was revoked; issue a new one with "
        "'gosight certs issue' on the server", client_cert_serial=serial)


def _text(value: str | bytes | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace")


def _iso(ms: int | None) -> str:
    if ms is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
