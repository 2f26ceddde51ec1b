"""Helpers shared by the authentication API handlers: JSON bodies, JSON shapes, events."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request

from gosight.auth.middleware import principal_of
from gosight.auth.service import AuthFailure, AuthService, Principal
from gosight.auth.store import Session, User, UserToken, now_ms
from gosight.server.api.bodies import json_object
from gosight.server.api.endpoints import rfc3339
from gosight.server.api.errors import ApiError

# Responses that carry a secret or a session's CSRF token must not be kept by any cache.
NO_STORE = {"Cache-Control": "no-store"}


def service_of(connection: HTTPConnection) -> AuthService:
    service = getattr(connection.app.state, "auth", None)
    if service is None:
        raise ApiError(503, "this server has no user store")
    return service


def require_principal(request: Request) -> Principal:
    principal = principal_of(request)
    if principal is None:
        # The middleware runs first, so only a route declared public without a sign-in check gets here.
        raise ApiError(401, "sign in first")
    return principal


def client_ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else ""


def user_agent(connection: HTTPConnection) -> str:
    return connection.headers.get("user-agent", "")


def api_error(failure: AuthFailure) -> ApiError:
    headers = {"Retry-After": str(int(failure.retry_after_s))} if failure.retry_after_s is not None else None
    return ApiError(failure.status, failure.message, failure.code, headers)


async def json_body(request: Request) -> dict:
    return await json_object(request)


def text_field(body: dict, name: str, *, required: bool = True, default: str = "") -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"missing {name}")
        return default
    if not isinstance(value, str):
        raise ApiError(400, f"invalid {name}: expected a string")
    return value


def check_origin_if_sent(service: AuthService, request: Request) -> None:
    """Refuse a sign-in form posted from another site (login CSRF); clients without Origin are not browsers."""
    origin = request.headers.get("origin")
    if origin is not None and not service.origin_allowed(origin, request.url.scheme, request.headers.get("host", "")):
        raise ApiError(403, f"cross-site sign-in refused: origin {origin!r} is not this server", code="csrf_failed")


def user_json(user: User) -> dict:
    return {
        "id": user.user_id,
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "disabled": user.disabled,
        "mfa_enabled": user.mfa_enabled,
        "has_password": user.has_password,
        "created": rfc3339(user.created_ms),
        "last_login": rfc3339(user.last_login_ms) if user.last_login_ms else None,
        "password_changed": rfc3339(user.password_changed_ms) if user.password_changed_ms else None,
    }


def session_json(session: Session, current: Session | None) -> dict:
    return {
        "id": session.session_id,
        "current": current is not None and current.session_id == session.session_id,
        "method": session.method,
        "created": rfc3339(session.created_ms),
        "last_seen": rfc3339(session.last_seen_ms),
        "expires": rfc3339(session.expires_ms),
        "client_ip": session.client_ip,
        "user_agent": session.user_agent,
    }


def token_json(record: UserToken) -> dict:
    return {
        "id": record.token_id,
        "name": record.name,
        "permissions": sorted(record.permissions),
        "status": record.status(now_ms()),
        "created": rfc3339(record.created_ms),
        "expires": rfc3339(record.expires_ms),
        "revoked": rfc3339(record.revoked_ms) if record.revoked_ms else None,
        "last_used": rfc3339(record.last_used_ms) if record.last_used_ms else None,
    }


async def record(request: HTTPConnection, event_type: str, *, user: User | None = None,
                 actor: Principal | None = None, **detail: object) -> None:
    service = getattr(request.app.state, "auth", None)
    if service is None:
        return
    await service.run(service.store.record_event, event_type, user=user,
                      actor=actor.user.username if actor else None, client_ip=client_ip(request), **detail)
