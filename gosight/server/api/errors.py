"""The one JSON error shape of GoSight's REST API: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable", 429: "too_many_requests",
          500: "internal", 503: "unavailable"}


class ApiError(HTTPException):
    """An error with a machine-readable code, answered in the shared shape."""

    def __init__(self, status_code: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code or _CODES.get(status_code, "error")


def error_response(status_code: int, message: str, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code or _CODES.get(status_code, "error"), "message": message}}
    return JSONResponse(body, status_code=status_code, headers=headers)


async def http_exception_handler(request: Request, error: HTTPException) -> JSONResponse:
    code = getattr(error, "code", None)
    message = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and not isinstance(error, ApiError):
        message = f"no route for {request.method} {request.url.path}"
    if error.status_code == 405 and not isinstance(error, ApiError):
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(error.status_code, message, code, getattr(error, "headers", None))


async def unhandled_exception_handler(request: Request, error: Exception) -> JSONResponse:
    # The traceback goes to the server log (Starlette's error middleware logs it); the client gets no internals.
    return error_response(500, "internal server error; the server log has the details")
