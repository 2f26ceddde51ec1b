"""The dashboard's static files: caching, gzip, the client-side route fallback and the unbuilt case."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from gosight.server.api.errors import http_exception_handler
from gosight.server.app import core_routes
from gosight.server.webapp import IMMUTABLE, WebApp

INLINE_SCRIPT = b"document.documentElement.dataset.theme = 'dark';"
INDEX = b"<!doctype html><html><head><script>" + INLINE_SCRIPT + b"</script></head><body>app</body></html>"
SCRIPT = b"console.log('gosight');" * 50


class _Client:
    """Send requests to the application in-process, through httpx's ASGI transport."""

    def __init__(self, app: Starlette):
        self.app = app

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gosight.test") as client:
                return await client.get(path, headers=headers)

        return asyncio.run(send())


def _client(dist: Path) -> _Client:
    app = Starlette(routes=[*core_routes(), *WebApp(dist).routes()],
                    exception_handlers={HTTPException: http_exception_handler})
    return _Client(app)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "index-abc123.js").write_bytes(SCRIPT)
    (root / "assets" / "index-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (root / "assets" / "index-abc123.css").write_bytes(b"body{}")
    (root / "robots.txt").write_bytes(b"User-agent: *\n")
    return root


@pytest.mark.parametrize("path", ["/", "/endpoints", "/endpoints/host-abc", "/endpoints/web.example.com",
                                  "/explore", "/no/such/view"])
def test_views_load_the_app(dist: Path, path: str) -> None:
    response = _client(dist).get(path)

    assert response.status_code == 200, response.text
    assert response.content == INDEX
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/html")


def test_index_policy_allows_only_the_origin(dist: Path) -> None:
    policy = _client(dist).get("/").headers["content-security-policy"]

    digest = base64.b64encode(hashlib.sha256(INLINE_SCRIPT).digest()).decode()
    assert "default-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert f"script-src 'self' 'sha256-{digest}'" in policy
    assert "http" not in policy


def test_asset_is_immutable_and_gzipped(dist: Path) -> None:
    client = _client(dist)

    compressed = client.get("/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"})
    plain = client.get("/assets/index-abc123.js", headers={"Accept-Encoding": "identity"})

    assert compressed.status_code == 200
    assert compressed.headers["cache-control"] == IMMUTABLE
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.content == SCRIPT  # httpx decodes the gzip body
    assert int(compressed.headers["content-length"]) < len(SCRIPT)
    assert "javascript" in compressed.headers["content-type"]
    assert plain.headers.get("content-encoding") is None
    assert plain.content == SCRIPT
    assert plain.headers["cache-control"] == IMMUTABLE


def test_asset_without_gzip_copy_is_sent_plain(dist: Path) -> None:
    response = _client(dist).get("/assets/index-abc123.css", headers={"Accept-Encoding": "gzip"})

    assert response.status_code == 200
    assert response.headers.get("content-encoding") is None
    assert response.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/assets/missing.js", "/assets/../index.html", "/assets/%2e%2e/index.html",
                                  "/assets/index-abc123.js.gz"])
def test_asset_miss_is_404(dist: Path, path: str) -> None:
    response = _client(dist).get(path)

    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/prometheus/api/v1/nothing", "/ws/other", "/healthz/x",
                                  "/metrics/x"])
def test_api_paths_are_never_the_app(dist: Path, path: str) -> None:
    response = _client(dist).get(path)

    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"no route for GET {path}"


def test_api_routes_still_answer(dist: Path) -> None:
    client = _client(dist)

    assert client.get("/healthz").json()["status"] == "ok"
    wrong_method = client.get("/v1/metrics")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


def test_root_files(dist: Path) -> None:
    client = _client(dist)

    assert client.get("/robots.txt").content == b"User-agent: *\n"
    assert client.get("/favicon.ico").status_code == 404
    assert client.get("/index.html").status_code == 404


def test_unbuilt_app_explains_the_build(tmp_path: Path) -> None:
    client = _client(tmp_path / "missing")

    page = client.get("/endpoints", headers={"Accept": "text/html"})
    api = client.get("/", headers={"Accept": "application/json"})
    asset = client.get("/assets/index.js")

    assert page.status_code == 503
    assert "npm run build" in page.text
    assert api.status_code == 503
    assert api.json()["error"]["message"] == "the dashboard is not built; run npm ci && npm run build in gosight/ui"
    assert asset.status_code == 503


def test_rebuilt_index_is_reloaded(dist: Path) -> None:
    client = _client(dist)
    client.get("/")

    replacement = INDEX.replace(b"app", b"new build")
    (dist / "index.html").write_bytes(replacement)
    stat = (dist / "index.html").stat()
    os.utime(dist / "index.html", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    assert client.get("/").content == replacement
