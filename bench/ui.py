"""Dashboard benchmark: initial JavaScript size and endpoint detail drawing time.

Reports, in one run:
- the gzip size of the JavaScript that index.html loads before any page code runs
  (the entry script and the chunks it preloads; lazily loaded pages are listed apart);
- the time from navigation until every chart of the endpoint detail page has drawn
  its data, with 24 hours of one host's metrics in the store: once as a full page
  load of /endpoints/<id>?range=1d, and once as a click from the endpoints list.

The 24 hours are built from a real agent's series: a server and an agent run for a
few seconds, then the stopped server's store gets samples every `--interval-s` for the
day before, with the same names and labels, written through the store API. The
server then starts again on that store, with the agent running, and Chromium
(Debian's, through Playwright) loads the page.

Usage: python bench/ui.py [--hours 24] [--interval-s 10] [--runs 5]
"""

from __future__ import annotations

import argparse
import gzip
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gosight.agent.catalog import CATALOG  # noqa: E402
from gosight.model import Matcher, SampleBatch  # noqa: E402
from gosight.store.metrics_duckdb import MetricStore  # noqa: E402
from tests.support.processes import Server, start_agent, start_server, wait_for  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, DIST, sign_in, wait_for_charts  # noqa: E402

TARGET_GZIP_BYTES = 150 * 1024
TARGET_DRAW_MS = 1000
WRITE_CHUNK_SAMPLES = 500_000


def initial_javascript(dist: Path) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """Return (initial, lazy) scripts as (name, bytes, gzip bytes); initial ones are those index.html loads."""
    index = (dist / "index.html").read_text(encoding="utf-8")
    initial_names = set(re.findall(r'<script[^>]+src="/assets/([^"]+\.js)"', index))
    initial_names |= set(re.findall(r'<link[^>]+rel="modulepreload"[^>]+href="/assets/([^"]+\.js)"', index))
    initial, lazy = [], []
    for path in sorted((dist / "assets").glob("*.js")):
        data = path.read_bytes()
        entry = (path.name, len(data), len(gzip.compress(data, compresslevel=9)))
        (initial if path.name in initial_names else lazy).append(entry)
    return initial, lazy


def capture_series(data_dir: Path, logs: Path) -> tuple[str, str]:
    """Run a server and an agent until every collector has reported; return the endpoint id and host name."""
    server = start_server(data_dir / "server", logs / "capture-server.log")
    agent = None
    try:
        agent = start_agent(server.grpc, data_dir / "agent", logs / "capture-agent.log", "--interval", "1")
        with server.client() as client:
            endpoint = wait_for(lambda: client.get("/api/v1/endpoints").json()["endpoints"],
                                message="the agent's endpoint")[0]
            # Four collections: every counter then has a measured rate to extend backwards.
            first = wait_for(lambda: _stored_samples(client), message="the first stored samples")
            wait_for(lambda: _stored_samples(client) >= 4 * first, message="four collections")
    finally:
        if agent is not None:
            agent.stop()
        server.proc.stop()
    return endpoint["endpoint_id"], endpoint["hostname"]


def _stored_samples(client) -> float:
    match = re.search(r"^gosight_store_samples_written_total (\S+)$", client.get("/metrics").text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def backfill(store_path: Path, endpoint_id: str, hours: float, interval_s: float) -> tuple[int, int]:
    """Write `hours` of samples before the first real one for every series of the endpoint; return counts."""
    store = MetricStore(store_path)
    try:
        series = store.select_series([Matcher("endpoint_id", "=", endpoint_id)])
        real = store.read_samples(series, 0, 2**62)
        first_real_ms = min(int(item.timestamps_ms[0]) for item in real if item.timestamps_ms.size)
        interval_ms = int(interval_s * 1000)
        count = int(hours * 3600 * 1000 // interval_ms)
        times = first_real_ms - interval_ms * np.arange(count, 0, -1, dtype=np.int64)
        rng = np.random.default_rng(7)
        columns = [(item.series_id, synthesize(item, times, rng)) for item in real if item.timestamps_ms.size]

        pending: list[SampleBatch] = []
        pending_size = 0
        for series_id, values in columns:
            pending.append(SampleBatch(np.full(count, series_id, dtype=np.uint32), times, values))
            pending_size += count
            if pending_size >= WRITE_CHUNK_SAMPLES:
                store.write(pending)
                pending, pending_size = [], 0
        if pending:
            store.write(pending)
        store.compact()
        return len(columns), len(columns) * count
    finally:
        store.close()


def synthesize(item, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invent a day of plausible history that ends at the series' first real sample.

    Gauges wander within a few percent of their real value with a six-hour wave.
    Counters run backwards from their first real value at their measured rate,
    modulated the same way, and stop at zero.
    """
    name = dict(item.labels).get("__name__", "")
    spec = CATALOG.get(name)
    first_value = float(item.values[0])
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * times / 21_600_000 + phase)
    if spec is None or spec.type != "counter":
        noise = rng.normal(0, 0.01, times.size)
        return np.maximum(0.0, first_value * (1 + 0.05 * wave + noise))

    elapsed_s = (item.timestamps_ms[-1] - item.timestamps_ms[0]) / 1000
    rate = (float(item.values[-1]) - first_value) / elapsed_s if elapsed_s > 0 else 0.0
    rate = max(rate, 0.0)
    step_s = np.diff(np.append(times, item.timestamps_ms[0])) / 1000
    increments = rate * step_s * (1 + 0.5 * wave) * rng.uniform(0.8, 1.2, times.size)
    # The value at each time is the first real value minus everything added after it.
    after = np.cumsum(increments[::-1])[::-1]
    return np.maximum(0.0, first_value - after)


def measure(server: Server, endpoint_id: str, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    detail = f"/endpoints/{quote(endpoint_id, safe='')}?range=1d"
    results: dict[str, list[float]] = {"page load": [], "click from list": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        sign_in(context, server)
        page = context.new_page()
        url = server.url
        page.goto(url + detail)  # warm-up: caches, the server's first queries
        wait_for_charts(page, timeout_ms=60_000)
        for _ in range(runs):
            page.goto(url + detail)
            charts = wait_for_charts(page, timeout_ms=60_000)
            _check_data(charts)
            results["page load"].append(page.evaluate("performance.now()"))

            page.goto(f"{url}/endpoints?range=1d")
            link = page.locator(f"tr[data-endpoint='{endpoint_id}'] a").first
            link.wait_for()
            started = page.evaluate("performance.now()")
            link.click()
            page.wait_for_selector("[data-testid=chart]")
            charts = wait_for_charts(page, timeout_ms=60_000)
            _check_data(charts)
            results["click from list"].append(page.evaluate("performance.now()") - started)
        browser.close()
    return results


def _check_data(charts: list[dict]) -> None:
    drawn = [chart for chart in charts if chart["state"] == "ready"]
    if len(drawn) < 4 or any(chart["state"] == "error" for chart in charts):
        raise SystemExit(f"charts did not load their data: {charts}")
    too_short = [chart["panel"] for chart in drawn if int(chart["end"]) - int(chart["start"]) < 86_000]
    if too_short:
        raise SystemExit(f"charts did not cover 24 hours: {too_short}")
    # At a 5-minute step a day has 288 points; most of them must hold data, not gaps.
    sparse = [(chart["panel"], chart["filled"]) for chart in drawn if int(chart["filled"]) < 250]
    if sparse:
        raise SystemExit(f"charts have too few points with data: {sparse}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="history to generate, in hours (default 24)")
    parser.add_argument("--interval-s", type=float, default=10.0,
                        help="spacing of generated samples, in seconds (default 10, the agent's default)")
    parser.add_argument("--runs", type=int, default=5, help="measured page loads (default 5)")
    args = parser.parse_args()

    initial, lazy = initial_javascript(DIST)
    initial_gzip = sum(size for _, _, size in initial)
    print(f"machine: {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")
    for name, raw, packed in initial:
        print(f"initial script {name}: {raw / 1024:.1f} KiB, {packed / 1024:.1f} KiB gzip")
    for name, raw, packed in lazy:
        print(f"lazy script {name}: {raw / 1024:.1f} KiB, {packed / 1024:.1f} KiB gzip")
    print(f"initial JavaScript: {initial_gzip / 1024:.1f} KiB gzip (target <= {TARGET_GZIP_BYTES // 1024} KiB)")

    with tempfile.TemporaryDirectory(prefix="gosight-bench-ui-") as temp:
        root = Path(temp)
        logs = root / "logs"
        logs.mkdir()
        endpoint_id, hostname = capture_series(root, logs)
        started = time.perf_counter()
        series, samples = backfill(root / "server" / "metrics.duckdb", endpoint_id, args.hours, args.interval_s)
        print(f"store: {series} series of {hostname}, {samples:,} samples over {args.hours:g} h written in "
              f"{time.perf_counter() - started:.1f} s")

        server = start_server(root / "server", logs / "server.log")
        agent = None
        try:
            agent = start_agent(server.grpc, root / "agent", logs / "agent.log")
            results = measure(server, endpoint_id, args.runs)
        finally:
            if agent is not None:
                agent.stop()
            server.proc.stop()

    slow = False
    for label, times in results.items():
        median = statistics.median(times)
        slow |= median > TARGET_DRAW_MS
        print(f"endpoint detail, all charts drawn, {label}: median {median:.0f} ms, "
              f"min {min(times):.0f} ms, max {max(times):.0f} ms over {len(times)} runs "
              f"(target <= {TARGET_DRAW_MS} ms)")
    return 1 if slow or initial_gzip > TARGET_GZIP_BYTES else 0


if __name__ == "__main__":
    sys.exit(main())
