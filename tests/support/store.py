"""Read a stopped server's metric store directly, to check exactly what it holds."""

from __future__ import annotations

from pathlib import Path

from gosight.model import Matcher
from gosight.store.metrics_duckdb import MetricStore, SeriesData


def read_series(data_dir: Path, metric: str, **labels: str) -> list[SeriesData]:
    """Return every stored series of `metric` matching `labels`, with all of its samples."""
    store = MetricStore(data_dir / "metrics.duckdb")
    try:
        matchers = [Matcher("__name__", "=", metric)] + [Matcher(name, "=", value) for name, value in labels.items()]
        return store.read_samples(store.select_series(matchers), 0, 2**62)
    finally:
        store.close()


def series_names(data_dir: Path) -> set[str]:
    store = MetricStore(data_dir / "metrics.duckdb")
    try:
        return set(store.label_values("__name__"))
    finally:
        store.close()
