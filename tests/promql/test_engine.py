"""Engine tests over an in-memory MetricStore: tables of queries with expected values and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gosight.model import STALE_NAN
from gosight.store.metrics_duckdb import MetricStore
from gosight.store.promql import BadQueryError, Engine, ExecutionError, QueryTimeoutError, TooManySamplesError
from tests.promql.conftest import write_series

END_S = 600


def _counter(job: str, instance: str, values) -> tuple[dict, list]:
    return {"__name__": "http_requests_total", "job": job, "instance": instance}, values


def _dataset() -> list[tuple[dict, list]]:
    times = range(0, END_S + 1, 10)
    return [
        # Counters: slope 1 and 2 per second, and one that resets after t=300.
        _counter("api", "a", [(t, float(t)) for t in times]),
        _counter("api", "b", [(t, 2.0 * t) for t in times]),
        _counter("web", "a", [(t, float(t if t <= 300 else t - 300)) for t in times]),
        ({"__name__": "cpu_temp_celsius", "host": "h1"}, [(t, 50.0 + (t // 10) % 5) for t in times]),
        ({"__name__": "cpu_temp_celsius", "host": "h2"}, [(t, 40.0) for t in times]),
        ({"__name__": "build_info", "job": "api", "version": "1.2"}, [(t, 1.0) for t in times]),
        # Samples only until t=100, then nothing: visible for the 5 minute lookback only.
        ({"__name__": "short_lived", "job": "api"}, [(t, 7.0) for t in range(0, 101, 10)]),
        # Ends with a staleness marker at t=20.
        ({"__name__": "stale_series"}, [(0, 1.0), (10, 2.0), (20, STALE_NAN)]),
        # A classic histogram with cumulative bucket counts 10, 30, 40, 50.
        *[({"__name__": "req_duration_seconds_bucket", "le": le, "path": "/"}, [(t, count) for t in times])
          for le, count in (("0.1", 10.0), ("0.5", 30.0), ("1", 40.0), ("+Inf", 50.0))],
        # Buckets that decrease (1 -> 35 then 30) and so need the monotonicity fix.
        *[({"__name__": "bad_duration_seconds_bucket", "le": le}, [(t, count) for t in times])
          for le, count in (("0.5", 35.0), ("1", 30.0), ("+Inf", 40.0))],
        # Buckets without +Inf, and buckets around zero.
        *[({"__name__": "open_seconds_bucket", "le": le}, [(t, count) for t in times])
          for le, count in (("1", 5.0), ("2", 10.0))],
        *[({"__name__": "signed_bucket", "le": le}, [(t, count) for t in times])
          for le, count in (("-1", 5.0), ("0", 10.0), ("+Inf", 20.0))],
        ({"__name__": "malformed_bucket", "le": "fast"}, [(t, 1.0) for t in times]),
    ]


@pytest.fixture
def engine(memory_store: MetricStore, storage_mode: str) -> Engine:
    write_series(memory_store, _dataset())
    if storage_mode == "chunks":
        memory_store.compact(END_S * 1000 + 24 * 3600 * 1000)
        assert memory_store.counts()["head_samples"] == 0
    return Engine(memory_store, lookback_ms=300_000, max_samples=10_000_000, timeout_s=30.0)


def _instant(engine: Engine, query: str, at_s: float) -> dict[tuple, float]:
    result = engine.instant(query, int(at_s * 1000))
    assert result.result_type == "vector", result
    return {item.labels: float(item.values[0]) for item in result.series}


def _labels(**pairs: str) -> tuple:
    return tuple(sorted(pairs.items()))


API_A = _labels(instance="a", job="api")
API_B = _labels(instance="b", job="api")
WEB_A = _labels(instance="a", job="web")

VECTOR_CASES = [
    # Selectors, offset and @.
    ('http_requests_total{job="api",instance="a"}', 300, {(("__name__", "http_requests_total"),) + API_A: 300}),
    ('http_requests_total{job="api",instance="a"} offset 100s', 300,
     {(("__name__", "http_requests_total"),) + API_A: 200}),
    ('http_requests_total{job="api",instance="a"} offset -100s', 300,
     {(("__name__", "http_requests_total"),) + API_A: 400}),
    ('http_requests_total{job="api",instance="a"} @ 100', 500, {(("__name__", "http_requests_total"),) + API_A: 100}),
    ('http_requests_total{job=~"ap.",instance!="b"}', 300, {(("__name__", "http_requests_total"),) + API_A: 300}),
    ('http_requests_total{job!~"api|web"}', 300, {}),
    # Lookback: the last sample at t=100 is visible until t=400 (exclusive).
    ("short_lived", 399, {_labels(__name__="short_lived", job="api"): 7}),
    ("short_lived", 400, {}),
    # A staleness marker ends the series at once.
    ("stale_series", 15, {_labels(__name__="stale_series"): 2}),
    ("stale_series", 25, {}),
    # Rates with extrapolation; a counter reset is corrected.
    ("rate(http_requests_total[1m])", 300, {API_A: 1.0, API_B: 2.0, WEB_A: 1.0}),
    ('increase(http_requests_total{job="web"}[1m])', 330, {WEB_A: 60.0}),
    ('irate(http_requests_total{job="web"}[1m])', 310, {WEB_A: 1.0}),
    ('resets(http_requests_total{job="web"}[5m])', 400, {WEB_A: 1.0}),
    ('delta(cpu_temp_celsius{host="h2"}[1m])', 300, {_labels(host="h2"): 0.0}),
    ('deriv(http_requests_total{job="api"}[2m])', 300, {API_A: 1.0, API_B: 2.0}),
    ('predict_linear(http_requests_total{instance="b",job="api"}[2m], 60)', 300, {API_B: 720.0}),
    # *_over_time.
    ('avg_over_time(cpu_temp_celsius{host="h1"}[50s])', 300, {_labels(host="h1"): 52.0}),
    ('sum_over_time(cpu_temp_celsius{host="h1"}[50s])', 300, {_labels(host="h1"): 260.0}),
    ('count_over_time(cpu_temp_celsius[1m])', 300, {_labels(host="h1"): 6.0, _labels(host="h2"): 6.0}),
    ('max_over_time(cpu_temp_celsius{host="h1"}[1m])', 300, {_labels(host="h1"): 54.0}),
    ('min_over_time(cpu_temp_celsius{host="h1"}[1m])', 300, {_labels(host="h1"): 50.0}),
    ('last_over_time(cpu_temp_celsius{host="h1"}[1m])', 320,
     {_labels(__name__="cpu_temp_celsius", host="h1"): 52.0}),
    ('quantile_over_time(0.5, cpu_temp_celsius{host="h1"}[50s])', 300, {_labels(host="h1"): 52.0}),
    ('stdvar_over_time(cpu_temp_celsius{host="h1"}[50s])', 300, {_labels(host="h1"): 2.0}),
    ('changes(cpu_temp_celsius{host="h1"}[50s])', 300, {_labels(host="h1"): 4.0}),
    ('present_over_time(short_lived[1m])', 500, {}),
    ('absent_over_time(short_lived{job="api"}[1m])', 500, {_labels(job="api"): 1.0}),
    ('ts_of_max_over_time(cpu_temp_celsius{host="h1"}[50s])', 300, {_labels(host="h1"): 290.0}),
    # Aggregations.
    ("sum by (job) (rate(http_requests_total[1m]))", 300, {_labels(job="api"): 3.0, _labels(job="web"): 1.0}),
    ("avg without (instance) (rate(http_requests_total[1m]))", 300,
     {_labels(job="api"): 1.5, _labels(job="web"): 1.0}),
    ("count(cpu_temp_celsius)", 300, {(): 2.0}),
    ("max(cpu_temp_celsius)", 320, {(): 52.0}),
    ("stddev(cpu_temp_celsius)", 300, {(): 5.0}),
    ("quantile(0.5, rate(http_requests_total[1m]))", 300, {(): 1.0}),
    ("group by (job) (http_requests_total)", 300, {_labels(job="api"): 1.0, _labels(job="web"): 1.0}),
    ("topk(1, rate(http_requests_total[1m]))", 300, {API_B: 2.0}),
    ("bottomk by (job) (1, http_requests_total)", 300,
     {(("__name__", "http_requests_total"),) + API_A: 300.0, (("__name__", "http_requests_total"),) + WEB_A: 300.0}),
    ('count_values("temp", cpu_temp_celsius)', 320, {_labels(temp="52"): 1.0, _labels(temp="40"): 1.0}),
    ("count(limitk(2, http_requests_total))", 300, {(): 2.0}),
    ("count(limit_ratio(1, http_requests_total))", 300, {(): 3.0}),
    # Binary operators and vector matching.
    ('http_requests_total{job="api"} / on(job, instance) http_requests_total{job="api"}', 300,
     {API_A: 1.0, API_B: 1.0}),
    ("rate(http_requests_total[1m]) * on(job) group_left(version) build_info", 300,
     {API_A + (("version", "1.2"),): 1.0, API_B + (("version", "1.2"),): 2.0}),
    ("http_requests_total > 500", 300, {(("__name__", "http_requests_total"),) + API_B: 600.0}),
    ("http_requests_total > bool 500", 300, {API_A: 0.0, API_B: 1.0, WEB_A: 0.0}),
    ('http_requests_total and on(job) build_info', 300,
     {(("__name__", "http_requests_total"),) + API_A: 300.0, (("__name__", "http_requests_total"),) + API_B: 600.0}),
    ('http_requests_total unless on(job) build_info', 300, {(("__name__", "http_requests_total"),) + WEB_A: 300.0}),
    ('short_lived or on(job) build_info', 500, {_labels(__name__="build_info", job="api", version="1.2"): 1.0}),
    ("2 ^ 3 * cpu_temp_celsius{host='h2'} % 7", 300, {_labels(host="h2"): 5.0}),
    ("-cpu_temp_celsius{host='h2'}", 300, {_labels(host="h2"): -40.0}),
    # Subqueries.
    ('max_over_time(rate(http_requests_total{instance="b"}[1m])[2m:30s])', 300, {API_B: 2.0}),
    # Instant-vector functions.
    ("abs(-cpu_temp_celsius{host='h2'})", 300, {_labels(host="h2"): 40.0}),
    ("clamp(cpu_temp_celsius, 45, 51)", 320, {_labels(host="h1"): 51.0, _labels(host="h2"): 45.0}),
    ("round(cpu_temp_celsius{host='h2'} / 3, 0.5)", 300, {_labels(host="h2"): 13.5}),
    ('label_replace(build_info, "major", "$1", "version", "(\\\\d+)\\\\..*")', 300,
     {_labels(__name__="build_info", job="api", major="1", version="1.2"): 1.0}),
    ('label_join(build_info, "id", "-", "job", "version")', 300,
     {_labels(__name__="build_info", id="api-1.2", job="api", version="1.2"): 1.0}),
    ("timestamp(short_lived)", 200, {_labels(job="api"): 100.0}),
    ("absent(nonexistent{job='x'})", 300, {_labels(job="x"): 1.0}),
    ("absent(cpu_temp_celsius)", 300, {}),
    ("vector(time())", 300, {(): 300.0}),
    ("hour(vector(3600 * 5 + 60))", 0, {(): 5.0}),
    ("days_in_month(vector(1454284800))", 0, {(): 29.0}),
    # histogram_quantile over classic buckets.
    ("histogram_quantile(0.5, req_duration_seconds_bucket)", 300, {_labels(path="/"): 0.4}),
    ("histogram_quantile(0.1, req_duration_seconds_bucket)", 300, {_labels(path="/"): 0.05}),
    ("histogram_quantile(0.9, req_duration_seconds_bucket)", 300, {_labels(path="/"): 1.0}),
    ("histogram_quantile(1.5, req_duration_seconds_bucket)", 300, {_labels(path="/"): math.inf}),
    ("histogram_quantile(-1, req_duration_seconds_bucket)", 300, {_labels(path="/"): -math.inf}),
    ("histogram_quantile(0.5, open_seconds_bucket)", 300, {(): math.nan}),
    ("histogram_quantile(0.1, signed_bucket)", 300, {(): -1.0}),
    ("histogram_quantile(0.5, sum by (le) (rate(req_duration_seconds_bucket[1m])))", 300, {(): math.nan}),
    ("histogram_fraction(0, 0.5, req_duration_seconds_bucket)", 300, {_labels(path="/"): 0.6}),
    ("histogram_fraction(0.1, 0.3, req_duration_seconds_bucket)", 300, {_labels(path="/"): 0.2}),
]


@pytest.mark.parametrize(("query", "at_s", "expected"), VECTOR_CASES, ids=[case[0] for case in VECTOR_CASES])
def test_instant_query_values(engine: Engine, query: str, at_s: float, expected: dict) -> None:
    result = _instant(engine, query, at_s)

    assert set(result) == set(expected), f"{query}: got {result}"
    for labels, value in expected.items():
        assert _same(result[labels], value), f"{query}: {dict(labels)} is {result[labels]}, expected {value}"


def _same(actual: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(actual)
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_histogram_quantile_fixes_monotonicity(engine: Engine) -> None:
    result = engine.instant("histogram_quantile(0.5, bad_duration_seconds_bucket)", 300_000)

    # Buckets 35, 30, 40 become 35, 35, 40; rank 20 lies in the first bucket (0, 0.5].
    assert float(result.series[0].values[0]) == pytest.approx(0.5 * 20 / 35)
    assert any("needed to be fixed for monotonicity" in info for info in result.infos), result.infos


def test_histogram_quantile_warns_on_malformed_le(engine: Engine) -> None:
    result = engine.instant("histogram_quantile(0.5, malformed_bucket)", 300_000)

    assert result.series == []
    assert any('malformed value of "fast"' in warning for warning in result.warnings), result.warnings


def test_quantile_out_of_range_warns(engine: Engine) -> None:
    result = engine.instant("histogram_quantile(2, req_duration_seconds_bucket)", 300_000)

    assert result.warnings == ["PromQL warning: quantile value should be between 0 and 1, got 2 (1:20)"]


def test_rate_on_gauge_name_adds_info(engine: Engine) -> None:
    result = engine.instant("rate(cpu_temp_celsius[1m])", 300_000)

    assert result.infos == ['PromQL info: metric might not be a counter, name does not end in '
                            '_total/_sum/_count/_bucket: "cpu_temp_celsius" (1:6)']


def test_range_query_matrix(engine: Engine) -> None:
    result = engine.range("sum(rate(http_requests_total[1m]))", 100_000, 300_000, 100_000)

    assert result.result_type == "matrix"
    assert len(result.series) == 1
    assert result.series[0].timestamps_ms.tolist() == [100_000, 200_000, 300_000]
    assert result.series[0].values.tolist() == pytest.approx([4.0, 4.0, 4.0])


def test_range_query_series_gap(engine: Engine) -> None:
    result = engine.range("short_lived", 0, 600_000, 100_000)

    points = result.series[0].timestamps_ms.tolist()
    assert points == [0, 100_000, 200_000, 300_000]


def test_range_query_scalar_result(engine: Engine) -> None:
    result = engine.range("time()", 0, 20_000, 10_000)

    assert result.result_type == "matrix"
    assert result.series[0].labels == ()
    assert result.series[0].values.tolist() == [0.0, 10.0, 20.0]


def test_range_query_at_start_and_end(engine: Engine) -> None:
    start = engine.range('http_requests_total{job="api",instance="a"} @ start()', 100_000, 300_000, 100_000)
    end = engine.range('http_requests_total{job="api",instance="a"} @ end()', 100_000, 300_000, 100_000)

    assert start.series[0].values.tolist() == [100.0, 100.0, 100.0]
    assert end.series[0].values.tolist() == [300.0, 300.0, 300.0]


def test_instant_query_range_selector_returns_matrix(engine: Engine) -> None:
    result = engine.instant('cpu_temp_celsius{host="h2"}[30s]', 300_000)

    assert result.result_type == "matrix"
    assert result.series[0].timestamps_ms.tolist() == [280_000, 290_000, 300_000]


def test_scalar_and_string_results(engine: Engine) -> None:
    scalar = engine.instant("1 + 2 * 3", 0)
    string = engine.instant('"hello"', 0)

    assert (scalar.result_type, scalar.value) == ("scalar", 7.0)
    assert (string.result_type, string.value) == ("string", "hello")


def test_sort_orders_instant_result(engine: Engine) -> None:
    ascending = engine.instant("sort(http_requests_total)", 300_000)
    descending = engine.instant("sort_desc(http_requests_total)", 300_000)

    assert [float(item.values[0]) for item in ascending.series] == [300.0, 300.0, 600.0]
    assert [float(item.values[0]) for item in descending.series] == [600.0, 300.0, 300.0]


def test_topk_orders_by_value(engine: Engine) -> None:
    result = engine.instant("topk(3, rate(http_requests_total[1m]))", 300_000)

    assert [float(item.values[0]) for item in result.series][0] == 2.0


ERROR_CASES = [
    ("sum(", BadQueryError, "parse error"),
    ("rate(cpu_temp_celsius)", BadQueryError, "expected type matrix"),
    ("no_such_function(cpu_temp_celsius)", BadQueryError, "unknown function"),
    ('{job=""}', BadQueryError, "at least one non-empty matcher"),
    ("", BadQueryError, "no expression found"),
    ("http_requests_total + on(job) http_requests_total", ExecutionError, "many-to-many matching not allowed"),
    ("http_requests_total + on(job) build_info", ExecutionError, "many-to-one matching must be explicit"),
    ('label_replace(build_info, "x", "$1", "job", "(")', ExecutionError, "invalid regular expression"),
    ('count_values("", build_info)', ExecutionError, "invalid label name"),
    ("topk(scalar(nonexistent), build_info)", ExecutionError, "Parameter value is NaN"),
    ("double_exponential_smoothing(cpu_temp_celsius[1m], 2, 0.5)", ExecutionError, "invalid smoothing factor"),
]


@pytest.mark.parametrize(("query", "error_type", "text"), ERROR_CASES, ids=[case[0] or "empty" for case in ERROR_CASES])
def test_query_errors(engine: Engine, query: str, error_type: type, text: str) -> None:
    with pytest.raises(error_type) as caught:
        engine.instant(query, 300_000)

    assert text in str(caught.value)


def test_range_query_rejects_bad_ranges(engine: Engine) -> None:
    with pytest.raises(BadQueryError, match="zero or negative query resolution step"):
        engine.range("cpu_temp_celsius", 0, 1000, 0)
    with pytest.raises(BadQueryError, match="end timestamp must not be before start time"):
        engine.range("cpu_temp_celsius", 1000, 0, 1000)
    with pytest.raises(BadQueryError, match="exceeded maximum resolution of 11,000 points"):
        engine.range("cpu_temp_celsius", 0, 100_000_000, 1)
    with pytest.raises(BadQueryError, match='invalid expression type "range vector"'):
        engine.range("cpu_temp_celsius[1m]", 0, 1000, 1000)


def test_max_samples_limit(memory_store: MetricStore) -> None:
    write_series(memory_store, _dataset())
    engine = Engine(memory_store, max_samples=100)

    with pytest.raises(TooManySamplesError, match="too many samples"):
        engine.instant("sum_over_time(http_requests_total[10m])", 600_000)


def test_timeout(memory_store: MetricStore) -> None:
    write_series(memory_store, _dataset())
    engine = Engine(memory_store, timeout_s=1e-9)

    with pytest.raises(QueryTimeoutError, match="timed out"):
        engine.instant("sum(rate(http_requests_total[5m]))", 600_000)


def test_kahan_summation_keeps_small_values(memory_store: MetricStore) -> None:
    write_series(memory_store, [({"__name__": "big"}, [(0, 1.0), (10, 1e100), (20, 1.0), (30, -1e100)])])
    engine = Engine(memory_store)

    assert _instant(engine, "sum_over_time(big[1m])", 30) == {(): 2.0}


def test_range_and_instant_agree(engine: Engine) -> None:
    query = 'sum by (job) (rate(http_requests_total[1m])) / on(job) group_left count by (job) (http_requests_total)'
    matrix = engine.range(query, 60_000, 600_000, 30_000)

    for item in matrix.series:
        for ms, value in zip(item.timestamps_ms.tolist(), item.values.tolist()):
            instant = _instant(engine, query, ms / 1000)
            assert instant[item.labels] == pytest.approx(value), f"{dict(item.labels)} at {ms}"


def test_step_invariant_range_query_matches_per_step(engine: Engine) -> None:
    query = 'rate(http_requests_total{job="web"}[1m] @ 330)'
    matrix = engine.range(query, 0, 600_000, 60_000)

    assert np.allclose(matrix.series[0].values, 1.0)
    assert matrix.series[0].timestamps_ms.shape[0] == 11


def _window(points: list[tuple[int, float]], end_ms: int, range_ms: int) -> list[tuple[int, float]]:
    return [(ms, value) for ms, value in points if end_ms - range_ms < ms <= end_ms]


def _increase_one_by_one(points: list[tuple[int, float]], end_ms: int, range_ms: int) -> float | None:
    """Prometheus' extrapolated increase of one window, written out sample by sample."""
    window = _window(points, end_ms, range_ms)
    if len(window) < 2:
        return None
    result = window[-1][1] - window[0][1]
    previous = window[0][1]
    for _, value in window[1:]:
        if value < previous:
            result += previous
        previous = value
    sampled = (window[-1][0] - window[0][0]) / 1000
    average_gap = sampled / (len(window) - 1)
    to_start = (window[0][0] - (end_ms - range_ms)) / 1000
    to_end = (end_ms - window[-1][0]) / 1000
    if to_start >= average_gap * 1.1:
        to_start = average_gap / 2
    if result > 0 and window[0][1] >= 0:
        to_start = min(to_start, sampled * (window[0][1] / result))
    if to_end >= average_gap * 1.1:
        to_end = average_gap / 2
    factor = (sampled + to_start + to_end) / sampled
    return result * factor


def test_counter_resets_match_reference(memory_store: MetricStore) -> None:
    # Counters that reset often, some windows holding several resets, in series that sit
    # next to each other in the store's flat arrays.
    rng = np.random.default_rng(7)
    series: dict[str, list[tuple[int, float]]] = {}
    for name in ("a", "b", "c"):
        value, points = 0.0, []
        for second in range(0, 1200, 10):
            value = rng.uniform(0, value) if rng.random() < 0.3 else value + rng.uniform(0, 50)
            points.append((second * 1000, round(value, 3)))
        series[name] = points
    write_series(memory_store, [({"__name__": "jobs_total", "worker": name}, [(ms / 1000, v) for ms, v in points])
                                for name, points in series.items()])
    engine = Engine(memory_store)
    range_ms, start_ms, end_ms, step_ms = 95_000, 100_000, 1_190_000, 7_000

    increase = engine.range("increase(jobs_total[95s])", start_ms, end_ms, step_ms)
    resets = engine.range("resets(jobs_total[95s])", start_ms, end_ms, step_ms)
    changes = engine.range("changes(jobs_total[95s])", start_ms, end_ms, step_ms)

    several = 0
    for result in (increase, resets, changes):
        assert [dict(item.labels)["worker"] for item in result.series] == ["a", "b", "c"]
    for position, name in enumerate(series):
        points = series[name]
        for ms, value in zip(increase.series[position].timestamps_ms.tolist(),
                             increase.series[position].values.tolist()):
            assert value == _increase_one_by_one(points, ms, range_ms), f"increase of {name} at {ms}"
        for ms, value in zip(resets.series[position].timestamps_ms.tolist(), resets.series[position].values.tolist()):
            window = [sample for _, sample in _window(points, ms, range_ms)]
            expected = sum(1 for before, after in zip(window, window[1:]) if after < before)
            several += expected >= 2
            assert value == expected, f"resets of {name} at {ms}"
        for ms, value in zip(changes.series[position].timestamps_ms.tolist(),
                             changes.series[position].values.tolist()):
            window = [sample for _, sample in _window(points, ms, range_ms)]
            assert value == sum(1 for before, after in zip(window, window[1:]) if after != before)
    assert several > 20
