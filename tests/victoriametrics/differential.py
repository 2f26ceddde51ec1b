"""Queries and result comparison for the differential test of GoSight's engine against VictoriaMetrics."""

from __future__ import annotations

import math

import httpx

RELATIVE_TOLERANCE = 1e-6
ENDPOINT = 'endpoint_id="host-web1"'
RATE = "5m"


def dashboard_queries() -> list[str]:
    """The queries of the dashboard (gosight/ui/src/pages/panels.ts and lib/usage.ts) for one endpoint."""
    sel = ENDPOINT
    one = f"{{{sel}}}"
    net = f'{{{sel}, device!="lo"}}'
    cpu = f'100 * (1 - avg by (endpoint_id, host) (rate(node_cpu_seconds_total{{{sel}, mode="idle"}}[{RATE}])))'
    memory = f"100 * (1 - node_memory_MemAvailable_bytes{one} / node_memory_MemTotal_bytes{one})"
    filesystem = f"100 * (1 - node_filesystem_avail_bytes{one} / node_filesystem_size_bytes{one})"
    queries = [
        cpu, memory, filesystem,
        f"sum(rate(node_network_receive_bytes_total{net}[{RATE}]))",
        f"sum(rate(node_network_transmit_bytes_total{net}[{RATE}]))",
        f"sum(rate(node_disk_read_bytes_total{one}[{RATE}]))",
        f"sum(rate(node_disk_written_bytes_total{one}[{RATE}]))",
        f"node_load1{one}", f"node_load5{one}", f"node_load15{one}",
        f'100 * avg by (mode) (rate(node_cpu_seconds_total{{{sel}, mode!="idle"}}[{RATE}]))',
        f'100 * (1 - rate(node_cpu_seconds_total{{{sel}, mode="idle"}}[{RATE}]))',
        f"node_procs_running{one}", f"node_procs_blocked{one}",
        f"rate(node_context_switches_total{one}[{RATE}])", f"rate(node_intr_total{one}[{RATE}])",
        f"rate(node_forks_total{one}[{RATE}])",
        f"node_memory_MemTotal_bytes{one} - node_memory_MemAvailable_bytes{one}",
        f"node_memory_Cached_bytes{one}",
        f"node_memory_SwapTotal_bytes{one} - node_memory_SwapFree_bytes{one}",
        f"node_filesystem_size_bytes{one} - node_filesystem_avail_bytes{one}",
        f"rate(node_disk_reads_completed_total{one}[{RATE}])",
        f"100 * rate(node_disk_io_time_seconds_total{one}[{RATE}])",
        f"100 * (1 - node_filesystem_files_free{one} / node_filesystem_files{one})",
        f"rate(node_network_receive_packets_total{net}[{RATE}])",
        f"rate(node_network_transmit_errs_total{net}[{RATE}])",
        # The overview page's fleet charts.
        f'avg(100 * (1 - avg by (endpoint_id, host) (rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}]))))',
        "max(100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes))",
        f'sum(rate(node_network_receive_bytes_total{{device!="lo"}}[{RATE}]))',
        "count(count by (endpoint_id) (node_load1))",
        # The endpoints table: CPU, memory and fullest disk per endpoint in one query.
        'label_replace(100 * (1 - avg by (endpoint_id, host) (rate(node_cpu_seconds_total{endpoint_id=~"host-web1|'
        'host-db1", mode="idle"}[2m]))), "usage", "cpu", "__name__", ".*") or label_replace(max by (endpoint_id) '
        '(100 * (1 - node_memory_MemAvailable_bytes{endpoint_id=~"host-web1|host-db1"} / '
        'node_memory_MemTotal_bytes{endpoint_id=~"host-web1|host-db1"})), "usage", "memory", "__name__", ".*")',
    ]
    return queries


def other_queries() -> list[str]:
    """Aggregations, rates, vector matching, histograms, subqueries, offsets and more."""
    return [
        "increase(app_requests_total[10m])",
        "rate(app_requests_total[5m])",
        "resets(app_requests_total[1h])",
        "increase(node_forks_total[1h])",
        'rate(node_cpu_seconds_total{mode="idle"}[1m])',
        'irate(node_network_receive_bytes_total{device="eth0"}[5m])',
        "delta(node_memory_Dirty_bytes[10m])",
        'deriv(node_filesystem_avail_bytes{mountpoint="/"}[30m])',
        'predict_linear(node_filesystem_avail_bytes{mountpoint="/"}[1h], 3600)',
        "changes(node_procs_running[15m])",
        "max_over_time(node_load1[10m])",
        "avg_over_time(node_load1[10m])",
        "quantile_over_time(0.9, node_load1[30m])",
        "sum by (host) (node_memory_MemTotal_bytes)",
        "avg without (cpu) (rate(node_cpu_seconds_total[5m]))",
        "quantile(0.9, node_load5)",
        "stddev(node_load1)",
        "count_values(\"running\", node_procs_running)",
        "topk(2, node_load1)",
        "bottomk(1, sum by (host) (rate(node_disk_read_bytes_total[5m])))",
        "sort_desc(sum by (host) (node_memory_MemTotal_bytes))",
        "node_filesystem_avail_bytes / on (host) group_left node_memory_MemTotal_bytes",
        "node_load1 / ignoring (instance) node_load5",
        "sum by (host) (rate(node_network_receive_bytes_total[5m])) / on (host) "
        "sum by (host) (rate(node_network_transmit_bytes_total[5m]))",
        "(node_load1 > 1) and on (host) (node_procs_running > 2)",
        "histogram_quantile(0.9, sum by (le, host) (rate(http_request_duration_seconds_bucket[5m])))",
        'histogram_quantile(0.5, rate(http_request_duration_seconds_bucket{method="GET"}[5m]))',
        "sum by (method) (rate(http_request_duration_seconds_count[5m]))",
        "max_over_time(node_load1[10m:1m])",
        'avg_over_time(rate(node_network_receive_bytes_total{device="eth0"}[5m])[30m:5m])',
        "node_load1 offset 30m",
        'rate(node_cpu_seconds_total{mode="user"}[5m] offset 30m)',
        'label_replace(node_load1, "short", "$1", "host", "(.*)1")',
        "clamp_max(node_load1, 1)",
        "timestamp(node_load1)",
        "absent(no_such_metric)",
        'node_filesystem_avail_bytes{mountpoint="/mnt/usb"}',
        'node_network_receive_bytes_total{device="wlan0"}',
    ]


# How VictoriaMetrics' answer relates to GoSight's (Prometheus semantics), per query.
# Each difference is described, with the query that shows it, in docs/promql-compatibility.md.
SAME = "same"
KEEPS_NAME = "keeps metric name"
EMPTY_LABEL = "empty label kept"
NO_EXTRAPOLATION = "no extrapolation"
PREVIOUS_SAMPLE = "previous sample counted"
SHORTER_LOOKBACK = "shorter lookback"

# rate() over a 5 minute window at 15 s scrapes: Prometheus extrapolates the 285 s between
# the first and last sample to 300 s (5.3 % more), while VictoriaMetrics also counts the
# increase since the sample before the window. Where one counter step is a large share of
# the increase, or a series ends inside the window, the two differ by up to about 10 %.
# An absolute allowance of one step of 1 per window covers counters that barely move.
EXTRAPOLATION_TOLERANCE = 0.12
COUNTER_STEP_PER_WINDOW = 1.01 / 300


def expectation(query: str) -> str:
    """The documented relation for `query`; SAME unless the query uses an affected function."""
    for function, relation in (("predict_linear(", KEEPS_NAME), ("_over_time(", KEEPS_NAME),
                               ("clamp_max(", KEEPS_NAME), ("changes(", PREVIOUS_SAMPLE),
                               ("resets(", PREVIOUS_SAMPLE), ('label_replace(node_load1, "short"', EMPTY_LABEL),
                               ('device="wlan0"', SHORTER_LOOKBACK)):
        if function in query:
            if relation == KEEPS_NAME and "rate(" in query:
                return NO_EXTRAPOLATION
            return relation
    if any(function in query for function in ("rate(", "increase(", "delta(")) and "irate(" not in query:
        return NO_EXTRAPOLATION
    return SAME


def ask(client: httpx.Client, path: str, form: dict) -> dict:
    response = client.post(path, data=form)
    body = response.json()
    if body.get("status") != "success":
        raise AssertionError(f"{path} {form['query']!r} failed: HTTP {response.status_code} {response.text[:300]}")
    return body["data"]


def series_of(data: dict, drop_name: bool = False, drop_empty: bool = False) -> dict[tuple, dict[float, float]]:
    """{label set: {time: value}} of a vector, matrix or scalar answer."""
    if data["resultType"] == "scalar":
        stamp, value = data["result"]
        return {(): {float(stamp): float(value)}}
    out = {}
    for item in data["result"]:
        points = item["values"] if "values" in item else [item["value"]]
        labels = {name: value for name, value in item["metric"].items()
                  if not (drop_name and name == "__name__") and not (drop_empty and value == "")}
        out[tuple(sorted(labels.items()))] = {float(stamp): float(value) for stamp, value in points}
    return out


def difference(ours: dict, theirs: dict, relation: str = SAME) -> str:
    """Describe how VictoriaMetrics' answer departs from GoSight's beyond `relation`; empty when it does not."""
    mine = series_of(ours)
    other = series_of(theirs, drop_name=relation == KEEPS_NAME, drop_empty=relation == EMPTY_LABEL)
    if set(mine) != set(other):
        only_ours = sorted(set(mine) - set(other))[:2]
        only_theirs = sorted(set(other) - set(mine))[:2]
        return f"series differ: only GoSight {only_ours}, only VictoriaMetrics {only_theirs}"
    for labels, points in mine.items():
        other_points = other[labels]
        if relation == SHORTER_LOOKBACK:
            if not set(other_points) <= set(points):
                return f"VictoriaMetrics has points of {dict(labels)} that GoSight lacks"
            points = {stamp: value for stamp, value in points.items() if stamp in other_points}
        if set(points) != set(other_points):
            extra = sorted(set(points) ^ set(other_points))
            return f"points of {dict(labels)} differ at {len(extra)} times, first {extra[:3]}"
        for stamp, value in points.items():
            if not _within(value, other_points[stamp], relation):
                return (f"value of {dict(labels)} at {stamp}: GoSight {value!r}, "
                        f"VictoriaMetrics {other_points[stamp]!r}")
    return ""


def _within(ours: float, theirs: float, relation: str) -> bool:
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    gap = abs(ours - theirs)
    largest = max(abs(ours), abs(theirs))
    if relation == NO_EXTRAPOLATION:
        return gap <= EXTRAPOLATION_TOLERANCE * largest + COUNTER_STEP_PER_WINDOW
    if relation == PREVIOUS_SAMPLE:
        return gap <= 1
    return ours == theirs or gap <= RELATIVE_TOLERANCE * largest
