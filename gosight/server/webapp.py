"""Serve the web dashboard built into gosight/ui/dist.

- /assets/<file>: hashed build output, cached for a year as immutable; the .gz copy
  written by the build is sent to clients that accept gzip.
- Any other GET path without a route loads index.html (never cached), so a
  client-side address such as /endpoints/host-1 opens the app at that view. Paths
  under the API prefixes never get the app: they get the API's 404.
- Without a build, UI paths answer 503 with the command that builds it.

index.html carries a Content-Security-Policy that allows only this origin, so the
browser itself enforces that the dashboard loads nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Route

from gosight.server.api.errors import error_response
from gosight.server.routing import PUBLIC, route

DIST_DIR = Path(__file__).resolve().parent.parent / "ui" / "dist"
BUILD_HINT = "run npm ci && npm run build in gosight/ui"

# Prefixes served by the API routes; a miss under them is an API 404, not the app.
RESERVED_PREFIXES = ("/api", "/prometheus", "/v1", "/ws", "/metrics", "/healthz", "/assets")

IMMUTABLE = "public, max-age=31536000, immutable"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
# A single path segment with a file extension, such as /robots.txt: a file request, not a view.
_ROOT_FILE = re.compile(r"^/[^/]+\.[A-Za-z0-9]{1,8}$")

_UNBUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GoSight: dashboard not built</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
code{{background:#8882;padding:.1em .3em;border-radius:4px}}</style></head>
<body><h1>The dashboard is not built</h1>
<p>This GoSight server has no web app files in <code>{dist}</code>. To build them, {hint}:</p>
<pre><code>cd gosight/ui
npm ci
npm run build</code></pre>
<p>The APIs work without it: <code>/api/v1/endpoints</code>, <code>/prometheus/api/v1/query</code>.</p>
</body></html>
"""


class WebApp:
    """The built dashboard in `dist_dir`; reads index.html again when the build changes."""

    def __init__(self, dist_dir: Path = DIST_DIR):
        self.dist_dir = dist_dir
        self.assets_dir = (dist_dir / "assets").resolve()
        self._index: tuple[float, bytes, str] | None = None

    def routes(self) -> list[BaseRoute]:
        """The asset route and the catch-all for app views; the catch-all must come last."""
        return [
            route("/assets/{path:path}", self.asset, permission=PUBLIC),
            route("/{path:path}", self.page, permission=PUBLIC),
        ]

    async def asset(self, request: Request) -> Response:
        relative = request.path_params["path"]
        path = (self.assets_dir / relative).resolve()
        if not path.is_relative_to(self.assets_dir) or not path.is_file() or path.suffix == ".gz":
            if not self._index_path().is_file():
                return self._unbuilt(request)
            return error_response(404, f"asset {relative!r} not found; the page may be older than the "
                                       "installed dashboard, so reload it")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}
        compressed = path.with_name(path.name + ".gz")
        if _accepts_gzip(request) and compressed.is_file():
            headers["Content-Encoding"] = "gzip"
            return FileResponse(compressed, media_type=media_type, headers=headers)
        return FileResponse(path, media_type=media_type, headers=headers)

    async def page(self, request: Request) -> Response:
        path = request.url.path
        if _is_reserved(path):
            return _api_miss(request)
        if _ROOT_FILE.match(path):
            return self._root_file(request, path)
        index = self._load_index()
        if index is None:
            return self._unbuilt(request)
        body, policy = index
        return Response(body, media_type="text/html; charset=utf-8", headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY",
        })

    def _root_file(self, request: Request, path: str) -> Response:
        candidate = (self.dist_dir / path.lstrip("/")).resolve()
        if candidate.parent == self.dist_dir.resolve() and candidate.is_file() and candidate.name != "index.html":
            return FileResponse(candidate, headers={"Cache-Control": "no-cache"})
        return error_response(404, f"file {path} not found")

    def _index_path(self) -> Path:
        return self.dist_dir / "index.html"

    def _load_index(self) -> tuple[bytes, str] | None:
        path = self._index_path()
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            self._index = None
            return None
        if self._index is None or self._index[0] != mtime:
            body = path.read_bytes()
            self._index = (mtime, body, content_security_policy(body))
        return self._index[1], self._index[2]

    def _unbuilt(self, request: Request) -> Response:
        message = f"the dashboard is not built; {BUILD_HINT}"
        if "text/html" in request.headers.get("accept", ""):
            page = _UNBUILT_PAGE.format(dist=self.dist_dir, hint=BUILD_HINT)
            return HTMLResponse(page, status_code=503, headers={"Cache-Control": "no-store"})
        return error_response(503, message, headers={"Cache-Control": "no-store"})


def content_security_policy(index_html: bytes) -> str:
    """Allow this origin only, plus the inline scripts of index.html by their hashes."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(index_html)
    )
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' {hashes}".rstrip(),
        # Charts and the tooltip set style attributes; styles cannot load anything remote.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _api_miss(request: Request) -> Response:
    """Return the 404 or 405 that the router would send for an API path without the catch-all."""
    # The catch-all takes every GET, so a GET on a POST-only API route lands here: keep its 405.
    allowed = [method for candidate in request.app.router.routes
               if isinstance(candidate, Route) and candidate.path != "/{path:path}"
               and candidate.matches(request.scope)[0] == Match.PARTIAL
               for method in sorted(candidate.methods or ())]
    if allowed:
        return error_response(405, f"method {request.method} is not allowed on {request.url.path}",
                              headers={"Allow": ", ".join(allowed)})
    return error_response(404, f"no route for {request.method} {request.url.path}")


def _is_reserved(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in RESERVED_PREFIXES)


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00"):
            return True
    return False
