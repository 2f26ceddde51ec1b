"""Enforce the permission every route declares, for HTTP requests and WebSockets alike.

The middleware runs before routing. It finds the route that will handle the request
(the same first-full-match rule as Starlette's router), reads the permission that
`route`, `websocket` or `mount` attached to it, and lets the request through only
when the caller holds it. A route without a declared permission is refused. Public
routes run for anyone. Ingest (`metrics:write`) keeps the agent token model: an API
token with `metrics:write` is checked here, and anything else goes on to the
receiver's own agent-token guard, so anonymous loopback ingest still works when
`server.auth.require_agent_token` allows it.

Requests signed in with a session cookie must, when they change state, carry the
session's CSRF token in `X-CSRF-Token` and an Origin header naming this server.
WebSocket handshakes with a cookie must come from this server's origin.
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gosight.auth.service import SAFE_METHODS, AuthFailure, AuthService, Principal, is_pending
from gosight.auth.store import STAGE_ENROLL, TOKEN_PREFIX, NotFound
from gosight.security.tokens import TOKEN_PREFIX as AGENT_TOKEN_PREFIX
from gosight.server.api.errors import error_response
from gosight.server.routing import PUBLIC, permission_of

log = logging.getLogger(__name__)

PRINCIPAL_KEY = "gosight.principal"
INGEST_PERMISSION = "metrics:write"
# HTTP Basic with a local account is accepted on these paths only: what Grafana and Prometheus read.
BASIC_PATHS = ("/prometheus/", "/metrics")
_NO_ROUTE = object()


def principal_of(connection: HTTPConnection) -> Principal | None:
    return connection.scope.get(PRINCIPAL_KEY)


def required_permission(routes: list[BaseRoute], scope: Scope) -> object:
    """Return the permission of the route that will handle `scope`, None if it declares none, or _NO_ROUTE."""
    partial = None
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return permission_of(candidate)
        if match == Match.PARTIAL and partial is None:
            partial = candidate
    return permission_of(partial) if partial is not None else _NO_ROUTE


class AuthMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        permission = required_permission(scope["app"].router.routes, scope)
        if permission is _NO_ROUTE or permission == PUBLIC:
            await self.app(scope, receive, send)
            return
        service: AuthService | None = getattr(scope["app"].state, "auth", None)
        try:
            principal = await self._authorize(service, HTTPConnection(scope), permission)
        except AuthFailure as failure:
            await _deny(scope, receive, send, failure)
            return
        if principal is not None:
            scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)

    async def _authorize(self, service: AuthService | None, connection: HTTPConnection,
                         permission: object) -> Principal | None:
        if permission is None:
            raise AuthFailure(403, f"route {connection.url.path} declares no permission, so nobody may use it")
        if service is None:
            raise AuthFailure(503, "this server has no user store, so only public routes respond")
        if permission == INGEST_PERMISSION:
            return await _ingest_principal(service, connection)
        if not await service.users_exist():
            raise AuthFailure(401, "no user account exists yet: open the setup link from the server log (the line "
                                   "'first start: open the setup link'), or run 'gosight user add --admin NAME' on "
                                   "the server", code="setup_required")
        principal = await _principal(service, connection)
        if principal is None:
            raise AuthFailure(401, "sign in first, or send an API token as 'Authorization: Bearer <token>'",
                              code="unauthenticated")
        if permission not in principal.permissions:
            raise _forbidden(principal, str(permission))
        if principal.kind == "session":
            _check_csrf(service, connection, principal)
        return principal


async def access_problem(connection: HTTPConnection, permission: str) -> str | None:
    """Check a long-lived connection's credentials again; return None while they still grant `permission`.

    Otherwise return why access ended, in words for the user.
    """
    service: AuthService | None = getattr(connection.app.state, "auth", None)
    if service is None:
        return None
    try:
        principal = await _principal(service, connection)
    except AuthFailure as failure:
        return failure.message
    if principal is None:
        return "sign in again"
    if permission not in principal.permissions:
        return f"your account no longer holds the {permission} permission"
    return None


async def _principal(service: AuthService, connection: HTTPConnection) -> Principal | None:
    authorization = connection.headers.get("authorization")
    try:
        if authorization:
            scheme, _, credentials = authorization.strip().partition(" ")
            scheme = scheme.lower()
            credentials = credentials.strip()
            if scheme == "bearer":
                if credentials.startswith(AGENT_TOKEN_PREFIX):
                    raise AuthFailure(401, "agent tokens only send metrics; for the APIs create an API token on "
                                           "your account page or with 'gosight user token'", code="invalid_token")
                return service.remembered_principal("token", credentials) or \
                    await service.run(service.token_principal, credentials)
            if scheme == "basic":
                path = connection.url.path
                if not any(path == prefix.rstrip("/") or path.startswith(prefix) for prefix in BASIC_PATHS):
                    raise AuthFailure(401, "Basic authentication is accepted on /prometheus/api/v1 and /metrics "
                                           "only; use an API token as a Bearer token elsewhere")
                client = connection.client.host if connection.client else ""
                return await service.run(service.basic_principal, credentials, client)
            raise AuthFailure(401, f"unsupported authorization scheme {scheme!r}; send 'Bearer <API token>' or, on "
                                   "the Prometheus API, Basic credentials")
        cookie = connection.cookies.get(service.cookie_name)
        if cookie:
            return service.remembered_principal("session", cookie) or \
                await service.run(service.session_principal, cookie)
    except NotFound:
        raise AuthFailure(401, "the account behind these credentials no longer exists", code="invalid_token") \
            from None
    return None


async def _ingest_principal(service: AuthService, connection: HTTPConnection) -> Principal | None:
    """Check an API token sent to an ingest route; leave agent tokens and anonymous senders to the receiver."""
    authorization = connection.headers.get("authorization", "")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip().startswith(TOKEN_PREFIX):
        if scheme.lower() == "basic":
            raise AuthFailure(401, "sending metrics takes an agent token or an API token with metrics:write, "
                                   "not Basic credentials")
        return None
    try:
        principal = service.remembered_principal("token", credentials.strip()) or \
            await service.run(service.token_principal, credentials.strip())
    except NotFound:
        raise AuthFailure(401, "the account behind this API token no longer exists", code="invalid_token") from None
    if INGEST_PERMISSION not in principal.permissions:
        raise _forbidden(principal, INGEST_PERMISSION)
    return principal


def _forbidden(principal: Principal, permission: str) -> AuthFailure:
    if is_pending(principal):
        if principal.stage == STAGE_ENROLL:
            return AuthFailure(403, "set up two-factor authentication first: this server requires it",
                               code="mfa_enrollment_required")
        return AuthFailure(403, "enter your two-factor code first", code="mfa_required")
    if principal.kind == "token":
        return AuthFailure(403, f"this API token lacks the permission {permission}; create a token that carries it "
                                f"(your role {principal.user.role!r} must grant it too)", code="forbidden")
    return AuthFailure(403, f"the permission {permission} is needed, and your role {principal.user.role!r} does "
                            "not grant it; ask an admin", code="forbidden")


def _check_csrf(service: AuthService, connection: HTTPConnection, principal: Principal) -> None:
    origin = connection.headers.get("origin", "")
    scheme = connection.url.scheme.replace("ws", "http", 1)
    host = connection.headers.get("host", "")
    if connection.scope["type"] == "websocket":
        if origin and not service.origin_allowed(origin, scheme, host):
            raise AuthFailure(403, f"WebSocket from origin {origin!r} refused: only this server's pages may connect "
                                   "with a session", code="csrf_failed")
        return
    if connection.scope["method"] in SAFE_METHODS:
        return
    if not service.origin_allowed(origin, scheme, host):
        raise AuthFailure(403, "cross-site request refused: a signed-in browser request that changes something must "
                               "carry an Origin header naming this server (set server.auth.public_url when a proxy "
                               "changes the address)", code="csrf_failed")
    sent = connection.headers.get("x-csrf-token", "")
    assert principal.session is not None
    if not sent or not hmac.compare_digest(sent.encode(), principal.session.csrf_token.encode()):
        raise AuthFailure(403, "missing or invalid CSRF token: send the X-CSRF-Token header with the csrf_token "
                               "from GET /api/v1/auth/me", code="csrf_failed")


async def _deny(scope: Scope, receive: Receive, send: Send, failure: AuthFailure) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server reject the handshake with 403.
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": failure.message[:120]})
        return
    headers = {"Cache-Control": "no-store"}
    if failure.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="GoSight"'
    if failure.retry_after_s is not None:
        headers["Retry-After"] = str(int(failure.retry_after_s))
    if scope["path"].startswith("/prometheus/"):
        body = {"status": "error", "errorType": failure.code or _PROMETHEUS_TYPES.get(failure.status, "error"),
                "error": failure.message}
        response = JSONResponse(body, status_code=failure.status, headers=headers)
    else:
        response = error_response(failure.status, failure.message, failure.code, headers)
    await response(scope, receive, send)


_PROMETHEUS_TYPES = {401: "unauthorized", 403: "forbidden", 429: "too_many_requests", 503: "unavailable"}
