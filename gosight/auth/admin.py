"""REST handlers for admins: users, custom roles, security events and security settings.

Routes and permissions: /api/v1/users and /api/v1/roles need `users:manage`,
GET /api/v1/security/events and GET /api/v1/security/settings `security:read`,
PUT /api/v1/security/settings `security:manage`.
"""

from __future__ import annotations

import datetime
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from gosight.auth import passwords, rbac
from gosight.auth.service import REQUIRE_MFA_SETTING
from gosight.auth.store import Conflict, NotFound, User
from gosight.auth.web import json_body, record, require_principal, service_of, text_field, user_json
from gosight.server.api.endpoints import rfc3339
from gosight.server.api.errors import ApiError
from gosight.server.routing import PERMISSIONS

log = logging.getLogger(__name__)

EVENT_PAGE_DEFAULT = 100


async def list_users(request: Request) -> JSONResponse:
    service = service_of(request)
    users = await service.run(service.store.list_users)
    return JSONResponse({"users": [user_json(user) for user in users]})


async def create_user(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    body = await json_body(request)
    username = text_field(body, "username")
    password = text_field(body, "password", required=False)
    role = text_field(body, "role", required=False, default=rbac.VIEWER)
    email = text_field(body, "email", required=False) or None
    if password:
        _check_policy(service, password, username)
    try:
        user = await service.run(service.store.create_user, username,
                                 passwords.hash_password(password) if password else None, role, email)
    except Conflict as error:
        raise ApiError(409, str(error), code="conflict") from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    await record(request, "user_created", user=user, actor=principal, role=role)
    log.info("user created", extra={"fields": {"user": user.username, "role": role,
                                               "by": principal.user.username}})
    return JSONResponse(user_json(user), status_code=201)


async def get_user(request: Request) -> JSONResponse:
    return JSONResponse(user_json(await _user(request)))


async def update_user(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = await _user(request)
    body = await json_body(request)
    unknown = sorted(set(body) - {"role", "disabled", "email"})
    if unknown:
        raise ApiError(400, f"unknown field {', '.join(unknown)}; a user's role, disabled and email can change")
    try:
        if "role" in body and body["role"] != user.role:
            role = text_field(body, "role")
            await service.run(service.store.set_role, user.user_id, role)
            await record(request, "role_changed", user=user, actor=principal, old_role=user.role, new_role=role)
            log.info("role changed", extra={"fields": {"user": user.username, "role": role,
                                                       "by": principal.user.username}})
        if "disabled" in body:
            if not isinstance(body["disabled"], bool):
                raise ApiError(400, "invalid disabled: expected true or false")
            if body["disabled"] != user.disabled:
                await service.run(service.store.set_disabled, user.user_id, body["disabled"])
                await record(request, "user_disabled" if body["disabled"] else "user_enabled", user=user,
                             actor=principal)
        if "email" in body:
            await service.run(service.store.set_email, user.user_id, text_field(body, "email") or None)
    except Conflict as error:
        raise ApiError(409, str(error), code="conflict") from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    return JSONResponse(user_json(await service.run(service.store.get_user, user.user_id)))


async def delete_user(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = await _user(request)
    try:
        await service.run(service.store.delete_user, user.user_id)
    except Conflict as error:
        raise ApiError(409, str(error), code="conflict") from None
    await record(request, "user_deleted", user=user, actor=principal)
    log.info("user deleted", extra={"fields": {"user": user.username, "by": principal.user.username}})
    return JSONResponse(user_json(user))


async def reset_password(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = await _user(request)
    body = await json_body(request)
    password = text_field(body, "password")
    _check_policy(service, password, user.username)
    await service.run(lambda: service.store.set_password_hash(user.user_id, passwords.hash_password(password)))
    ended = await service.run(service.store.end_user_sessions, user.user_id)
    await record(request, "password_reset", user=user, actor=principal, sessions_ended=ended)
    return JSONResponse({"status": "changed", "sessions_ended": ended})


async def reset_mfa(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = await _user(request)
    await service.run(service.store.reset_mfa, user.user_id)
    ended = await service.run(service.store.end_user_sessions, user.user_id)
    await record(request, "mfa_reset", user=user, actor=principal, sessions_ended=ended)
    log.info("two-factor authentication reset", extra={"fields": {"user": user.username,
                                                                  "by": principal.user.username}})
    return JSONResponse(user_json(await service.run(service.store.get_user, user.user_id)))


async def end_user_sessions(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    user = await _user(request)
    ended = await service.run(service.store.end_user_sessions, user.user_id)
    await record(request, "session_ended", user=user, actor=principal, sessions=ended)
    return JSONResponse({"sessions_ended": ended})


async def list_roles(request: Request) -> JSONResponse:
    service = service_of(request)
    roles = await service.run(service.store.list_roles)
    grantable = rbac.grantable_permissions()
    return JSONResponse({
        "roles": [{"name": role.name, "description": role.description, "permissions": sorted(role.permissions),
                   "builtin": role.builtin} for role in roles],
        "permissions": [{"name": name, "description": text} for name, text in PERMISSIONS.items()
                        if name in grantable],
    })


async def create_role(request: Request) -> JSONResponse:
    return await _save_role(request, create=True)


async def update_role(request: Request) -> JSONResponse:
    return await _save_role(request, create=False)


async def delete_role(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    name = request.path_params["name"]
    try:
        await service.run(service.store.delete_role, name)
    except NotFound as error:
        raise ApiError(404, str(error)) from None
    except Conflict as error:
        raise ApiError(409, str(error), code="conflict") from None
    await record(request, "role_deleted", actor=principal, role=name)
    return JSONResponse({"name": name, "deleted": True})


async def list_events(request: Request) -> JSONResponse:
    service = service_of(request)
    params = request.query_params
    types = [item for value in params.getlist("type") for item in value.split(",") if item]
    limit = _int(params.get("limit"), "limit", EVENT_PAGE_DEFAULT, 1, 1000)
    offset = _int(params.get("offset"), "offset", 0, 0, 10**9)
    since = _time_ms(params.get("since"), "since")
    until = _time_ms(params.get("until"), "until")
    total, events = await service.run(service.store.list_events, types=types, username=params.get("user") or None,
                                      since_ms=since, until_ms=until, limit=limit, offset=offset)
    return JSONResponse({"total": total, "events": [{
        "id": event.event_id, "time": rfc3339(event.time_ms), "type": event.type, "user": event.username,
        "user_id": event.user_id, "actor": event.actor, "client_ip": event.client_ip, "detail": event.detail,
    } for event in events]})


async def get_settings(request: Request) -> JSONResponse:
    service = service_of(request)
    return JSONResponse({"require_mfa": await service.run(lambda: service.require_mfa),
                         "local_login": service.local_login,
                         "oidc": service.oidc.display_name if service.oidc else None})


async def update_settings(request: Request) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    body = await json_body(request)
    unknown = sorted(set(body) - {"require_mfa"})
    if unknown:
        raise ApiError(400, f"unknown setting {', '.join(unknown)}; require_mfa can change here, the others in the "
                            "configuration file")
    if "require_mfa" in body:
        if not isinstance(body["require_mfa"], bool):
            raise ApiError(400, "invalid require_mfa: expected true or false")
        await service.run(service.store.set_setting, REQUIRE_MFA_SETTING, "true" if body["require_mfa"] else "false")
        await record(request, "settings_changed", actor=principal, require_mfa=body["require_mfa"])
    return await get_settings(request)


async def _save_role(request: Request, *, create: bool) -> JSONResponse:
    service = service_of(request)
    principal = require_principal(request)
    body = await json_body(request)
    name = text_field(body, "name") if create else request.path_params["name"]
    description = text_field(body, "description", required=False)
    permissions = body.get("permissions")
    if not isinstance(permissions, list) or not all(isinstance(item, str) for item in permissions):
        raise ApiError(400, "invalid permissions: expected a list of permission names")
    try:
        role = await service.run(service.store.save_role, name, description, frozenset(permissions), create=create)
    except NotFound as error:
        raise ApiError(404, str(error)) from None
    except Conflict as error:
        raise ApiError(409, str(error), code="conflict") from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    await record(request, "role_created" if create else "role_changed", actor=principal, role=name,
                 permissions=sorted(role.permissions))
    return JSONResponse({"name": role.name, "description": role.description, "permissions": sorted(role.permissions),
                         "builtin": False}, status_code=201 if create else 200)


async def _user(request: Request) -> User:
    service = service_of(request)
    user_id = request.path_params["user_id"]
    try:
        return await service.run(service.store.get_user, user_id)
    except NotFound:
        raise ApiError(404, f"no user with id {user_id!r}; GET /api/v1/users lists them") from None


def _check_policy(service, password: str, username: str) -> None:
    try:
        passwords.check_policy(password, service.password_min_length, username)
    except passwords.PasswordRejected as error:
        raise ApiError(400, str(error), code="password_rejected") from None


def _int(text: str | None, name: str, default: int, minimum: int, maximum: int) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"invalid {name} {text!r}; expected an integer") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"invalid {name} {value}; expected between {minimum} and {maximum}")
    return value


def _time_ms(text: str | None, name: str) -> int | None:
    if not text:
        return None
    try:
        if text.replace(".", "", 1).isdigit():
            return int(float(text) * 1000)
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"invalid {name} {text!r}; expected RFC 3339 time or Unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)
