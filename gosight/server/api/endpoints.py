"""REST resource: endpoints (hosts and containers) and their presence.

GET /api/v1/endpoints takes optional filters: `status`, `kind` (host or container),
`host` (the endpoint id of the host whose containers to list), `q` (substring of id,
host name or a label value) and `label` (`name=value`, repeatable). It sorts with
`sort` (a field name, `-` prefix for descending) and pages with `limit` and `offset`.
A container's `parent` is its host's endpoint id; `status` is "gone" once its host's
agent reported it removed, and `gone_at` says when.

`conflict` is null unless two or more agents claimed the endpoint's id, as machines
cloned with one machine id do. It then names that id, each agent with the endpoint
its data is stored under, and whether two of them are still online or idle (`active`).
"""

from __future__ import annotations

import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from gosight.model import Endpoint
from gosight.server.api.errors import ApiError
from gosight.server.endpoints import (
    CONFLICT_HINT,
    GONE,
    IDLE,
    OFFLINE,
    ONLINE,
    EndpointRegistry,
)

_STATUSES = (ONLINE, IDLE, OFFLINE, GONE)
_SORT_FIELDS = ("endpoint_id", "hostname", "status", "last_seen", "first_seen", "kind", "parent")
MAX_LIMIT = 10_000


def rfc3339(ms: int) -> str | None:
    if not ms:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def endpoint_json(registry: EndpointRegistry, endpoint: Endpoint, now_ms: int) -> dict:
    return {
        "endpoint_id": endpoint.endpoint_id,
        "kind": endpoint.kind,
        "status": registry.status(endpoint, now_ms),
        "hostname": endpoint.hostname,
        "agent_id": endpoint.agent_id,
        "connected": endpoint.connected,
        "labels": endpoint.labels,
        "facts": endpoint.facts,
        "first_seen": rfc3339(endpoint.first_seen_ms),
        "last_seen": rfc3339(endpoint.last_seen_ms),
        "last_data": rfc3339(endpoint.last_data_ms),
        "parent": endpoint.parent,
        "gone_at": rfc3339(endpoint.gone_ms),
        "conflict": conflict_json(registry, registry.conflict_group(endpoint.endpoint_id), now_ms),
    }


def conflict_json(registry: EndpointRegistry, group: list[Endpoint], now_ms: int) -> dict | None:
    """Describe the agents that claimed one endpoint id; `group` comes from EndpointRegistry.conflict_group."""
    if not group:
        return None
    agents = [{"agent_id": member.agent_id, "hostname": member.hostname, "endpoint_id": member.endpoint_id,
               "status": registry.status(member, now_ms)} for member in group]
    present = [agent for agent in agents if agent["status"] in (ONLINE, IDLE)]
    return {
        "endpoint_id": group[0].claimed_id or group[0].endpoint_id,
        "active": len(present) > 1,
        "detected_at": rfc3339(min(member.first_seen_ms for member in group if member.claimed_id)),
        "agents": agents,
        "hint": CONFLICT_HINT,
    }


async def list_endpoints(request: Request) -> JSONResponse:
    registry: EndpointRegistry = request.app.state.endpoints
    params = request.query_params
    status = params.get("status")
    if status and status not in _STATUSES:
        raise ApiError(400, f"invalid status {status!r}; expected one of {', '.join(_STATUSES)}")
    label_filters = [_parse_label(text) for text in params.getlist("label")]
    limit = _int_param(params.get("limit"), "limit", 1000, 1, MAX_LIMIT)
    offset = _int_param(params.get("offset"), "offset", 0, 0, None)
    sort = params.get("sort", "endpoint_id")
    if sort.lstrip("-") not in _SORT_FIELDS:
        raise ApiError(400, f"invalid sort {sort!r}; expected one of {', '.join(_SORT_FIELDS)}, "
                            "with a leading '-' for descending order")

    now_ms = registry.now_ms()
    rows = [endpoint_json(registry, endpoint, now_ms) for endpoint in registry.all()]
    if status:
        rows = [row for row in rows if row["status"] == status]
    if kind := params.get("kind"):
        rows = [row for row in rows if row["kind"] == kind]
    if host := params.get("host"):
        rows = [row for row in rows if row["parent"] == host]
    if query := params.get("q", "").strip().lower():
        rows = [row for row in rows if _matches_text(row, query)]
    for name, value in label_filters:
        rows = [row for row in rows if row["labels"].get(name) == value]

    field = sort.lstrip("-")
    rows.sort(key=lambda row: (row.get(field) or "", row["endpoint_id"]), reverse=sort.startswith("-"))
    return JSONResponse({"total": len(rows), "endpoints": rows[offset:offset + limit]})


async def get_endpoint(request: Request) -> JSONResponse:
    registry: EndpointRegistry = request.app.state.endpoints
    endpoint_id = request.path_params["endpoint_id"]
    endpoint = registry.get(endpoint_id)
    if endpoint is None:
        raise ApiError(404, f"endpoint {endpoint_id!r} not found; GET /api/v1/endpoints lists the known ones",
                       code="endpoint_not_found")
    return JSONResponse(endpoint_json(registry, endpoint, registry.now_ms()))


def _matches_text(row: dict, query: str) -> bool:
    haystack = [row["endpoint_id"], row["hostname"], *row["labels"].values(), *row["facts"].values()]
    return any(query in text.lower() for text in haystack)


def _parse_label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ApiError(400, f"invalid label filter {text!r}; expected name=value")
    return name, value


def _int_param(text: str | None, name: str, default: int, minimum: int, maximum: int | None) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"invalid {name} {text!r}; expected an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(400, f"invalid {name} {value}; expected {bound}")
    return value
