"""Logging set-up for the gosight command, and a throttle for repeated errors.

Only the command-line entry point configures logging. Modules log through
`logging.getLogger(__name__)`, with lowercase stable messages and the variable parts
passed as `%` arguments or in `extra={"fields": {...}}`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

ROOT = "gosight"


class TextFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678Z info  gosight.server: message key=value` lines."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, msg and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            for key, value in fields.items():
                document.setdefault(key, value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or " " in text or '"' in text) else text


def configure_logging(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Send gosight's log records to stderr in the chosen format; safe to call again."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(ROOT).setLevel(level.upper())
    # Third-party libraries stay at warning so their chatter does not bury ours.
    for noisy in ("uvicorn.access", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


class Throttle:
    """Let a repeated message through at most once per `interval_s` for each key.

    Thread-safe. `allow` returns how many calls were suppressed since the last
    one let through, or None when this call should stay quiet.
    """

    def __init__(self, interval_s: float = 60.0, clock: Any = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[Any, float] = {}
        self._suppressed: dict[Any, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: Any) -> int | None:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._suppressed.pop(key, 0)

    def reset(self, key: Any) -> None:
        with self._lock:
            self._last.pop(key, None)
            self._suppressed.pop(key, None)
