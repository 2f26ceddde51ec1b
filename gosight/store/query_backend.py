"""The interface through which the Prometheus API and live mode read metrics.

Two backends implement it: `EmbeddedBackend` evaluates PromQL over the embedded
DuckDB store, and `gosight.store.victoriametrics.query.VictoriaMetricsBackend` asks
VictoriaMetrics. Both return the engine's `QueryResult` and raise `QueryError`
subclasses, so callers render one response shape whichever backend answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gosight.model import Labels, Matcher
from gosight.store.promql import Engine, QueryResult

# Matcher groups of the match[] parameters: a series matches when it matches every
# matcher of at least one group.
MatcherGroups = Sequence[tuple[Matcher, ...]]


class QueryBackend(Protocol):
    """Query methods with the semantics of Prometheus' HTTP API; thread-safe."""

    max_points_per_series: int

    def instant(self, query: str, time_ms: int, *, timeout_s: float | None = None,
                lookback_ms: int | None = None) -> QueryResult: ...

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int, *, timeout_s: float | None = None,
              lookback_ms: int | None = None) -> QueryResult: ...

    def series(self, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[Labels]:
        """Return the label sets of the series matching any group with samples in the range, sorted."""
        ...

    def label_names(self, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[str]: ...

    def label_values(self, name: str, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[str]: ...


class EmbeddedBackend:
    """PromQL over the embedded store."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self.max_points_per_series = engine.max_points_per_series

    def instant(self, query: str, time_ms: int, *, timeout_s: float | None = None,
                lookback_ms: int | None = None) -> QueryResult:
        return self.engine.instant(query, time_ms, timeout_s=timeout_s, lookback_ms=lookback_ms)

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int, *, timeout_s: float | None = None,
              lookback_ms: int | None = None) -> QueryResult:
        return self.engine.range(query, start_ms, end_ms, step_ms, timeout_s=timeout_s, lookback_ms=lookback_ms)

    def series(self, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[Labels]:
        found: dict[int, Labels] = {}
        for group in groups:
            for series_id, labels in self.store.select_series(group, start_ms, end_ms):
                found[series_id] = labels
        return sorted(found.values())

    def label_names(self, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[str]:
        found: set[str] = set()
        for group in groups:
            found.update(self.store.label_names(group, start_ms, end_ms))
        return sorted(found)

    def label_values(self, name: str, groups: MatcherGroups, start_ms: int, end_ms: int) -> list[str]:
        found: set[str] = set()
        for group in groups:
            found.update(self.store.label_values(name, group, start_ms, end_ms))
        return sorted(found)
