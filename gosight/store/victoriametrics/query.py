"""Run metric queries on VictoriaMetrics' Prometheus query API.

`VictoriaMetricsBackend` implements `gosight.store.query_backend.QueryBackend` by
calling `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`
and `/api/v1/label/<name>/values`, and turns the answers back into the engine's
`QueryResult`, so the Prometheus API renders them exactly as it renders its own.
Queries are passed through unchanged: VictoriaMetrics evaluates them as MetricsQL,
whose known differences from PromQL are listed in docs/promql-compatibility.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np

from gosight.model import Labels, Matcher
from gosight.store.promql import QueryError, QueryResult, Series
from gosight.store.query_backend import MatcherGroups

URL_SETTING = "store.metrics.victoriametrics_url"
# Time VictoriaMetrics gets beyond the query timeout to send its own timeout error.
_TIMEOUT_MARGIN_S = 5.0
_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


class VictoriaMetricsError(QueryError):
    """An error response from VictoriaMetrics, with the Prometheus error type and status it maps to."""

    def __init__(self, message: str, error_type: str, status_code: int):
        super().__init__(message)
        self.error_type = error_type
        self.status_code = status_code


class VictoriaMetricsUnavailable(VictoriaMetricsError):
    """VictoriaMetrics could not be reached."""

    def __init__(self, message: str):
        super().__init__(message, "unavailable", 503)


class VictoriaMetricsBackend:
    """Query backend over one VictoriaMetrics; thread-safe."""

    def __init__(self, base_url: str, *, max_points_per_series: int = 11_000, timeout_s: float = 120.0,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.max_points_per_series = max_points_per_series
        self.timeout_s = timeout_s
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s + _TIMEOUT_MARGIN_S,
                                    transport=transport)

    def close(self) -> None:
        self._client.close()

    # Queries.

    def instant(self, query: str, time_ms: int, *, timeout_s: float | None = None,
                lookback_ms: int | None = None) -> QueryResult:
        form = {"query": query, "time": _seconds(time_ms), "timeout": f"{self._timeout(timeout_s):g}s"}
        if lookback_ms is not None:
            # NOTE: no test sends lookback_delta through to VictoriaMetrics' max_lookback yet.
            form["max_lookback"] = f"{lookback_ms}ms"
        data = self._call("/api/v1/query", form, timeout_s)
        return _result(data, time_ms)

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int, *, timeout_s: float | None = None,
              lookback_ms: int | None = None) -> QueryResult:
        form = {"query": query, "start": _seconds(start_ms), "end": _seconds(end_ms), "step": f"{step_ms}ms",
                "timeout": f"{self._timeout(timeout_s):g}s"}
        if start_ms % step_ms:
            # VictoriaMetrics moves an unaligned start to a multiple of the step so it can
            # cache the result; Prometheus evaluates at start + k * step exactly.
            form["nocache"] = "1"
        if lookback_ms is not None:
            form["max_lookback"] = f"{lookback_ms}ms"
        data = self._call("/api/v1/query_range", form, timeout_s)
        return _result(data, end_ms)

    # Metadata.

    def series(self, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[Labels]:
        data = self._call("/api/v1/series", self._match_form(groups, start_ms, end_ms), None)
        return sorted(_labels(item) for item in data)

    def label_names(self, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[str]:
        return sorted(self._call("/api/v1/labels", self._match_form(groups, start_ms, end_ms), None))

    def label_values(self, name: str, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[str]:
        path = "/api/v1/label/" + httpx.URL(name).raw_path.decode("ascii").lstrip("/") + "/values"
        return sorted(self._call(path, self._match_form(groups, start_ms, end_ms), None))

    def _match_form(self, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[tuple[str, str]]:
        form = [("match[]", format_selector(group)) for group in groups if group]
        # Prometheus searches all time when start is missing, VictoriaMetrics only the last
        # day, so a missing start is sent as the epoch. VictoriaMetrics 1.79 finds nothing
        # when end lies in a future day, so end is capped at the present.
        form.append(("start", _seconds(max(start_ms, 0))))
        form.append(("end", _seconds(min(end_ms, int(time.time() * 1000)))))
        return form

    # HTTP.

    def _timeout(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)

    def _call(self, path: str, form: dict[str, str] | list[tuple[str, str]], timeout_s: float | None) -> Any:
        url = self.base_url + path
        try:
            response = self._client.post(path, content=urlencode(form), headers=_FORM_HEADERS,
                                         timeout=self._timeout(timeout_s) + _TIMEOUT_MARGIN_S)
        except httpx.TimeoutException:
            raise VictoriaMetricsError(f"VictoriaMetrics at {url} timed out: no response within "
                                       f"{self._timeout(timeout_s):g} s (query.timeout_s)", "timeout", 503) from None
        except httpx.HTTPError as error:
            raise VictoriaMetricsUnavailable(
                f"VictoriaMetrics at {url} is unreachable: {error}; check that it is running, or change "
                f"{URL_SETTING}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            raise VictoriaMetricsUnavailable(
                f"VictoriaMetrics at {url} sent HTTP {response.status_code} without a Prometheus API response: "
                f"{response.text[:200]!r}; check that {URL_SETTING} points at VictoriaMetrics")
        if body["status"] != "success":
            raise _error_from(body, response.status_code)
        return body.get("data")


def format_selector(group: Iterable[Matcher]) -> str:
    """Render matchers as a PromQL selector `{name="value", ...}`."""
    return "{" + ", ".join(f"{matcher.name}{matcher.op}{_quote(matcher.value)}" for matcher in group) + "}"


def _quote(value: str) -> str:
    # JSON string escaping is valid PromQL string escaping; non-ASCII stays literal.
    return json.dumps(value, ensure_ascii=False)


def _error_from(body: dict[str, Any], status_code: int) -> VictoriaMetricsError:
    message = str(body.get("error", "unknown error"))
    # VictoriaMetrics responds with 422 to syntax errors too; its parser's messages name them.
    if status_code == 400 or "cannot parse" in message or "unparsed data" in message:
        return VictoriaMetricsError(message, "bad_data", 400)
    if status_code == 503:
        return VictoriaMetricsError(message, "unavailable", 503)
    if status_code >= 500:
        return VictoriaMetricsError(message, "internal", 500)
    return VictoriaMetricsError(message, "execution", 422)


def _result(data: Any, time_ms: int) -> QueryResult:
    if not isinstance(data, dict):
        raise VictoriaMetricsError(f"unexpected response from VictoriaMetrics: {str(data)[:200]}", "internal", 500)
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return QueryResult("scalar", value=_float(result[1]), time_ms=_ms(result[0]))
    if kind == "string":
        return QueryResult("string", value=str(result[1]), time_ms=_ms(result[0]))
    series = []
    for item in result or ():
        points = [item["value"]] if kind == "vector" else item.get("values", [])
        timestamps = np.array([_ms(point[0]) for point in points], dtype=np.int64)
        values = np.array([_float(point[1]) for point in points], dtype=np.float64)
        series.append(Series(_labels(item["metric"] if "metric" in item else {}), timestamps, values))
    return QueryResult(kind if kind in ("vector", "matrix") else "vector", series, time_ms=time_ms)


def _labels(metric: dict[str, str]) -> Labels:
    return tuple(sorted((str(name), str(value)) for name, value in metric.items()))


def _float(text: Any) -> float:
    # float() reads the "NaN", "+Inf" and "-Inf" spellings of the Prometheus API.
    return float(text)


def _ms(seconds: Any) -> int:
    return int(round(float(seconds) * 1000))


def _seconds(ms: int) -> str:
    return f"{int(ms) / 1000:.3f}"

