"""The Containers tab, the container detail view and the endpoints table with containers,
in headless Chromium against a real server, a real agent and a private Podman."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pytest

from tests.containers.podman import LOCAL_IMAGE, Podman, missing_requirements, start_podman
from tests.support.processes import GosightProcess, Server, start_agent, start_server, wait_for
from tests.ui.conftest import _has_points, new_page, save_screenshot, wait_for_charts, wait_for_js

pytestmark = pytest.mark.slow

NAMES = ("ui-web", "ui-worker", "ui-stopped")


@dataclass
class ContainerFleet:
    podman: Podman
    server: Server
    agent: GosightProcess
    host_id: str
    hostname: str
    ids: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def endpoint_id(self, name: str) -> str:
        return "ctr-" + self.ids[name][:12]


@pytest.fixture(scope="module")
def container_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerFleet]:
    """Podman with two running containers and a stopped one, watched by an agent every second."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("container-fleet")
    podman = start_podman()
    server = agent = None
    try:
        ids = {
            "ui-web": podman.start_container("ui-web", "--memory", "64m"),
            "ui-worker": podman.start_container("ui-worker"),
            "ui-stopped": podman.start_container("ui-stopped"),
        }
        podman.run("stop", "--time", "0", "ui-stopped")
        server = start_server(root / "server-data", root / "server.log")
        agent = start_agent(server.grpc, root / "agent-data", root / "agent.log", "--interval", "1",
                            "--agent.containers.socket", str(podman.socket))
        with server.client() as client:
            host = wait_for(lambda: client.get("/api/v1/endpoints", params={"kind": "host"}).json()["endpoints"],
                            message="the host endpoint")[0]
            web = "ctr-" + ids["ui-web"][:12]
            query = f'rate(container_cpu_usage_seconds_total{{endpoint_id="{web}"}}[1m])'
            wait_for(lambda: _has_points(client, query, 3), timeout_s=60,
                     message="three collections of container CPU counters")
        yield ContainerFleet(podman, server, agent, host["endpoint_id"], host["hostname"], ids)
    finally:
        if agent is not None:
            agent.stop()
        if server is not None:
            server.proc.stop()
        podman.close()


def _row(name_or_id: str) -> str:
    return f"tr[data-container='{name_or_id}']"


def test_containers_tab_lists_containers(browser, container_fleet: ContainerFleet) -> None:
    fleet = container_fleet
    context, page, watch = new_page(browser, server=fleet.server)
    web, stopped = fleet.endpoint_id("ui-web"), fleet.endpoint_id("ui-stopped")
    try:
        page.goto(f"{fleet.url}/endpoints/{quote(fleet.host_id, safe='')}?tab=containers&range=5m")
        page.wait_for_selector("[data-testid=containers-table]")
        wait_for_js(page, """(ids) => ids.every((id) => {
            const row = document.querySelector(`tr[data-container='${id}'] [data-column=state]`);
            return row && row.textContent.trim() !== '–';
        })""", [fleet.endpoint_id(name) for name in NAMES])
        charts = wait_for_charts(page)
        states = {name: page.locator(f"{_row(fleet.endpoint_id(name))} [data-column=state]").inner_text().strip()
                  for name in NAMES}
        names = page.locator("[data-testid=containers-table] tbody td.cell-name").all_inner_texts()
        web_cpu = page.locator(f"{_row(web)} [data-column=cpu]").inner_text().strip()
        web_memory_meters = page.locator(f"{_row(web)} [data-column=memory] .meter").count()
        worker_memory = page.locator(f"{_row(fleet.endpoint_id('ui-worker'))} [data-column=memory]").inner_text()
        stopped_cpu = page.locator(f"{_row(stopped)} [data-column=cpu]").inner_text().strip()
        selected_tab = page.locator("[role=tab][aria-selected=true]").inner_text()
        save_screenshot(page, "endpoint-containers-light")
        watch.assert_clean()
    finally:
        context.close()

    assert selected_tab == "Containers"
    assert states == {"ui-web": "running", "ui-worker": "running", "ui-stopped": "exited"}, states
    assert names[:2] == ["ui-web", "ui-worker"], f"running containers come first: {names}"
    assert web_cpu.endswith("%"), web_cpu
    assert web_memory_meters == 1, "a container with a limit shows memory as a share of it"
    assert worker_memory.strip().endswith("B"), worker_memory
    assert stopped_cpu == "–", "a stopped container has no CPU"
    by_panel = {chart["panel"]: chart for chart in charts}
    assert set(by_panel) == {"containers-cpu", "containers-memory", "containers-network", "containers-block-io"}
    for panel in ("containers-cpu", "containers-memory", "containers-network"):
        assert by_panel[panel]["state"] == "ready", by_panel[panel]
        assert int(by_panel[panel]["series"]) >= 2, by_panel[panel]
    assert by_panel["containers-block-io"]["state"] in ("ready", "empty"), by_panel["containers-block-io"]


def test_container_detail_shows_charts(browser, container_fleet: ContainerFleet) -> None:
    fleet = container_fleet
    context, page, watch = new_page(browser, server=fleet.server)
    web = fleet.endpoint_id("ui-web")
    try:
        page.goto(f"{fleet.url}/endpoints/{quote(fleet.host_id, safe='')}?tab=containers&range=5m")
        page.locator(f"{_row(web)} a").first.click()
        page.wait_for_selector("[data-testid=container-state]")
        charts = wait_for_charts(page)
        title = page.get_by_test_id("endpoint-title").inner_text()
        state = page.get_by_test_id("container-state").inner_text()
        facts = page.get_by_test_id("facts").inner_text()
        host_link = page.locator("[data-testid=facts] a").first.get_attribute("href")
        memory_legend = page.locator("[data-panel=container-memory] .legend-name").all_inner_texts()
        path = urlsplit(page.url).path
        save_screenshot(page, "container-detail-light")
        watch.assert_clean()
    finally:
        context.close()

    assert path == f"/endpoints/{web}"
    assert title == "ui-web"
    assert state == "running"
    assert LOCAL_IMAGE in facts
    assert "64 MiB" in facts, facts
    assert fleet.hostname in facts
    assert host_link.startswith(f"/endpoints/{quote(fleet.host_id, safe='')}"), host_link
    by_panel = {chart["panel"]: chart for chart in charts}
    assert {"container-cpu", "container-memory", "container-network", "container-block-io"} <= set(by_panel)
    for panel in ("container-cpu", "container-memory", "container-network", "container-packets"):
        assert by_panel[panel]["state"] == "ready", by_panel[panel]
        assert int(by_panel[panel]["drawn"]) > 0, by_panel[panel]
    assert all(chart["state"] != "error" for chart in charts), charts
    assert {"usage", "working set", "RSS", "page cache", "limit"} <= set(memory_legend), memory_legend


def test_endpoints_table_shows_containers_with_host(browser, container_fleet: ContainerFleet) -> None:
    fleet = container_fleet
    context, page, watch = new_page(browser, server=fleet.server)
    web_row = f"tr[data-endpoint='{fleet.endpoint_id('ui-web')}']"
    host_row = f"tr[data-endpoint='{fleet.host_id}']"
    try:
        page.goto(f"{fleet.url}/endpoints?kind=container")
        page.wait_for_selector(f"{web_row} [data-column=cpu] .meter")
        host_cell = page.locator(f"{web_row} [data-column=host]").inner_text().strip()
        host_href = page.locator(f"{web_row} [data-column=host] a").get_attribute("href")
        container_rows = page.locator("[data-testid=endpoints-table] tbody tr").count()
        hosts_listed = page.locator(host_row).count()
        page.get_by_test_id("kind-filter").select_option("host")
        page.wait_for_selector(host_row)
        after_filter = page.locator(web_row).count()
        url = page.url
        watch.assert_clean()
    finally:
        context.close()

    assert host_cell == fleet.hostname
    assert host_href.startswith(f"/endpoints/{quote(fleet.host_id, safe='')}"), host_href
    assert container_rows == len(NAMES)
    assert hosts_listed == 0
    assert after_filter == 0
    assert "kind=host" in url
