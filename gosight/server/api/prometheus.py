"""The Prometheus-compatible HTTP API under /prometheus/api/v1/, so Grafana can use GoSight as a data source.

Responses use Prometheus' JSON shapes: {"status": "success", "data": ...} with sample
values as strings and timestamps as float seconds, and errors as
{"status": "error", "errorType": ..., "error": ...} with 400 for bad parameters, 422
for queries that cannot be executed and 503 for timeouts. GET parameters and
form-encoded POST bodies are both accepted; body values come first, as in Prometheus.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from gosight import __version__
from gosight.model import Labels, Matcher
from gosight.server.api.bodies import BodyTooLarge, read_body
from gosight.server.routing import route
from gosight.store.promql import QueryError, QueryResult
from gosight.store.promql.format import api_floats, api_timestamp
from gosight.store.promql.parse import (
    format_query,
    parse_duration_ms,
    parse_query,
    parse_selector,
)
from gosight.store.query_backend import QueryBackend

PREFIX = "/prometheus/api/v1"
PERMISSION = "metrics:read"
FORM = "application/x-www-form-urlencoded"
# Grafana enables features by the Prometheus version it reads from buildinfo; this is
# the Prometheus release whose query semantics and API GoSight follows.
PROMETHEUS_VERSION = "3.0.0"
# Bounds used when a request gives no start or end, as Prometheus' MinTime and MaxTime do.
MIN_TIME_MS = -(2 ** 62) // 1000
MAX_TIME_MS = (2 ** 62) // 1000
_STARTED_AT = time.time()


class ApiError(Exception):
    """An error returned in Prometheus' JSON error shape."""

    def __init__(self, error_type: str, message: str, status_code: int):
        super().__init__(message)
        self.error_type = error_type
        self.status_code = status_code


def bad_data(message: str) -> ApiError:
    return ApiError("bad_data", message, 400)


def invalid_parameter(name: str, message: str) -> ApiError:
    return bad_data(f"invalid parameter {json.dumps(name)}: {message}")


# Responses.

def success(data, warnings: list[str] | None = None, infos: list[str] | None = None) -> Response:
    body = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    if infos:
        body["infos"] = infos
    return JSONResponse(body)


def error_response(error: ApiError) -> Response:
    # ASCII escapes keep messages that quote undecodable bytes valid JSON.
    body = json.dumps({"status": "error", "errorType": error.error_type, "error": str(error)})
    return Response(body, status_code=error.status_code, media_type="application/json")


def _handler(function: Callable) -> Callable:
    """Wrap an endpoint so that parameter and query errors become Prometheus error responses."""

    async def endpoint(request: Request) -> Response:
        try:
            params = await Params.read(request)
            return await function(request, params)
        except ApiError as error:
            return error_response(error)
        except QueryError as error:
            message = str(error)
            if error.error_type == "bad_data":
                message = f'invalid parameter "query": {message}'
            return error_response(ApiError(error.error_type, message, error.status_code))

    endpoint.__name__ = function.__name__
    return endpoint


class Params:
    """Request parameters from the form body and the URL, body values first."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs

    @classmethod
    async def read(cls, request: Request) -> Params:
        pairs: list[tuple[str, str]] = []
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and content_type == FORM:
            try:
                body = await read_body(request)
            except BodyTooLarge as error:
                raise ApiError("bad_data", str(error), 413) from None
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError:
                raise bad_data("error parsing form values: the body is not valid UTF-8") from None
        pairs += list(request.query_params.multi_items())
        return cls(pairs)

    def get(self, name: str) -> str:
        for key, value in self.pairs:
            if key == name:
                return value
        return ""

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


def parse_time(text: str, name: str) -> int:
    """Parse Unix seconds (with fraction) or RFC 3339 into milliseconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or abs(seconds) > MAX_TIME_MS / 1000:
            raise invalid_parameter(name, f"cannot parse {json.dumps(text)} to a valid timestamp")
        return int(round(seconds * 1000))
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid_parameter(name, f"cannot parse {json.dumps(text)} to a valid timestamp") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise invalid_parameter(name, f"cannot parse {json.dumps(text)} to a valid timestamp")
    return int(round(moment.timestamp() * 1000))


def parse_time_param(params: Params, name: str, default_ms: int) -> int:
    text = params.get(name)
    return parse_time(text, name) if text != "" else default_ms


def parse_duration_param(text: str, name: str) -> int:
    """Parse float seconds or a duration such as 1m30s into milliseconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or abs(seconds) > 9.2e9:
            raise invalid_parameter(name, f"cannot parse {json.dumps(text)} to a valid duration. It overflows int64")
        return int(round(seconds * 1000))
    try:
        return parse_duration_ms(text)
    except ValueError:
        raise invalid_parameter(name, f"cannot parse {json.dumps(text)} to a valid duration") from None


def parse_limit(params: Params) -> int:
    text = params.get("limit")
    if text == "":
        return 0
    try:
        limit = int(text)
    except ValueError:
        raise invalid_parameter("limit", f"cannot parse {json.dumps(text)} to a valid limit") from None
    if limit < 0:
        raise invalid_parameter("limit", "limit must be non-negative")
    return limit


def parse_matchers(params: Params, required: bool) -> list[tuple[Matcher, ...]]:
    texts = params.get_all("match[]")
    if required and not texts:
        raise bad_data("no match[] parameter provided")
    groups: list[tuple[Matcher, ...]] = []
    for text in texts:
        try:
            selector = parse_selector(text)
        except QueryError as error:
            raise invalid_parameter("match[]", str(error)) from None
        groups.extend(selector.matcher_groups)
    return groups


def _backend(request: Request) -> QueryBackend:
    """Return the backend that evaluates metric queries: the embedded engine or VictoriaMetrics."""
    return request.app.state.query_backend


def _now_ms() -> int:
    return int(time.time() * 1000)


# Queries and look-ups block on the store and numpy, so they run on worker threads. A
# plain executor costs less per call than Starlette's threadpool helper, which adds a
# capacity limiter and a library check (about 0.1 ms per request, measured on loopback).
_workers = ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="gosight-query")


async def _off_loop(function: Callable, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(_workers, functools.partial(function, *args, **kwargs))


# Query endpoints.

async def query(request: Request, params: Params) -> Response:
    engine = _backend(request)
    time_ms = parse_time_param(params, "time", _now_ms())
    timeout_s = _timeout(params)
    limit = parse_limit(params)
    lookback_ms = _lookback(params)
    text = params.get("query")

    def evaluate() -> Response:
        return _query_response(engine.instant(text, time_ms, timeout_s=timeout_s, lookback_ms=lookback_ms), limit)

    return await _off_loop(evaluate)


async def query_range(request: Request, params: Params) -> Response:
    engine = _backend(request)
    start_ms = parse_time(params.get("start"), "start")
    end_ms = parse_time(params.get("end"), "end")
    if end_ms < start_ms:
        raise bad_data("end timestamp must not be before start time")
    step_ms = parse_duration_param(params.get("step"), "step")
    if step_ms <= 0:
        raise bad_data("zero or negative query resolution step widths are not accepted. Try a positive integer")
    if (end_ms - start_ms) // step_ms > engine.max_points_per_series:
        raise bad_data(f"exceeded maximum resolution of {engine.max_points_per_series:,} points per timeseries. "
                       "Try decreasing the query resolution (?step=XX)")
    timeout_s = _timeout(params)
    limit = parse_limit(params)
    lookback_ms = _lookback(params)
    text = params.get("query")

    def evaluate() -> Response:
        result = engine.range(text, start_ms, end_ms, step_ms, timeout_s=timeout_s, lookback_ms=lookback_ms)
        return _query_response(result, limit)

    return await _off_loop(evaluate)


def _timeout(params: Params) -> float | None:
    text = params.get("timeout")
    if text == "":
        return None
    timeout_ms = parse_duration_param(text, "timeout")
    if timeout_ms <= 0:
        raise invalid_parameter("timeout", "the timeout must be positive")
    return timeout_ms / 1000.0


def _lookback(params: Params) -> int | None:
    text = params.get("lookback_delta")
    if text == "":
        return None
    lookback_ms = parse_duration_param(text, "lookback_delta")
    if lookback_ms <= 0:
        raise invalid_parameter("lookback_delta", "the lookback delta must be positive")
    return lookback_ms


def _query_response(result: QueryResult, limit: int) -> Response:
    warnings = list(result.warnings)
    series = result.series
    if limit and len(series) > limit:
        series = series[:limit]
        warnings.append("results truncated due to limit")
    body = ['{"status":"success","data":{"resultType":', json.dumps(result.result_type), ',"result":']
    if result.result_type == "scalar":
        body.append(f'[{api_timestamp(result.time_ms)},{json.dumps(api_floats([result.value])[0])}]')
    elif result.result_type == "string":
        body.append(f"[{api_timestamp(result.time_ms)},{json.dumps(result.value)}]")
    else:
        body.append(_series_json(series, result.result_type))
    body.append("}")
    if warnings:
        body.append(',"warnings":' + json.dumps(warnings))
    if result.infos:
        body.append(',"infos":' + json.dumps(result.infos))
    body.append("}")
    return Response("".join(body), media_type="application/json")


def _series_json(series, result_type: str) -> str:
    parts = []
    stamp_cache: dict[int, str] = {}
    for item in series:
        metric = json.dumps(dict(item.labels))
        stamps = [stamp_cache.get(ms) or stamp_cache.setdefault(ms, api_timestamp(ms))
                  for ms in item.timestamps_ms.tolist()]
        values = api_floats(item.values)
        points = ",".join(f'[{stamp},"{value}"]' for stamp, value in zip(stamps, values))
        if result_type == "vector":
            parts.append(f'{{"metric":{metric},"value":{points}}}')
        else:
            parts.append(f'{{"metric":{metric},"values":[{points}]}}')
    return "[" + ",".join(parts) + "]"


async def format_query_endpoint(request: Request, params: Params) -> Response:
    try:
        formatted = format_query(params.get("query"))
    except QueryError as error:
        raise invalid_parameter("query", str(error)) from None
    return success(formatted)


async def query_exemplars(request: Request, params: Params) -> Response:
    # GoSight stores no exemplars; the parameters are still checked as Prometheus does.
    parse_time_param(params, "start", MIN_TIME_MS)
    parse_time_param(params, "end", MAX_TIME_MS)
    try:
        parse_query(params.get("query"))
    except QueryError as error:
        raise invalid_parameter("query", str(error)) from None
    return success([])


# Metadata endpoints.

async def series(request: Request, params: Params) -> Response:
    groups = parse_matchers(params, required=True)
    _require_non_empty_matcher(groups)
    start_ms = parse_time_param(params, "start", MIN_TIME_MS)
    end_ms = parse_time_param(params, "end", MAX_TIME_MS)
    limit = parse_limit(params)
    labels: list[Labels] = await _off_loop(_backend(request).series, groups, start_ms, end_ms)
    return _limited([dict(item) for item in labels], limit)


def _require_non_empty_matcher(groups: list[tuple[Matcher, ...]]) -> None:
    for group in groups:
        if not any(not matcher.matches("") for matcher in group):
            raise bad_data("match[] must contain at least one non-empty matcher")


async def labels_endpoint(request: Request, params: Params) -> Response:
    groups = parse_matchers(params, required=False) or [()]
    start_ms = parse_time_param(params, "start", MIN_TIME_MS)
    end_ms = parse_time_param(params, "end", MAX_TIME_MS)
    limit = parse_limit(params)
    return _limited(await _off_loop(_backend(request).label_names, groups, start_ms, end_ms), limit)


async def label_values(request: Request, params: Params) -> Response:
    name = unescape_label_name(request.path_params["name"])
    if not name:
        raise bad_data(f"invalid label name: {json.dumps(name)}")
    groups = parse_matchers(params, required=False) or [()]
    start_ms = parse_time_param(params, "start", MIN_TIME_MS)
    end_ms = parse_time_param(params, "end", MAX_TIME_MS)
    limit = parse_limit(params)
    values = await _off_loop(_backend(request).label_values, name, groups, start_ms, end_ms)
    return _limited(values, limit)


def unescape_label_name(name: str) -> str:
    """Decode the U__ escaping that Prometheus clients use for label names with other characters.

    After the U__ prefix, `__` stands for `_` and `_<hex>_` for the character with that code.
    """
    if not name.startswith("U__"):
        return name
    out: list[str] = []
    index = 3
    text = name
    while index < len(text):
        char = text[index]
        if char != "_":
            out.append(char)
            index += 1
            continue
        if text.startswith("__", index):
            out.append("_")
            index += 2
            continue
        close = text.find("_", index + 1)
        if close < 0:
            # An escape that never closes: like Prometheus, keep the name as sent.
            return name
        digits = text[index + 1:close]
        try:
            out.append(chr(int(digits, 16)))
        except (ValueError, OverflowError):
            return name
        index = close + 1
    return "".join(out)


def _limited(items: list, limit: int) -> Response:
    if limit and len(items) > limit:
        return success(items[:limit], warnings=["results truncated due to limit"])
    return success(items)


async def metadata(request: Request, params: Params) -> Response:
    limit = _optional_int(params, "limit")
    per_metric = _optional_int(params, "limit_per_metric")
    metric = params.get("metric") or None
    # Metadata stays in the embedded store with either backend: remote write 1.0 carries none.
    store = request.app.state.store
    data: dict[str, list[dict]] = {}
    for item in store.metadata(metric):
        if limit is not None and limit >= 0 and len(data) >= limit:
            break
        entries = [{"type": item.type, "help": item.help, "unit": item.unit}]
        if per_metric is not None and per_metric >= 0:
            entries = entries[:per_metric]
        data[item.metric] = entries
    return success(data)


def _optional_int(params: Params, name: str) -> int | None:
    text = params.get(name)
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise invalid_parameter(name, f"cannot parse {json.dumps(text)} to a valid integer") from None


# Status endpoints.

async def buildinfo(request: Request, params: Params) -> Response:
    return success({"version": PROMETHEUS_VERSION, "revision": f"gosight-{__version__}", "branch": "",
                    "buildUser": "gosight", "buildDate": "", "goVersion": ""})


async def runtimeinfo(request: Request, params: Params) -> Response:
    config = request.app.state.config
    retention_days = config["store.retention_days"]
    started = datetime.datetime.fromtimestamp(_STARTED_AT, tz=datetime.timezone.utc)
    return success({
        "startTime": started.isoformat().replace("+00:00", "Z"),
        "CWD": os.getcwd(),
        "reloadConfigSuccess": True,
        "lastConfigTime": started.isoformat().replace("+00:00", "Z"),
        "corruptionCount": 0,
        "goroutineCount": threading.active_count(),
        "GOMAXPROCS": os.cpu_count() or 1,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": f"{retention_days:g}d",
    })


async def rules(request: Request, params: Params) -> Response:
    return success({"groups": []})


async def alerts(request: Request, params: Params) -> Response:
    return success({"alerts": []})


def routes() -> list[BaseRoute]:
    both = ("GET", "POST")

    def make(path: str, function: Callable, methods=("GET",)) -> BaseRoute:
        return route(PREFIX + path, _handler(function), permission=PERMISSION, methods=methods)

    return [
        make("/query", query, both),
        make("/query_range", query_range, both),
        make("/format_query", format_query_endpoint, both),
        make("/query_exemplars", query_exemplars, both),
        make("/series", series, both),
        make("/labels", labels_endpoint, both),
        make("/label/{name}/values", label_values),
        make("/metadata", metadata),
        make("/status/buildinfo", buildinfo),
        make("/status/runtimeinfo", runtimeinfo),
        make("/rules", rules),
        make("/alerts", alerts),
    ]
