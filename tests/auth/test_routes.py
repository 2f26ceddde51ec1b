"""Every route declares a permission, and a real server enforces it for each role.

The role table sends one real HTTP request per route and method, signed in as a
viewer, an editor, an admin, a user with a custom role, and nobody. Path parameters
name objects that do not exist and bodies are invalid, so an allowed request ends
in 400, 404 or 409 without changing anything; a refused one ends in 401 or 403.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gosight.auth import rbac
from gosight.server.app import core_routes, create_app
from gosight.server.routing import PERMISSIONS, PUBLIC, permission_of
from gosight.server.webapp import WebApp
from tests.auth.conftest import CUSTOM_ROLE, USERS
from tests.auth.support import SessionClient, create_user
from tests.support.processes import Server

# Requests whose effect would disturb the rest of the table; their own tests cover them.
SKIPPED = {("POST", "/api/v1/auth/logout"), ("POST", "/v1/metrics")}
# A body every handler rejects without changing anything (an unknown or invalid field, or a missing one).
INVALID_BODY = {"expires": "not-a-duration", "unknown_field": True}
ROLE_PERMISSIONS = {
    "viewer": rbac.VIEWER_PERMISSIONS,
    "editor": rbac.EDITOR_PERMISSIONS,
    "admin": rbac.grantable_permissions(),
    CUSTOM_ROLE[0]: frozenset(CUSTOM_ROLE[1]),
}
# Permissions that change only one's own account or finish signing in; every signed-in user holds them.
OWN_ACCOUNT = {rbac.ACCOUNT, rbac.SIGNIN}
ADMIN_ONLY = {"users:manage", "tokens:manage", "security:read", "security:manage", "system:metrics"}


def walk(routes: list[BaseRoute], prefix: str = "", inherited: str | None = None):
    """Yield (path, route, permission) for every route, descending into mounts."""
    for route in routes:
        permission = permission_of(route) or inherited
        if isinstance(route, Mount):
            yield prefix + route.path, route, permission
            yield from walk(route.routes, prefix + route.path, permission)
        else:
            yield prefix + getattr(route, "path", ""), route, permission


def app_routes() -> list[BaseRoute]:
    return create_app({}).routes


def test_every_route_declares_a_known_permission():
    walked = list(walk(app_routes()))

    assert len(walked) > 40, "the walk must see the whole application"
    for path, route, permission in walked:
        assert permission is not None, f"route {path} ({type(route).__name__}) declares no permission"
        assert permission in PERMISSIONS, f"route {path} declares unknown permission {permission!r}"


def test_walk_descends_into_mounts():
    inner = Route("/inner", PlainTextResponse, methods=["GET"])
    outer = Mount("/outer", routes=[inner])
    outer.permission = "metrics:read"  # type: ignore[attr-defined]

    walked = [(path, permission) for path, _, permission in walk([outer])]

    assert walked == [("/outer", "metrics:read"), ("/outer/inner", "metrics:read")]


def test_route_without_permission_is_refused():
    async def secret(request):
        return PlainTextResponse("should never be sent")

    app = create_app({}, extra_routes=[Route("/api/v1/undeclared", secret)])

    async def request() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gosight.test") as client:
            return await client.get("/api/v1/undeclared")

    response = asyncio.run(request())

    assert response.status_code == 403
    assert "declares no permission" in response.json()["error"]["message"]


def table_rows() -> list[tuple[str, str, str]]:
    """Return (method, path with dummy parameters, permission) for every HTTP route but the dashboard's."""
    rows = []
    web_paths = {route.path for route in WebApp().routes()}
    for path, route, permission in walk(core_routes()):
        if not isinstance(route, Route) or path in web_paths:
            continue
        concrete = re.sub(r"\{[^}]+\}", "does-not-exist", path)
        for method in sorted(route.methods - {"HEAD"}):
            if (method, path) not in SKIPPED:
                rows.append((method, concrete, permission))
    return rows


def expected_allowed(role: str | None, permission: str) -> bool:
    if permission == PUBLIC:
        return True
    if role is None:
        return False
    return permission in ROLE_PERMISSIONS[role] or permission in OWN_ACCOUNT


@pytest.fixture(scope="module")
def clients(users_server: Server):
    sessions = {role: SessionClient(users_server).signed_in(name) for name, role in USERS.items()}
    sessions[None] = SessionClient(users_server)
    yield sessions
    for session in sessions.values():
        session.http.close()


def send(session: SessionClient, method: str, path: str) -> httpx.Response:
    if method in ("GET", "DELETE"):
        return session.request(method, path)
    return session.request(method, path, json=INVALID_BODY)


@pytest.mark.parametrize("role", ["viewer", "editor", "admin", CUSTOM_ROLE[0], None],
                         ids=["viewer", "editor", "admin", "custom", "anonymous"])
def test_role_table(clients, role):
    session = clients[role]
    wrong = []

    for method, path, permission in table_rows():
        response = send(session, method, path)
        allowed = expected_allowed(role, permission)
        refused = response.status_code in (401, 403)
        if allowed == refused:
            wrong.append(f"{method} {path} ({permission}): {response.status_code} {response.text[:160]}")
        elif refused and role is None:
            assert response.status_code == 401, f"{method} {path}: anonymous must get 401, got {response.status_code}"

    assert not wrong, f"role {role}: unexpected answers:\n" + "\n".join(wrong)


def test_viewer_cannot_change_anything(clients):
    viewer = clients["viewer"]
    # POST on the Prometheus API is a query sent as a form, a read like GET.
    changes = [(method, path, permission) for method, path, permission in table_rows()
               if method != "GET" and permission not in OWN_ACCOUNT | {PUBLIC} | rbac.VIEWER_PERMISSIONS]

    answers = {f"{method} {path}": send(viewer, method, path).status_code for method, path, _ in changes}

    assert len(changes) >= 12, changes
    assert set(answers.values()) == {403}, answers


def test_editor_cannot_manage_users_roles_or_tokens(clients):
    editor = clients["editor"]
    management = [(method, path) for method, path, permission in table_rows() if permission in ADMIN_ONLY]

    answers = {f"{method} {path}": send(editor, method, path).status_code for method, path in management}

    assert any(path.startswith("/api/v1/users") for _, path in management)
    assert any(path.startswith("/api/v1/roles") for _, path in management)
    assert any(path.startswith("/api/v1/tokens") for _, path in management)
    assert set(answers.values()) == {403}, answers


def test_editor_reads_and_manages_own_tokens(clients):
    editor = clients["editor"]

    query = editor.get("/prometheus/api/v1/query", params={"query": "1"})
    endpoints = editor.get("/api/v1/endpoints")
    token = editor.post("/api/v1/auth/tokens", json={"name": "grafana", "permissions": ["metrics:read"]})
    too_much = editor.post("/api/v1/auth/tokens", json={"name": "x", "permissions": ["users:manage"]})

    assert query.status_code == 200, query.text
    assert endpoints.status_code == 200, endpoints.text
    assert token.status_code == 201, token.text
    assert too_much.status_code == 403, too_much.text


def test_custom_role_reads_metrics_only(clients):
    custom = clients[CUSTOM_ROLE[0]]

    query = custom.get("/prometheus/api/v1/query", params={"query": "1"})
    endpoints = custom.get("/api/v1/endpoints")

    assert query.status_code == 200, query.text
    assert endpoints.status_code == 403
    assert "endpoints:read" in endpoints.json()["error"]["message"]


def _ws_url(server: Server) -> str:
    return f"ws://{server.http}/ws/live"


def test_live_websocket_needs_metrics_read(users_server: Server, clients):
    viewer_cookie = f"gosight_session={clients['viewer'].session_cookie}"
    custom_cookie = f"gosight_session={clients[CUSTOM_ROLE[0]].session_cookie}"

    with connect(_ws_url(users_server), additional_headers={"Cookie": viewer_cookie,
                                                            "Origin": users_server.url}) as socket:
        socket.send('{"type": "unsubscribe", "id": "none"}')
    with connect(_ws_url(users_server), additional_headers={"Cookie": custom_cookie,
                                                            "Origin": users_server.url}):
        pass
    with pytest.raises(InvalidStatus) as anonymous:
        connect(_ws_url(users_server))
    with pytest.raises(InvalidStatus) as foreign_origin:
        connect(_ws_url(users_server), additional_headers={"Cookie": viewer_cookie, "Origin": "http://evil.test"})

    assert anonymous.value.response.status_code == 403
    assert foreign_origin.value.response.status_code == 403


def _closed_by_server(socket) -> ConnectionClosed:
    """Read until the server closes the socket; a silent socket fails the test after 20 s."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            socket.recv(timeout=20)
    return closed.value


@pytest.mark.parametrize("end_access", ["sign out", "revoke token", "disable account"])
def test_live_websocket_closes_when_access_ends(users_server: Server, end_access: str):
    username = f"live-{end_access.replace(' ', '-')}"
    user_id = create_user(users_server, username, "viewer")["id"]
    with SessionClient(users_server).signed_in(username) as user:
        if end_access == "revoke token":
            created = user.post("/api/v1/auth/tokens", json={"name": "live", "permissions": ["metrics:read"]})
            assert created.status_code == 201, created.text
            headers = {"Authorization": f"Bearer {created.json()['token']}"}
        else:
            headers = {"Cookie": f"gosight_session={user.session_cookie}", "Origin": users_server.url}
        with connect(_ws_url(users_server), additional_headers=headers) as socket:
            socket.send('{"subscribe": {"id": "one", "query": "vector(1)"}}')
            first = json.loads(socket.recv(timeout=10))
            if end_access == "sign out":
                ended = user.post("/api/v1/auth/logout")
            elif end_access == "revoke token":
                ended = user.request("DELETE", f"/api/v1/auth/tokens/{created.json()['id']}")
            else:
                with users_server.client() as admin:
                    ended = admin.patch(f"/api/v1/users/{user_id}", json={"disabled": True})
            closed = _closed_by_server(socket)

    assert first["id"] == "one"
    assert ended.status_code in (200, 204), ended.text
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert closed.rcvd.reason


def test_websocket_routes_are_in_the_walk():
    sockets = [path for path, route, _ in walk(app_routes()) if isinstance(route, WebSocketRoute)]

    assert sockets == ["/ws/live"]
