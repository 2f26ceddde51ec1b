"""Fixtures for browser tests: Debian's Chromium driven by Playwright, one server and agent per module."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    GosightProcess,
    Server,
    start_agent,
    start_server,
    wait_for,
)

CHROMIUM = os.environ.get("GOSIGHT_TEST_CHROMIUM", "/usr/bin/chromium")
# No network features of the browser itself: every request in a test must come from the page.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "gosight" / "ui" / "dist"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def _require_build() -> None:
    if not (DIST / "index.html").is_file():
        pytest.fail(f"the dashboard is not built ({DIST} has no index.html); run npm ci && npm run build "
                    "in gosight/ui, or build/setup.sh")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package or set "
                    "GOSIGHT_TEST_CHROMIUM")


@pytest.fixture(scope="module")
def browser():
    _require_build()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only browser tests need it

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@dataclass
class Fleet:
    """A running server with one agent that collects every second."""

    server: Server
    agent: GosightProcess
    endpoint_id: str
    hostname: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Start the server and an agent once per module, and wait for enough data to compute rates."""
    root = tmp_path_factory.mktemp("fleet")
    server = start_server(root / "server-data", root / "server.log")
    agent = None
    try:
        agent = start_agent(server.grpc, root / "agent-data", root / "agent.log", "--interval", "1")
        with server.client() as client:
            endpoints = wait_for(lambda: client.get("/api/v1/endpoints").json()["endpoints"],
                                 message="the agent's endpoint")
            endpoint = endpoints[0]
            query = f'rate(node_cpu_seconds_total{{endpoint_id="{endpoint["endpoint_id"]}"}}[1m])'
            wait_for(lambda: _has_points(client, query, 3), timeout_s=60,
                     message="three collections of CPU counters")
        yield Fleet(server, agent, endpoint["endpoint_id"], endpoint["hostname"])
    finally:
        if agent is not None:
            agent.stop()
        server.proc.stop()


def _has_points(client, query: str, count: int) -> bool:
    response = client.get("/prometheus/api/v1/query", params={"query": f"count_over_time(({query})[1m:1s])"})
    result = response.json().get("data", {}).get("result", [])
    return bool(result) and min(float(item["value"][1]) for item in result) >= count


@dataclass
class PageWatch:
    """What a page did: console errors, uncaught exceptions, failed and all requests."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", lambda message: self.errors.append(f"console {message.type}: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("requestfailed", lambda request: self.errors.append(
            f"request failed: {request.url} {request.failure}") if "net::ERR_ABORTED" not in str(request.failure)
            else None)
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda socket: self.websockets.append(socket.url))

    def assert_clean(self) -> None:
        assert not self.errors, "the page reported errors:\n" + "\n".join(self.errors)


@pytest.fixture(params=["light", "dark"])
def color_scheme(request) -> str:
    return request.param


def new_page(browser, color_scheme: str = "light", viewport: dict | None = None, *,
             server: Server | None = None, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD):
    """Open a browser context and page; with `server`, sign in to it first as `username`."""
    context = browser.new_context(color_scheme=color_scheme, viewport=viewport or {"width": 1280, "height": 900},
                                  service_workers="block")
    if server is not None:
        sign_in(context, server, username, password)
    page = context.new_page()
    watch = PageWatch()
    watch.attach(page)
    return context, page, watch


def sign_in(context, server: Server, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> None:
    """Sign the browser context in, as the sign-in form would; the session cookie lands in the context."""
    response = context.request.post(f"{server.url}/api/v1/auth/login", data={"username": username,
                                                                             "password": password},
                                    headers={"Origin": server.url})
    assert response.status == 200, f"signing in as {username} failed: {response.status} {response.text()}"


@pytest.fixture
def page_and_watch(browser, fleet: Fleet) -> Iterator[tuple]:
    context, page, watch = new_page(browser, server=fleet.server)
    yield page, watch
    context.close()


def wait_for_js(page, expression: str, arg=None, timeout_ms: int = 30_000) -> None:
    """Poll a JavaScript function until it returns a truthy value.

    Playwright's wait_for_function compiles its predicate inside the page, which the
    dashboard's Content-Security-Policy forbids (no eval); page.evaluate goes through
    the DevTools protocol, which the policy does not cover.
    """
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415 - only browser tests need it

    deadline = time.monotonic() + timeout_ms / 1000
    last_error = None
    while True:
        try:
            if page.evaluate(expression, arg):
                return
        except PlaywrightError as error:
            # The app renders after it has asked the server who is signed in, so elements may not exist yet.
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for {expression}; last error: "
                                 f"{last_error}")
        page.wait_for_timeout(100)


def wait_for_charts(page, timeout_ms: int = 30_000) -> list[dict]:
    """Wait until every chart on the page has loaded and drawn; return their data attributes."""
    try:
        _wait_for_drawn(page, timeout_ms)
    except AssertionError:
        states = page.evaluate(
            "() => [...document.querySelectorAll('[data-testid=chart]')].map((c) => ({...c.dataset}))")
        raise AssertionError(f"charts not drawn within {timeout_ms} ms at {page.url}: {states}") from None
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=chart]')].map((chart) => ({
            ...chart.dataset,
            legend: [...chart.querySelectorAll('[data-testid=legend-item]')].map((item) => ({...item.dataset})),
        }))"""
    )


def _wait_for_drawn(page, timeout_ms: int) -> None:
    wait_for_js(
        page,
        """() => {
            const charts = [...document.querySelectorAll('[data-testid=chart]')];
            return charts.length > 0 && charts.every((chart) =>
                (chart.dataset.state === 'ready' && Number(chart.dataset.drawn) > 0) ||
                chart.dataset.state === 'empty' || chart.dataset.state === 'error');
        }""",
        timeout_ms=timeout_ms,
    )


def save_screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def decode_queries(chart: dict) -> list[str]:
    return json.loads(chart["queries"])
