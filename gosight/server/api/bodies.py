"""Request bodies of the API routes, read with a size bound.

Starlette reads a body whole into memory. Sign-in and setup take bodies before any
credentials are checked, so without a bound one request could make the server hold
gigabytes. Ingest routes have their own, larger bound (server.ingest.max_message_bytes).
"""

from __future__ import annotations

import json

from starlette.requests import Request

from gosight.server.api.errors import ApiError

# The largest JSON document or form any API route needs is a long PromQL query.
MAX_BODY_BYTES = 1 << 20


class BodyTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"request body larger than {limit:,} bytes; send a smaller request")
        self.limit = limit


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Return the body, or raise BodyTooLarge as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    parts = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(part)
    return b"".join(parts)


async def json_object(request: Request, expected: str = "an object") -> dict:
    """Parse the body as a JSON object; an empty body is an empty object. Errors are ApiErrors."""
    try:
        raw = await read_body(request)
    except BodyTooLarge as error:
        raise ApiError(413, str(error)) from None
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"invalid JSON body: {error}") from None
    except RecursionError:
        raise ApiError(400, "invalid JSON body: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"invalid JSON body: expected {expected}")
    return body
