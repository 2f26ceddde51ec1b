"""REST resource: agent tokens.

GET /api/v1/tokens lists tokens (never the tokens themselves), POST /api/v1/tokens
creates one from a JSON body `{"name": "web1", "expires": "30d", "bind_agent": true}`
(every field optional) and returns it once in `token`, DELETE /api/v1/tokens/{id}
revokes one. Every route needs the tokens:manage permission (admins).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from gosight.auth.middleware import principal_of
from gosight.auth.web import record
from gosight.security.tokens import (
    TokenNotFound,
    TokenRecord,
    TokenStore,
    now_ms,
    parse_duration_s,
)
from gosight.server.api.bodies import json_object
from gosight.server.api.endpoints import rfc3339
from gosight.server.api.errors import ApiError

# Responses that carry a token must not be kept by a browser or proxy cache.
NO_STORE = {"Cache-Control": "no-store"}


def token_json(record: TokenRecord, now: int) -> dict:
    return {
        "id": record.token_id,
        "name": record.name,
        "status": record.status(now),
        "created": rfc3339(record.created_ms),
        "expires": rfc3339(record.expires_ms) if record.expires_ms else None,
        "revoked": rfc3339(record.revoked_ms) if record.revoked_ms else None,
        "last_used": rfc3339(record.last_used_ms) if record.last_used_ms else None,
        "bind_agent": record.bind_agent,
        "agent_id": record.agent_id,
    }


async def list_tokens(request: Request) -> JSONResponse:
    tokens = _tokens(request)
    records = await asyncio.to_thread(tokens.list)
    now = now_ms()
    return JSONResponse({"tokens": [token_json(record, now) for record in records]})


async def create_token(request: Request) -> JSONResponse:
    tokens = _tokens(request)
    body = await _json_body(request)
    name = body.get("name", "")
    expires = body.get("expires")
    bind_agent = body.get("bind_agent", False)
    if not isinstance(name, str):
        raise ApiError(400, "invalid name: expected a string")
    if expires is not None and not isinstance(expires, str):
        raise ApiError(400, "invalid expires: expected a duration such as 30d, or null for no expiry")
    if not isinstance(bind_agent, bool):
        raise ApiError(400, "invalid bind_agent: expected true or false")
    try:
        expires_in_s = parse_duration_s(expires or "never")
        token, created = await asyncio.to_thread(tokens.create, name, expires_in_s, bind_agent)
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    await record(request, "agent_token_created", actor=principal_of(request), token_id=created.token_id,
                 name=created.name)
    return JSONResponse({"token": token, **token_json(created, now_ms())}, status_code=201, headers=NO_STORE)


async def revoke_token(request: Request) -> JSONResponse:
    tokens = _tokens(request)
    token_id = request.path_params["token_id"]
    try:
        revoked = await asyncio.to_thread(tokens.revoke, token_id)
    except TokenNotFound:
        raise ApiError(404, f"no token with id {token_id!r}; GET /api/v1/tokens lists them") from None
    await record(request, "agent_token_revoked", actor=principal_of(request), token_id=token_id)
    return JSONResponse(token_json(revoked, now_ms()))


def _tokens(request: Request) -> TokenStore:
    # The auth middleware has checked the tokens:manage permission before the handler runs.
    tokens = getattr(request.app.state, "tokens", None)
    if tokens is None:
        raise ApiError(503, "this server has no token store")
    return tokens


async def _json_body(request: Request) -> dict:
    return await json_object(request, "an object with name, expires and bind_agent")
