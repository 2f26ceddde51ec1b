"""The host collectors against Debian's node_exporter, scraped at the same moment.

Both read the same kernel files. So for every metric name both expose, the label
names must match and the values must agree. Sizes that do not move must be equal.
Other values must lie within 2 % of the range of the agent's two readings, taken
just before and just after the scrape.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from gosight.agent.catalog import CATALOG
from gosight.agent.collectors import build_collectors
from gosight.config import load_config
from tests.support.processes import free_port

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"

pytestmark = pytest.mark.skipif(
    not os.access(NODE_EXPORTER, os.X_OK),
    reason=f"{NODE_EXPORTER} not found; install it with apt-get install prometheus-node-exporter",
)

# --- a small parser of the Prometheus text exposition format


class PromSample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str) -> tuple[dict[str, str], list[PromSample]]:
    """Parse the text format into the TYPE of each family and the list of samples."""
    types: dict[str, str] = {}
    samples: list[PromSample] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind
            continue
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE_LINE.match(line)
        if match is None:
            raise ValueError(f"line {number} is not a sample: {line!r}")
        name, label_text, value = match.groups()
        samples.append(PromSample(name, _parse_labels(label_text or "", number), float(value)))
    return types, samples


def _parse_labels(text: str, number: int) -> dict[str, str]:
    labels = {}
    position = 0
    while position < len(text):
        match = _LABEL_PAIR.match(text, position)
        if match is None:
            raise ValueError(f"line {number}: invalid labels at {text[position:]!r}")
        labels[match.group(1)] = re.sub(r"\\[\\\"n]", lambda escape: _ESCAPES[escape.group()], match.group(2))
        position = match.end()
    return labels


def test_parser_reads_labels_and_escapes():
    text = (
        "# TYPE a_total counter\n"
        'a_total{x="1",y="q\\"uote\\\\"} 3.5\n'
        "b 1e+09\n"
        'c{z="1",} +Inf 1700000000000\n'
    )

    types, samples = parse_exposition(text)

    assert types == {"a_total": "counter"}, f"{types}"
    assert samples[0] == PromSample("a_total", {"x": "1", "y": 'q"uote\\'}, 3.5), f"{samples[0]}"
    assert samples[1] == PromSample("b", {}, 1e9), f"{samples[1]}"
    assert samples[2].value == math.inf, f"{samples[2]}"


# --- node_exporter and the agent, read at the same moment


@pytest.fixture(scope="module")
def node_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start node_exporter on a free loopback port and return its /metrics URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log_path = tmp_path_factory.mktemp("node_exporter") / "node_exporter.log"
    # The processes collector is off by default; it is turned on to compare
    # node_processes_threads and the two limits.
    args = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.processes"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_until_serving(process, url, log_path, timeout_s=20.0)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_serving(process: subprocess.Popen, url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"node_exporter exited with {process.returncode}: {log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError as error:
            last_error = error
        # Doubles as the pause between polls and notices an early exit.
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    pytest.fail(f"node_exporter did not answer {url} within {timeout_s} s: {last_error!r}")


class Snapshot(NamedTuple):
    types: dict[str, str]
    exporter: dict[str, dict[tuple, float]]  # node_exporter: name -> label items -> value
    before: dict[str, dict[tuple, float]]  # the agent, just before the scrape
    after: dict[str, dict[tuple, float]]  # the agent, just after the scrape


def series_key(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


def collect_all(collectors: list) -> dict[str, dict[tuple, float]]:
    result: dict[str, dict[tuple, float]] = {}
    for collector in collectors:
        for sample in collector.collect():
            result.setdefault(sample.name, {})[series_key(sample.labels)] = float(sample.value)
    return result


@pytest.fixture(scope="module")
def snapshot(node_exporter: str) -> Snapshot:
    config = load_config(["agent"], flags={"agent.server": "127.0.0.1:4317"}, env={})
    collectors = build_collectors(config)
    collect_all(collectors)  # first run, so the CPU counters have their starting point

    before = collect_all(collectors)
    response = httpx.get(node_exporter, timeout=10.0)
    after = collect_all(collectors)

    response.raise_for_status()
    types, samples = parse_exposition(response.text)
    exporter: dict[str, dict[tuple, float]] = {}
    for sample in samples:
        exporter.setdefault(sample.name, {})[series_key(sample.labels)] = sample.value
    return Snapshot(types, exporter, before, after)


def common_names(snapshot: Snapshot) -> list[str]:
    return sorted(set(snapshot.before) & set(snapshot.exporter))


# Values that cannot change between two reads a moment apart, compared exactly.
EXACT = {
    "node_memory_MemTotal_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_CommitLimit_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_readonly",
    "node_filesystem_device_error",
    "node_uname_info",
    "node_os_info",
    "node_os_version",
    "node_processes_max_threads",
    "node_processes_max_processes",
}

MIB = 1024 * 1024

# Absolute tolerances for values that move on their own, added to the 2 %. A value
# near zero, such as the iowait of an idle CPU or a few MiB of dirty pages, moves
# by more than 2 % of itself between two reads.
ABSOLUTE_TOLERANCE = {
    # btime is derived from the wall clock at each read and can differ by the
    # second that its rounding crosses.
    "node_boot_time_seconds": 1.0,
    # node_exporter keeps its own monotonic copy of each CPU counter, started at
    # its own first read. Because idle and iowait can step back by a tick (10 ms),
    # the two copies can differ by that tick.
    "node_cpu_seconds_total": 0.02,
    "node_cpu_guest_seconds_total": 0.02,
    # Runnable and blocked tasks change with every scheduler tick, and
    # node_exporter runs its collectors on several threads during the scrape.
    "node_procs_running": 16,
    "node_procs_blocked": 16,
    "node_processes_threads": 64,
    # /proc/loadavg prints two decimals.
    "node_load1": 0.01,
    "node_load5": 0.01,
    "node_load15": 0.01,
}
# Memory and free space can move both ways within the scrape, so the agent's two
# readings need not bracket node_exporter's: both processes allocate, and the page
# cache and dirty pages follow any file I/O on the host.
MEMORY_TOLERANCE = 16 * MIB
FREE_INODES_TOLERANCE = 1000


def absolute_tolerance(name: str) -> float:
    if name in ABSOLUTE_TOLERANCE:
        return ABSOLUTE_TOLERANCE[name]
    if name.startswith("node_memory_") or name in ("node_filesystem_free_bytes", "node_filesystem_avail_bytes"):
        return MEMORY_TOLERANCE
    if name == "node_filesystem_files_free":
        return FREE_INODES_TOLERANCE
    return 0.0


def test_parity_metric_types(snapshot):
    mismatches = [
        (name, snapshot.types.get(name), CATALOG[name].type)
        for name in common_names(snapshot)
        if snapshot.types.get(name) != CATALOG[name].type
    ]

    assert not mismatches, f"(name, node_exporter type, catalogue type): {mismatches}"


def test_parity_agent_names_known_to_node_exporter(snapshot):
    # Every node_* name the agent emits should exist in node_exporter, or it was misspelt.
    ours = {name for name in snapshot.before if name.startswith("node_")}

    unknown = sorted(ours - set(snapshot.exporter))

    assert not unknown, f"names node_exporter does not expose: {unknown}"


def test_parity_label_names(snapshot):
    mismatches = []
    for name in common_names(snapshot):
        ours = {label for key in snapshot.before[name] for label, _ in key}
        theirs = {label for key in snapshot.exporter[name] for label, _ in key}
        if ours != theirs:
            mismatches.append((name, sorted(ours), sorted(theirs)))

    assert not mismatches, f"(name, agent labels, node_exporter labels): {mismatches}"


def test_parity_series_overlap(snapshot):
    # Label values must match too, or no series of a name lines up. The two tools
    # exclude different devices and mounts by default, so only overlap is required.
    disjoint = []
    for name in common_names(snapshot):
        if not set(snapshot.before[name]) & set(snapshot.exporter[name]):
            disjoint.append((name, list(snapshot.before[name])[:3], list(snapshot.exporter[name])[:3]))

    assert not disjoint, f"(name, agent series, node_exporter series) with nothing in common: {disjoint}"


def compared_series(snapshot: Snapshot, exact: bool) -> Iterator[tuple[str, tuple, float, float, float]]:
    for name in common_names(snapshot):
        if (name in EXACT) != exact:
            continue
        for key, theirs in snapshot.exporter[name].items():
            if key in snapshot.before[name] and key in snapshot.after.get(name, {}):
                yield name, key, theirs, snapshot.before[name][key], snapshot.after[name][key]


def test_parity_exact_values(snapshot):
    compared = list(compared_series(snapshot, exact=True))

    mismatches = [(name, dict(key), theirs, before) for name, key, theirs, before, _ in compared if theirs != before]

    assert compared, "no series with a fixed value compared"
    assert not mismatches, f"(name, labels, node_exporter, agent): {mismatches}"


def test_parity_moving_values(snapshot):
    compared = list(compared_series(snapshot, exact=False))
    mismatches = []
    for name, key, theirs, before, after in compared:
        low, high = min(before, after), max(before, after)
        tolerance = max(0.02 * abs(theirs), absolute_tolerance(name))
        if not low - tolerance <= theirs <= high + tolerance:
            mismatches.append((name, dict(key), theirs, before, after, tolerance))

    assert compared, "no moving series compared"
    assert not mismatches, f"(name, labels, node_exporter, agent before, agent after, tolerance): {mismatches}"


def test_parity_summary(snapshot, capsys):
    names = common_names(snapshot)
    exact = sum(1 for _ in compared_series(snapshot, exact=True))
    moving = sum(1 for _ in compared_series(snapshot, exact=False))
    only_ours = sorted(set(snapshot.before) - set(snapshot.exporter))
    with capsys.disabled():
        print(f"\ncompared {len(names)} metric names with node_exporter: {exact} exact series, {moving} moving series")
        print("names: " + ", ".join(names))
        print("agent only: " + ", ".join(only_ours))

    assert len(names) >= 60, f"only {len(names)} names compared: {names}"
