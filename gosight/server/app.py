"""The Starlette application: REST API, OTLP/HTTP, the server's own metrics, the dashboard."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from gosight import __version__
from gosight.auth.middleware import AuthMiddleware
from gosight.auth.routes import auth_routes
from gosight.security import api as tokens_api
from gosight.server.api import endpoints as endpoints_api
from gosight.server.api import prometheus as prometheus_api
from gosight.server.api.errors import http_exception_handler, unhandled_exception_handler
from gosight.server.live import PERMISSION as LIVE_PERMISSION
from gosight.server.live import live_endpoint
from gosight.server.receivers import otlp_http
from gosight.server.routing import PUBLIC, route, websocket
from gosight.server.webapp import WebApp


async def health(request: Request) -> JSONResponse:
    """Return 200 while the server works, and 503 while the metric store cannot write.

    The route is public, so the response names the problem but not the error text,
    which is in the server log.
    """
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is not None and pipeline.write_failing:
        return JSONResponse({"status": "degraded", "version": __version__,
                             "problems": ["the metric store cannot write new samples (a full disk, for example); "
                                          "the server log has the error"]}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})


async def server_metrics(request: Request) -> Response:
    return Response(request.app.state.server_metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def core_routes() -> list[BaseRoute]:
    return [
        route("/healthz", health, permission=PUBLIC),
        route("/metrics", server_metrics, permission="system:metrics"),
        route("/v1/metrics", otlp_http.receive_metrics, permission="metrics:write", methods=("POST",)),
        route("/api/v1/endpoints", endpoints_api.list_endpoints, permission="endpoints:read"),
        route("/api/v1/endpoints/{endpoint_id}", endpoints_api.get_endpoint, permission="endpoints:read"),
        route("/api/v1/tokens", tokens_api.list_tokens, permission="tokens:manage"),
        route("/api/v1/tokens", tokens_api.create_token, permission="tokens:manage", methods=("POST",)),
        route("/api/v1/tokens/{token_id}", tokens_api.revoke_token, permission="tokens:manage", methods=("DELETE",)),
        *prometheus_api.routes(),
        websocket("/ws/live", live_endpoint, permission=LIVE_PERMISSION),
        *auth_routes(),
    ]


def create_app(state: dict[str, Any], extra_routes: Iterable[BaseRoute] = ()) -> Starlette:
    """Build the application; `state` entries become `app.state` attributes for the handlers.

    AuthMiddleware lets a request reach its route only when the caller holds the
    route's permission; `state["auth"]` is the AuthService it asks.
    """
    app = Starlette(
        # The dashboard's catch-all for client-side views goes last, after every API route.
        routes=[*core_routes(), *extra_routes, *WebApp().routes()],
        middleware=[Middleware(AuthMiddleware)],
        exception_handlers={HTTPException: http_exception_handler, Exception: unhandled_exception_handler},
    )
    for key, value in state.items():
        setattr(app.state, key, value)
    return app
