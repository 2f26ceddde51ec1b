"""State of one query evaluation: time range, limits, deadline and collected annotations."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gosight.store.metrics_duckdb import MetricStore
from gosight.store.promql.errors import QueryTimeoutError, TooManySamplesError
from gosight.store.promql.parse import position_text

# Step of a subquery written without one (`x[1h:]`); Prometheus uses the global
# evaluation interval, which defaults to one minute.
DEFAULT_SUBQUERY_STEP_MS = 60_000


@dataclass
class EvalContext:
    store: MetricStore
    query: str
    start_ms: int
    end_ms: int
    step_ms: int  # 0 for an instant query
    lookback_ms: int
    max_samples: int
    timeout_s: float
    deadline: float  # time.monotonic() value
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    samples_loaded: int = 0

    @property
    def is_range_query(self) -> bool:
        return self.start_ms != self.end_ms

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeoutError(self.timeout_s)

    def count_samples(self, count: int) -> None:
        """Add samples read or held by the query; raise when the total passes the limit."""
        self.samples_loaded += int(count)
        if self.samples_loaded > self.max_samples:
            raise TooManySamplesError(self.max_samples)

    def warn(self, message: str, pos: int) -> None:
        text = f"PromQL warning: {message} ({position_text(self.query, pos)})"
        if text not in self.warnings:
            self.warnings.append(text)

    def info(self, message: str, pos: int) -> None:
        text = f"PromQL info: {message} ({position_text(self.query, pos)})"
        if text not in self.infos:
            self.infos.append(text)
