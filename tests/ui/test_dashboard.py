"""The dashboard in headless Chromium against a real server with a real agent."""

from __future__ import annotations

import json
import math
import re
import time
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.ui.conftest import Fleet, decode_queries, new_page, save_screenshot, wait_for_charts, wait_for_js

pytestmark = pytest.mark.slow

TABS = ["overview", "compute", "memory", "disk", "network"]
# Charts that every Linux host has data for; the others (swap, disk I/O) depend on the machine.
CHARTS_WITH_DATA = {"cpu", "memory", "load", "filesystem", "cpu-mode", "cpu-per-core", "procs", "memory-percent"}


def _api_range(fleet: Fleet, query: str, chart: dict) -> list[dict]:
    params = {"query": query, "start": chart["start"], "end": chart["end"], "step": chart["step"]}
    response = httpx.get(f"{fleet.url}/prometheus/api/v1/query_range", params=params, timeout=30,
                         headers=fleet.server.auth_headers())
    body = response.json()
    assert response.status_code == 200, body
    return body["data"]["result"]


def _endpoint_url(fleet: Fleet, tab: str = "overview", extra: str = "") -> str:
    query = f"tab={tab}&" if tab != "overview" else ""
    return f"{fleet.url}/endpoints/{quote(fleet.endpoint_id, safe='')}?{query}{extra}".rstrip("?&")


def test_pages_load_cleanly_in_both_themes(browser, fleet: Fleet, color_scheme: str) -> None:
    context, page, watch = new_page(browser, color_scheme, server=fleet.server)
    # Five minutes: the agent has only run for seconds, and a short range shows its lines.
    pages = [
        ("overview", f"{fleet.url}/?range=5m"),
        ("endpoints", f"{fleet.url}/endpoints"),
        *[(f"endpoint-{tab}", _endpoint_url(fleet, tab, "range=5m")) for tab in TABS],
        ("explore", f"{fleet.url}/explore?q={quote('sum by (mode) (rate(node_cpu_seconds_total[1m]))')}&range=5m"),
    ]
    try:
        for name, url in pages:
            page.goto(url)
            page.wait_for_selector("main h1")
            if name == "endpoints":
                page.wait_for_selector(f"tr[data-endpoint='{fleet.endpoint_id}'] [data-column=cpu] .meter")
            else:
                page.wait_for_selector("[data-testid=chart]")
                wait_for_charts(page)

            assert page.evaluate("document.documentElement.dataset.theme") == color_scheme, name
            save_screenshot(page, f"{name}-{color_scheme}")
        watch.assert_clean()
    finally:
        context.close()


def test_overview_shows_counts_and_busiest(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch

    page.goto(f"{fleet.url}/")
    wait_for_js(page, "() => document.querySelector('[data-testid=count-online]').textContent.trim() === '1'")
    busiest = page.locator("[data-testid=busiest-cpu] a")
    busiest.first.wait_for()
    charts = wait_for_charts(page)

    assert page.locator("[data-testid=count-total]").inner_text() == "1"
    assert busiest.first.inner_text() == fleet.hostname
    assert {chart["panel"] for chart in charts} == {"fleet-cpu", "fleet-memory", "fleet-network", "fleet-reporting"}
    assert all(chart["state"] == "ready" for chart in charts), charts
    watch.assert_clean()


@pytest.mark.parametrize("tab", TABS)
def test_endpoint_charts_match_the_api(page_and_watch, fleet: Fleet, tab: str) -> None:
    page, watch = page_and_watch
    # An absolute range that ended a few seconds ago does not move, so the API must return the same points.
    end_ms = int(time.time() * 1000) - 3000
    extra = f"from={end_ms - 120_000}&to={end_ms}"

    page.goto(_endpoint_url(fleet, tab, extra))
    charts = wait_for_charts(page)

    assert charts, "no charts on the tab"
    for chart in charts:
        assert chart["state"] != "error", chart
        if chart["panel"] in CHARTS_WITH_DATA:
            assert chart["state"] == "ready", chart
            assert int(chart["series"]) > 0, chart
            assert int(chart["drawn"]) > 0, chart
        queries = decode_queries(chart)
        answers = {index: _api_range(fleet, query, chart) for index, query in enumerate(queries)}
        assert len(chart["legend"]) == sum(len(result) for result in answers.values()), chart["panel"]
        for item in chart["legend"]:
            labels = json.loads(item["labels"])
            expected = next(series for series in answers[int(item["query"])] if series["metric"] == labels)
            last_time, last_value = expected["values"][-1]
            assert item["last"] == last_value, (chart["panel"], labels)
            assert math.isclose(float(item["lastTime"]), last_time), (chart["panel"], labels)
    watch.assert_clean()


def test_endpoints_table_filters_and_links(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    row = f"tr[data-endpoint='{fleet.endpoint_id}']"

    page.goto(f"{fleet.url}/endpoints")
    page.wait_for_selector(f"{row} [data-column=cpu] .meter")
    cells = {column: page.locator(f"{row} [data-column={column}]").inner_text()
             for column in ("cpu", "memory", "disk")}
    page.get_by_test_id("endpoint-search").fill("no-such-host-anywhere")
    page.wait_for_selector("text=No endpoint matches these filters.")
    searched_url = page.url
    page.get_by_test_id("endpoint-search").fill("")
    page.wait_for_selector(row)
    page.get_by_test_id("status-filter").select_option("offline")
    page.wait_for_selector("text=No endpoint matches these filters.")
    page.get_by_test_id("status-filter").select_option("online")
    page.locator(f"{row} a").first.click()
    page.wait_for_selector("[data-testid=endpoint-title]")
    # The title shows the endpoint id until the endpoint's details arrive.
    wait_for_js(page, "(name) => document.querySelector('[data-testid=endpoint-title]').textContent === name",
                fleet.hostname)

    for column, text in cells.items():
        assert re.fullmatch(r"[<>]?\d+(\.\d+)?%", text.strip()), (column, text)
    assert "search=no-such-host-anywhere" in searched_url
    assert urlsplit(page.url).path == f"/endpoints/{quote(fleet.endpoint_id, safe='')}"
    assert page.get_by_test_id("endpoint-title").inner_text() == fleet.hostname
    watch.assert_clean()


def test_theme_toggle_persists_across_reload(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    page.goto(f"{fleet.url}/")
    theme = "document.documentElement.dataset.theme"
    initial = page.evaluate(theme)

    page.get_by_test_id("theme-toggle").click()
    toggled = page.evaluate(theme)
    stored = page.evaluate("localStorage.getItem('gosight.theme')")
    page.reload()
    page.wait_for_selector("main h1")
    after_reload = page.evaluate(theme)
    page.get_by_test_id("theme-toggle").click()
    back = page.evaluate(theme)
    stored_back = page.evaluate("localStorage.getItem('gosight.theme')")

    assert initial == "light", "with no stored choice the theme follows the system (light here)"
    assert toggled == "dark"
    assert stored == "dark"
    assert after_reload == "dark"
    assert back == "light"
    assert stored_back is None, "choosing the system's theme forgets the stored choice"
    watch.assert_clean()


def test_explorer_graph_and_table(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    page.goto(f"{fleet.url}/explore")
    editor = page.get_by_test_id("query-input").first

    editor.click()
    editor.press_sequentially("node_loa")
    page.wait_for_selector("[role=option]:has-text('node_load1')")
    options = page.locator("[role=option]").all_inner_texts()
    page.keyboard.press("Tab")
    completed = editor.input_value()
    editor.press_sequentially('{endpoint_id="')
    page.wait_for_selector(f"[role=option]:has-text('{fleet.endpoint_id}')")
    page.keyboard.press("Tab")
    editor.press_sequentially("}")
    page.keyboard.press("Enter")
    charts = wait_for_charts(page)
    url_after_run = page.url
    page.get_by_role("tab", name="Table").click()
    page.wait_for_selector("[data-testid=result-table]")
    table_text = page.get_by_test_id("result-table").inner_text()

    assert any(option.endswith("node_load1") for option in options), options
    assert completed.startswith("node_load1")
    assert editor.input_value() == f'node_load1{{endpoint_id="{fleet.endpoint_id}"}}'
    assert charts[0]["state"] == "ready", charts
    assert int(charts[0]["series"]) == 1, charts
    assert "q=node_load1" in url_after_run
    assert "node_load1{" in table_text
    assert fleet.endpoint_id in table_text
    assert "view=table" in page.url
    watch.assert_clean()


def test_explorer_plots_several_queries(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    queries = ["node_load1", "node_load5", "node_load15"]

    page.goto(f"{fleet.url}/explore?" + "&".join(f"q={quote(query)}" for query in queries))
    charts = wait_for_charts(page)

    assert len(page.get_by_test_id("query-input").all()) == 3
    assert decode_queries(charts[0]) == queries
    assert {item["query"] for item in charts[0]["legend"]} == {"0", "1", "2"}
    watch.assert_clean()


def test_explorer_editor_follows_history(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    page.goto(f"{fleet.url}/explore")
    editor = page.get_by_test_id("query-input").first

    # Typed as soon as the page has loaded, as a quick user would.
    editor.fill("node_load1")
    editor.press("Enter")
    _wait_for_chart_of(page, "node_load1")
    editor.fill("node_load5")
    editor.press("Enter")
    _wait_for_chart_of(page, "node_load5")
    page.go_back()
    _wait_for_chart_of(page, "node_load1")
    restored = editor.input_value()

    assert restored == "node_load1", "Back restores the previous query into the editor"
    watch.assert_clean()


def _wait_for_chart_of(page, query: str) -> None:
    wait_for_js(page, """(query) => {
        const chart = document.querySelector('[data-testid=chart]');
        return chart !== null && chart.dataset.state === 'ready' && Number(chart.dataset.drawn) > 0 &&
            JSON.stringify(JSON.parse(chart.dataset.queries || '[]')) === JSON.stringify([query]);
    }""", arg=query)


def _run_explorer_query(page, editor, query: str) -> dict:
    """Run `query` in the explorer and return the chart's data attributes once it has loaded it."""
    editor.fill(query)
    editor.press("Enter")
    wait_for_js(page, """(query) => {
        const chart = document.querySelector('[data-testid=chart]');
        return chart !== null && ['ready', 'empty', 'error'].includes(chart.dataset.state) &&
            JSON.stringify(JSON.parse(chart.dataset.queries || '[]')) === JSON.stringify([query]);
    }""", arg=query)
    return page.evaluate("""() => {
        const chart = document.querySelector('[data-testid=chart]');
        return {
            ...chart.dataset,
            error: chart.querySelector('[role=alert]')?.textContent ?? '',
            legend: [...chart.querySelectorAll('[data-testid=legend-item]')].map((item) => JSON.parse(item.dataset.labels)),
        };
    }""")


def test_explorer_chart_recovers_from_empty_result(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    page.goto(f"{fleet.url}/explore")
    editor = page.get_by_test_id("query-input").first
    # All three guess the same unit, so the explorer keeps one chart, and one uPlot instance, for all of them.
    queries = ["nosuchmetric", "node_load1", "sum by (mode) (rate(node_cpu_seconds_total[1m]))"]

    empty = _run_explorer_query(page, editor, queries[0])
    single = _run_explorer_query(page, editor, queries[1])
    single_expected = _api_range(fleet, queries[1], single)
    several = _run_explorer_query(page, editor, queries[2])
    several_expected = _api_range(fleet, queries[2], several)

    assert empty["state"] == "empty", empty
    assert empty["series"] == "0"
    for chart, expected in [(single, single_expected), (several, several_expected)]:
        assert chart["error"] == "", chart
        assert chart["state"] == "ready", chart
        assert int(chart["drawnSeries"]) == len(expected), "uPlot draws every series of the result"
        assert sorted(map(json.dumps, chart["legend"])) == sorted(json.dumps(item["metric"]) for item in expected)
    assert len(several_expected) > 1, "the last query has one series per CPU mode"
    assert int(single["drawn"]) > int(empty["drawn"])
    assert int(several["drawn"]) > int(single["drawn"])
    watch.assert_clean()


def test_explorer_shows_infinities(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    queries = ["1/0", "-vector(1)/0"]

    page.goto(f"{fleet.url}/explore?" + "&".join(f"q={quote(query)}" for query in queries) + "&view=table")
    page.get_by_test_id("result-table").wait_for()
    scalar = page.get_by_test_id("result-scalar").inner_text()
    cell = page.locator("[data-testid=result-table] td.numeric")
    cell_text = cell.inner_text()
    cell_value = cell.get_attribute("data-value")
    page.get_by_role("tab", name="Graph").click()
    charts = wait_for_charts(page)
    legend = page.locator("[data-testid=chart] .legend-value").all_inner_texts()
    plot = page.locator("[data-testid=chart] .u-over").bounding_box()
    page.mouse.move(plot["x"] + plot["width"] / 2, plot["y"] + plot["height"] / 2)
    page.locator(".chart-tooltip").wait_for()
    tooltip = page.locator(".chart-tooltip-value").all_inner_texts()

    assert scalar == "+Inf"
    assert cell_text == "-Inf"
    assert cell_value == "-Inf"
    assert charts[0]["state"] == "ready", charts
    assert decode_queries(charts[0]) == queries
    assert legend == ["+Inf", "-Inf"]
    assert tooltip == ["+Inf", "-Inf"], "the tooltip shows the samples that the canvas cannot draw"
    watch.assert_clean()


def test_explorer_shows_errors_inline(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch

    page.goto(f"{fleet.url}/explore?q={quote('rate(node_load1[1m]')}&q=node_load1")
    error = page.get_by_test_id("query-error")
    error.wait_for()
    charts = wait_for_charts(page)

    assert "parse error" in error.inner_text()
    assert page.get_by_test_id("query-error").count() == 1, "only the broken query shows an error"
    assert decode_queries(charts[0]) == ["node_load1"], "the valid query is still drawn"
    # The API returns 400 for the broken query, and the browser logs that as a failed resource load.
    watch.errors = [error for error in watch.errors if "400" not in error]
    watch.assert_clean()


def test_live_mode_moves_charts_without_refetching(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    range_requests: list[str] = []
    page.on("request", lambda request: range_requests.append(request.url) if "query_range" in request.url else None)

    page.goto(_endpoint_url(fleet, "overview", "range=5m&refresh=live"))
    charts = wait_for_charts(page)
    page.wait_for_selector("[data-testid=live-status]:has-text('Live')")
    fetched = len(range_requests)
    last_x = {chart["panel"]: float(chart["lastX"]) for chart in charts}
    wait_for_js(
        page,
        """(before) => Number(document.querySelector('[data-testid=chart][data-panel=cpu]').dataset.lastX) >= before + 2""",
        arg=last_x["cpu"],
        timeout_ms=20_000,
    )

    assert fetched >= len(charts)
    assert len(range_requests) == fetched, "live updates must not fetch the range again"
    assert [url for url in watch.websockets if url.endswith("/ws/live")], watch.websockets
    watch.assert_clean()


def test_tabs_follow_arrow_keys_and_url(page_and_watch, fleet: Fleet) -> None:
    page, watch = page_and_watch
    page.goto(_endpoint_url(fleet, "network", "range=15m"))
    selected = page.locator("[role=tab][aria-selected=true]")

    restored = selected.inner_text()
    label = page.get_by_test_id("time-range").inner_text()
    selected.focus()
    page.keyboard.press("ArrowRight")
    wrapped = selected.inner_text()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    focused = page.evaluate("document.activeElement.textContent")

    assert restored == "Network"
    assert label.strip() == "Last 15 minutes"
    assert wrapped == "Overview", "ArrowRight on the last tab wraps to the first"
    assert focused == "Disk"
    assert "tab=disk" in page.url
    assert "range=15m" in page.url
    watch.assert_clean()


def test_tour_requests_stay_on_the_server(browser, fleet: Fleet) -> None:
    context, page, watch = new_page(browser, server=fleet.server)
    origin = fleet.url
    try:
        page.goto(f"{origin}/")
        wait_for_charts(page)
        page.get_by_role("link", name="Endpoints").first.click()
        page.wait_for_selector(f"tr[data-endpoint='{fleet.endpoint_id}'] [data-column=cpu] .meter")
        page.locator(f"tr[data-endpoint='{fleet.endpoint_id}'] a").first.click()
        wait_for_charts(page)
        for tab in TABS[1:]:
            page.get_by_role("tab", name=tab.capitalize()).click()
            wait_for_charts(page)
        page.get_by_test_id("refresh").select_option("live")
        page.wait_for_selector("[data-testid=live-status]:has-text('Live')")
        page.get_by_test_id("time-range").click()
        page.get_by_role("button", name="Last 6 hours").click()
        wait_for_charts(page)
        page.get_by_role("link", name="Explore").click()
        editor = page.get_by_test_id("query-input").first
        editor.fill("node_load1")
        editor.press("Enter")
        wait_for_charts(page)
        page.get_by_test_id("theme-toggle").click()
        page.go_back()
        page.wait_for_selector("main h1")
        watch.assert_clean()
    finally:
        context.close()

    host = urlsplit(origin).netloc
    foreign = [url for url in watch.requests + watch.websockets if urlsplit(url).netloc != host]
    assert len(watch.requests) > 20, watch.requests
    assert not foreign, f"requests left the server's origin: {foreign}"
    assert all(urlsplit(url).scheme in ("http", "ws") for url in watch.requests + watch.websockets)
