"""Differential test: the same samples, written through GoSight, queried in GoSight's engine and in VictoriaMetrics.

One GoSight server with the victoriametrics backend stores the data set in its own
store and forwards it to VictoriaMetrics. A second server then opens the same data
directory with the embedded backend. Every query runs as instant queries at three
times and as a two-hour range query on both, and the answers must agree to 1e-6
relative, or differ only in the documented way (see differential.expectation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.processes import start_server
from tests.victoriametrics import dataset
from tests.victoriametrics.conftest import start_vm_server, wait_forwarded
from tests.victoriametrics.differential import (EMPTY_LABEL, KEEPS_NAME, NO_EXTRAPOLATION, PREVIOUS_SAMPLE, SAME,
                                                SHORTER_LOOKBACK, ask, dashboard_queries, difference, expectation,
                                                other_queries)
from tests.victoriametrics.vmprocess import VictoriaMetrics, find_binary

pytestmark = pytest.mark.slow
QUERIES = dashboard_queries() + other_queries()
# One query per documented difference: the raw answers must differ, or the documentation is stale.
SHOWCASES = {
    NO_EXTRAPOLATION: "increase(node_forks_total[1h])",
    PREVIOUS_SAMPLE: "resets(app_requests_total[1h])",
    KEEPS_NAME: "max_over_time(node_load1[10m])",
    EMPTY_LABEL: 'label_replace(node_load1, "short", "$1", "host", "(.*)1")',
    SHORTER_LOOKBACK: 'node_network_receive_bytes_total{device="wlan0"}',
}


@dataclass
class Backends:
    gosight: httpx.Client
    victoria: httpx.Client
    data: dataset.Dataset

    @property
    def instant_times(self) -> list[int]:
        # Mid-data, the last sample, and just after a 15-minute shift of the histogram.
        return [self.data.end_s - 1800, self.data.end_s, self.data.start_s + 7200 + 7 * dataset.INTERVAL_S]

    def instant(self, query: str, time_s: int) -> tuple[dict, dict]:
        form = {"query": query, "time": time_s}
        return (ask(self.gosight, "/prometheus/api/v1/query", form),
                ask(self.victoria, "/api/v1/query", {**form, "nocache": "1"}))

    def range(self, query: str) -> tuple[dict, dict]:
        form = {"query": query, "start": self.data.end_s - 7200, "end": self.data.end_s, "step": 60}
        return (ask(self.gosight, "/prometheus/api/v1/query_range", form),
                ask(self.victoria, "/api/v1/query_range", {**form, "nocache": "1"}))


@pytest.fixture(scope="module")
def backends(tmp_path_factory) -> Iterator[Backends]:
    binary = find_binary()
    if binary is None:
        pytest.skip("VictoriaMetrics is not installed (Debian package victoria-metrics)")
    base = tmp_path_factory.mktemp("differential")
    victoria = VictoriaMetrics(binary, base / "vm-data", base / "vm.log",
                               extra_args=("-search.disableCache", "-search.latencyOffset=0s")).start()
    embedded = None
    try:
        data = dataset.build(int(time.time()) // 60 * 60 - 600)
        writer = start_vm_server(base, victoria)
        with writer.client() as client:
            for request in data.requests:
                response = client.post("/v1/metrics", content=request.SerializeToString(),
                                       headers={"Content-Type": "application/x-protobuf"})
                assert response.status_code == 200, response.text
            wait_forwarded(client, data.samples)
        writer.proc.stop()
        victoria.flush()
        # The same data directory, now answering from the embedded store.
        embedded = start_server(writer.data_dir, base / "embedded.log")
        with httpx.Client(base_url=embedded.url, timeout=60, headers=embedded.auth_headers()) as ours, \
                httpx.Client(base_url=victoria.url, timeout=60) as theirs:
            yield Backends(ours, theirs, data)
    finally:
        if embedded is not None:
            embedded.proc.stop()
        victoria.stop()


def test_query_set_is_large_enough():
    assert len(QUERIES) >= 30
    assert len(set(QUERIES)) == len(QUERIES)


@pytest.mark.parametrize("query", QUERIES)
def test_instant_queries_agree(backends: Backends, query: str):
    relation = expectation(query)

    problems = []
    for time_s in backends.instant_times:
        ours, theirs = backends.instant(query, time_s)
        found = difference(ours, theirs, relation)
        if found:
            problems.append(f"at {time_s}: {found}")

    assert not problems, f"{query} ({relation}): " + "; ".join(problems)


@pytest.mark.parametrize("query", QUERIES)
def test_range_queries_agree(backends: Backends, query: str):
    relation = expectation(query)

    ours, theirs = backends.range(query)
    found = difference(ours, theirs, relation)

    assert not found, f"{query} ({relation}): {found}"
    assert ours["result"] or query.startswith("absent("), f"{query}: GoSight returned nothing; the data set misses it"


@pytest.mark.parametrize("relation", sorted(SHOWCASES))
def test_documented_difference_still_shows(backends: Backends, relation: str):
    query = SHOWCASES[relation]

    ours, theirs = backends.range(query)

    assert expectation(query) == relation
    assert difference(ours, theirs, SAME), f"{query} now agrees exactly; remove the {relation!r} difference from " \
                                           "docs/promql-compatibility.md"
