"""Routes that declare the permission they need.

Every HTTP and WebSocket route of the server is built with `route` or `websocket`,
which require a permission name; a route without one cannot be built, and a test
walks the application to prove that every route has one. AuthMiddleware
(gosight/auth/middleware.py) checks the permission before the route runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.routing import Mount, Route, WebSocketRoute

# Reachable without signing in: health checks and the web app's static files.
PUBLIC = "public"

PERMISSIONS = {
    PUBLIC: "Anyone, signed in or not.",
    "metrics:read": "Query metrics, series, labels and metadata.",
    "metrics:write": "Send metrics (OTLP, remote write).",
    "endpoints:read": "List endpoints and their details.",
    "system:metrics": "Read the server's own metrics at /metrics.",
    "tokens:manage": "List, create and revoke agent tokens.",
    "endpoints:write": "Change endpoint labels.",
    "dashboards:write": "Create, change and delete dashboards.",
    "alerts:write": "Create, change and delete alert rules.",
    "users:manage": "Create, change and delete users and custom roles; reset their passwords and MFA.",
    "security:read": "Read the security events and the security settings.",
    "security:manage": "Change the security settings, such as requiring MFA for everyone.",
    # Held by every signed-in user; never part of a role or an API token.
    "account": "Manage one's own account: password, sessions, API tokens and MFA.",
    "signin": "Finish signing in: the MFA step, first MFA enrolment and signing out.",
}


def route(path: str, endpoint: Callable, *, permission: str, methods: Sequence[str] = ("GET",),
          name: str | None = None) -> Route:
    _check(permission, path)
    built = Route(path, endpoint, methods=list(methods), name=name)
    built.permission = permission  # type: ignore[attr-defined]
    return built


def websocket(path: str, endpoint: Callable, *, permission: str, name: str | None = None) -> WebSocketRoute:
    _check(permission, path)
    built = WebSocketRoute(path, endpoint, name=name)
    built.permission = permission  # type: ignore[attr-defined]
    return built


def mount(path: str, app: Callable, *, permission: str, name: str | None = None) -> Mount:
    _check(permission, path)
    built = Mount(path, app=app, name=name)
    built.permission = permission  # type: ignore[attr-defined]
    return built


def permission_of(built: object) -> str | None:
    return getattr(built, "permission", None)


def _check(permission: str, path: str) -> None:
    if permission not in PERMISSIONS:
        raise ValueError(f"route {path}: unknown permission {permission!r}; declare it in PERMISSIONS")
