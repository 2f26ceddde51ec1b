"""OpenTelemetry to Prometheus name translation.

The rules are those of the OpenTelemetry specification's Prometheus compatibility
section: characters outside `[a-zA-Z0-9_:]` become `_`, the UCUM unit is appended as
a word (`s` becomes `_seconds`, `By/s` becomes `_bytes_per_second`) unless the name
already contains it, monotonic sums end in `_total`, and gauges of unit `1` end in
`_ratio`. The rules are idempotent, so names that already follow Prometheus
conventions, such as those GoSight's agent sends, pass through unchanged.
"""

from __future__ import annotations

import functools
import re

_UNIT_WORDS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds", "us": "microseconds",
    "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius",
    "Hz": "hertz", "%": "percent", "1": "",
}
_PER_UNIT_WORDS = {
    "s": "second", "m": "minute", "min": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year",
}

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]+")
_ANNOTATION = re.compile(r"\{[^}]*\}")
_TOKEN_SPLIT = re.compile(r"[^a-zA-Z0-9:]+")


@functools.lru_cache(maxsize=65536)
def metric_name(name: str, unit: str, kind: str) -> str:
    """Return the Prometheus name of an OTLP metric.

    `kind` is "counter" (monotonic sum), "gauge" (gauge or non-monotonic sum),
    "histogram" or "summary".
    """
    tokens = [token for token in _TOKEN_SPLIT.split(name) if token]
    main_unit, per_unit = _unit_words(unit)
    if kind == "counter":
        tokens = [token for token in tokens if token != "total"]
    if main_unit and main_unit not in tokens:
        tokens.append(main_unit)
    if per_unit and per_unit not in tokens:
        tokens.extend(["per", per_unit])
    if kind == "counter":
        tokens.append("total")
    if kind == "gauge" and unit == "1" and "ratio" not in tokens:
        tokens.append("ratio")
    result = "_".join(tokens) or "_"
    if result[0].isdigit():
        result = "_" + result
    return result


@functools.lru_cache(maxsize=65536)
def label_name(key: str) -> str:
    """Return a valid Prometheus label name for an OTLP attribute key."""
    result = _INVALID_LABEL_CHARS.sub("_", key)
    if not result:
        return "_"
    if result[0].isdigit():
        return "key_" + result
    if result.startswith("__"):
        # Names starting with two underscores are reserved for Prometheus itself.
        return "key" + result
    return result


def _unit_words(unit: str) -> tuple[str, str]:
    unit = _ANNOTATION.sub("", unit).strip()
    if not unit:
        return "", ""
    main, _, per = unit.partition("/")
    main_word = _UNIT_WORDS.get(main, _INVALID_LABEL_CHARS.sub("_", main).strip("_"))
    per_word = _PER_UNIT_WORDS.get(per, _INVALID_LABEL_CHARS.sub("_", per).strip("_")) if per else ""
    return main_word, per_word
