"""The endpoint id conflict warnings in headless Chromium, against a real server and real agents.

Two agents read one machine id, as on machines cloned from one image. A third agent has
a machine id of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from gosight.server.endpoints import split_endpoint_id
from tests.support.processes import GosightProcess, Server, start_agent, start_server, wait_for
from tests.ui.conftest import new_page, save_screenshot, wait_for_js

pytestmark = pytest.mark.slow

MACHINE_ID = "c10e0000000000000000000000000002"
SHARED_ID = "host-" + MACHINE_ID[:12]
SOLO_MACHINE_ID = "5010000000000000000000000000000a"
SOLO_ID = "host-" + SOLO_MACHINE_ID[:12]
AGENT_FLAGS = ("--interval", "1", "--agent.heartbeat_s", "1", "--agent.backoff.max_s", "1")


@dataclass
class Clones:
    server: Server
    # Where the server stores clone-b's data, because clone-a keeps SHARED_ID.
    split_id: str
    # The conflict's hint as the API returns it.
    hint: str

    @property
    def url(self) -> str:
        return self.server.url


def _start_named_agent(server: Server, base: Path, name: str, machine_id_file: Path) -> GosightProcess:
    return start_agent(server.grpc, base / f"{name}-data", base / f"{name}.log", *AGENT_FLAGS,
                       "--agent.hostname", name, "--agent.machine_id_file", str(machine_id_file))


def _conflict(server: Server, endpoint_id: str) -> dict | None:
    with server.client() as client:
        return client.get(f"/api/v1/endpoints/{quote(endpoint_id, safe='')}").json().get("conflict")


def _both_online(server: Server, endpoint_id: str) -> dict | None:
    """Return the endpoint's conflict once it lists two agents that are both online."""
    conflict = _conflict(server, endpoint_id)
    if conflict and conflict["active"] and len(conflict["agents"]) == 2:
        if all(agent["status"] == "online" for agent in conflict["agents"]):
            return conflict
    return None


def _start_clones(server: Server, base: Path) -> tuple[list[GosightProcess], str]:
    """Start clone-a, then clone-b on the same machine id. Return both agents and clone-b's endpoint id."""
    shared_file = base / "machine-id"
    shared_file.write_text(MACHINE_ID + "\n", encoding="ascii")
    agents = [_start_named_agent(server, base, "clone-a", shared_file)]
    with server.client() as client:
        wait_for(lambda: client.get(f"/api/v1/endpoints/{SHARED_ID}").status_code == 200,
                 message=f"clone-a's endpoint {SHARED_ID}")
    # The server splits clone-b off only while clone-a is present, so clone-b starts second.
    agents.append(_start_named_agent(server, base, "clone-b", shared_file))
    split_id = split_endpoint_id(SHARED_ID, agents[1].wait_for_log("agent started")["agent_id"])
    return agents, split_id


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clones]:
    """A server, agents clone-a then clone-b on one machine id, and agent solo on another."""
    base = tmp_path_factory.mktemp("ui-clones")
    solo_file = base / "solo-machine-id"
    solo_file.write_text(SOLO_MACHINE_ID + "\n", encoding="ascii")
    server = start_server(base / "server", base / "server.log")
    agents: list[GosightProcess] = []
    try:
        started, split_id = _start_clones(server, base)
        agents.extend(started)
        agents.append(_start_named_agent(server, base, "solo", solo_file))
        conflict = wait_for(lambda: _both_online(server, split_id), message=f"the conflict on {split_id}")
        with server.client() as client:
            wait_for(lambda: client.get(f"/api/v1/endpoints/{SOLO_ID}").status_code == 200,
                     message=f"solo's endpoint {SOLO_ID}")
        yield Clones(server, split_id, conflict["hint"])
    finally:
        for agent in agents:
            agent.stop()
        server.proc.stop()


def _endpoint_url(clones: Clones, endpoint_id: str) -> str:
    return f"{clones.url}/endpoints/{quote(endpoint_id, safe='')}"


def _expected_hint(hint: str) -> str:
    """Return the server's hint as the banner writes it: capitalized, with a final period."""
    return f"To fix it: {hint[0].upper()}{hint[1:]}."


def _wait_for_banner(page) -> None:
    wait_for_js(page, "() => document.querySelector('[data-testid=conflict-banner]') !== null")


def _listed_agents(page) -> list[dict]:
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=conflict-banner] li')].map((item) => ({
            endpoint: item.dataset.endpoint,
            name: item.querySelector('a').textContent,
            href: item.querySelector('a').getAttribute('href'),
            status: item.querySelector('[data-status]').dataset.status,
        }))"""
    )


def test_banner_on_split_endpoint(browser, clones: Clones, color_scheme: str) -> None:
    context, page, watch = new_page(browser, color_scheme, server=clones.server)
    try:
        page.goto(_endpoint_url(clones, clones.split_id))
        _wait_for_banner(page)
        banner = page.get_by_test_id("conflict-banner")
        summary = page.get_by_test_id("conflict-summary").inner_text()
        details = page.get_by_test_id("conflict-details").inner_text()
        hint = page.get_by_test_id("conflict-hint").inner_text()
        agents = _listed_agents(page)
        save_screenshot(page, f"endpoint-conflict-{color_scheme}")

        assert banner.get_attribute("role") == "alert"
        assert summary == f"This machine shares its endpoint id {SHARED_ID} with another agent."
        assert details == ("The agent on clone-a keeps the id, so the server stores this agent's data under this "
                           f"separate endpoint, {clones.split_id}, and their charts do not mix.")
        assert hint == _expected_hint(clones.hint)
        assert "systemd-machine-id-setup" in hint
        assert len(agents) == 1, agents
        assert agents[0]["endpoint"] == SHARED_ID
        assert agents[0]["name"] == "clone-a"
        assert urlsplit(agents[0]["href"]).path == f"/endpoints/{SHARED_ID}"
        assert agents[0]["status"] == "online"
        watch.assert_clean()
    finally:
        context.close()


def test_banner_link_opens_other_endpoint(browser, clones: Clones) -> None:
    context, page, watch = new_page(browser, server=clones.server)
    try:
        page.goto(_endpoint_url(clones, clones.split_id))
        _wait_for_banner(page)
        page.get_by_test_id("conflict-banner").get_by_role("link", name="clone-a").click()
        wait_for_js(page, "(name) => document.querySelector('[data-testid=endpoint-title]').textContent === name",
                    "clone-a")
        _wait_for_banner(page)
        details = page.get_by_test_id("conflict-details").inner_text()
        hint = page.get_by_test_id("conflict-hint").inner_text()
        agents = _listed_agents(page)

        assert urlsplit(page.url).path == f"/endpoints/{SHARED_ID}"
        assert details == ("This agent keeps the id, and the server stores the other agent's data under an "
                           "endpoint of its own, so their charts do not mix.")
        assert hint == _expected_hint(clones.hint)
        assert [agent["endpoint"] for agent in agents] == [clones.split_id]
        assert agents[0]["name"] == "clone-b"
        assert urlsplit(agents[0]["href"]).path == f"/endpoints/{quote(clones.split_id, safe='')}"
        watch.assert_clean()
    finally:
        context.close()


def test_no_banner_without_conflict(browser, clones: Clones) -> None:
    context, page, watch = new_page(browser, server=clones.server)
    try:
        page.goto(_endpoint_url(clones, SOLO_ID))
        # The facts render with the endpoint's details, the same response that would carry a conflict.
        page.wait_for_selector("[data-testid=facts]")
        wait_for_js(page, "() => document.querySelector('[data-testid=endpoint-title]').textContent === 'solo'")

        assert page.locator("[data-testid=conflict-banner]").count() == 0
        watch.assert_clean()
    finally:
        context.close()


def test_endpoints_table_marks_shared_ids(browser, clones: Clones) -> None:
    context, page, watch = new_page(browser, server=clones.server)
    try:
        page.goto(f"{clones.url}/endpoints")
        for endpoint_id in (SHARED_ID, clones.split_id, SOLO_ID):
            page.wait_for_selector(f"tr[data-endpoint='{endpoint_id}']")
        markers = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('tr[data-endpoint]')].map((row) => {
                const marker = row.querySelector('[data-testid=conflict-marker]');
                return [row.dataset.endpoint, marker && {text: marker.textContent, title: marker.title}];
            }))"""
        )
        save_screenshot(page, "endpoints-conflict-light")

        assert markers[SOLO_ID] is None
        owner, clone = markers[SHARED_ID], markers[clones.split_id]
        owner_title = (f"Shares endpoint id {SHARED_ID} with clone-b. "
                       "Open the endpoint to see how to fix it.")
        clone_title = (f"Shares endpoint id {SHARED_ID} with clone-a. "
                       "Open the endpoint to see how to fix it.")
        assert owner == {"text": f"Shared id: {owner_title}", "title": owner_title}
        assert clone == {"text": f"Shared id: {clone_title}", "title": clone_title}
        watch.assert_clean()
    finally:
        context.close()


def test_banner_after_clone_stops(browser, tmp_path: Path) -> None:
    """Once clone-b stops, clone-a's banner turns into a status message and shows clone-b offline."""
    server = start_server(tmp_path / "server", tmp_path / "server.log")
    agents: list[GosightProcess] = []
    try:
        started, split_id = _start_clones(server, tmp_path)
        agents.extend(started)
        second_id = agents[1].wait_for_log("agent started")["agent_id"]
        wait_for(lambda: _both_online(server, SHARED_ID), message=f"the conflict on {SHARED_ID}")
        # Only an open control stream carries the goodbye that marks the agent offline at once.
        wait_for(lambda: any(record.get("msg") == "agent connected" and record.get("agent_id") == second_id
                             for record in server.proc.lines), message="clone-b's control stream")
        agents[1].stop()
        wait_for(lambda: _conflict(server, SHARED_ID)["active"] is False, message="the conflict to become inactive")

        context, page, watch = new_page(browser, server=server)
        try:
            page.goto(f"{server.url}/endpoints/{SHARED_ID}")
            _wait_for_banner(page)
            role = page.get_by_test_id("conflict-banner").get_attribute("role")
            details = page.get_by_test_id("conflict-details").inner_text()
            agents_listed = _listed_agents(page)
            watch.assert_clean()
        finally:
            context.close()
    finally:
        for agent in agents:
            if agent.process.poll() is None:
                agent.stop()
        server.proc.stop()

    assert role == "status"
    assert details.endswith(" Only one of these agents is online or idle now.")
    assert [(agent["endpoint"], agent["status"]) for agent in agents_listed] == [(split_id, "offline")]
