"""Very long host names and label values must not widen the pages past the window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Server, start_agent, start_server, wait_for
from tests.ui.conftest import new_page, wait_for_charts, wait_for_js

pytestmark = pytest.mark.slow

LONG_HOSTNAME = "build-runner-" + "x" * 200 + ".example.internal"
LONG_LABEL = "team=" + "v" * 500
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def long_named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    base = tmp_path_factory.mktemp("long-names")
    machine_id = base / "machine-id"
    machine_id.write_text("10e900000000000000000000000000ab\n", encoding="ascii")
    server = start_server(base / "server", base / "server.log")
    agent = start_agent(server.grpc, base / "agent", base / "agent.log", "--interval", "1",
                        "--agent.hostname", LONG_HOSTNAME, "--agent.labels", LONG_LABEL,
                        "--agent.machine_id_file", str(machine_id))
    with server.client() as client:
        endpoint_id = wait_for(lambda: next((item["endpoint_id"] for item in
                                             client.get("/api/v1/endpoints").json()["endpoints"]), None),
                               message="the agent's endpoint")
    yield server, endpoint_id
    agent.stop()
    server.proc.stop()


def _page_width(page) -> int:
    return int(page.evaluate("() => document.documentElement.scrollWidth"))


@pytest.mark.parametrize("path", ["/", "/endpoints", "/endpoints/{id}"])
def test_long_names_fit_the_window(browser, long_named: tuple[Server, str], path: str) -> None:
    server, endpoint_id = long_named
    context, page, watch = new_page(browser, server=server, viewport=VIEWPORT)
    try:
        page.goto(server.url + path.format(id=endpoint_id))
        wait_for_js(page, "(name) => document.body.innerText.includes(name.slice(0, 40))", arg=LONG_HOSTNAME)
        if path != "/endpoints":
            wait_for_charts(page)
        width = _page_width(page)
        # Tables scroll inside their panel, which hides columns instead of widening the page.
        hidden = page.evaluate("() => [...document.querySelectorAll('.table-panel')]"
                               ".filter((panel) => panel.scrollWidth > panel.clientWidth).length")
        watch.assert_clean()
    finally:
        context.close()

    assert width <= VIEWPORT["width"], f"{path} is {width} px wide in a {VIEWPORT['width']} px window"
    assert hidden == 0, f"{path} has {hidden} tables wider than their panel"
