"""Live mode across a server restart: after the socket reconnects, charts fetch their range again."""

from __future__ import annotations

from pathlib import Path

import pytest

from gosight.config import split_host_port
from tests.support.processes import start_agent, start_server, wait_for
from tests.ui.conftest import new_page, wait_for_charts, wait_for_js

pytestmark = pytest.mark.slow


def test_live_charts_refetch_after_reconnect(browser, tmp_path: Path) -> None:
    server = start_server(tmp_path / "server", tmp_path / "server.log")
    agent = start_agent(server.grpc, tmp_path / "agent", tmp_path / "agent.log", "--interval", "1",
                        "--agent.backoff.max_s", "1")
    restarted = None
    context, page, _ = new_page(browser, server=server)
    range_requests: list[str] = []
    page.on("request", lambda request: range_requests.append(request.url) if "query_range" in request.url else None)
    try:
        with server.client() as client:
            wait_for(lambda: client.get("/api/v1/endpoints").json()["endpoints"], message="the agent's endpoint")
        page.goto(f"{server.url}/explore?q=node_load1&range=5m&refresh=live")
        wait_for_charts(page)
        page.wait_for_selector("[data-testid=live-status]:has-text('Live')")
        before_restart = len(range_requests)

        server.proc.stop()
        wait_for_js(page, "() => !document.querySelector('[data-testid=live-status]').innerText.includes('Live')")
        _, http_port = split_host_port(server.http)
        _, grpc_port = split_host_port(server.grpc)
        restarted = start_server(tmp_path / "server", tmp_path / "server2.log",
                                 http_listen=f"127.0.0.1:{http_port}", grpc_listen=f"127.0.0.1:{grpc_port}")
        page.wait_for_selector("[data-testid=live-status]:has-text('Live')", timeout=60_000)
        wait_for(lambda: len(range_requests) > before_restart, timeout_s=30,
                 message="the chart to fetch its range after the reconnect")
        after_reconnect = len(range_requests)
    finally:
        context.close()
        agent.stop()
        if restarted is not None:
            restarted.proc.stop()

    assert before_restart >= 1
    assert after_reconnect > before_restart
