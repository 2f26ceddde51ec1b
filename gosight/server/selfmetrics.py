"""The server's own metrics, served at /metrics in the Prometheus text format."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily

# The *_created series double the output and no GoSight view reads them.
disable_created_metrics()

_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    """Counters and gauges of one server instance, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.samples_received = Counter(
            "gosight_ingest_samples_received", "Samples decoded from accepted requests.", ["receiver"], registry=r)
        self.samples_rejected = Counter(
            "gosight_ingest_samples_rejected", "Samples dropped by validation, by receiver.", ["receiver"], registry=r)
        self.requests = Counter(
            "gosight_ingest_requests", "Ingest requests by receiver and result code.", ["receiver", "code"],
            registry=r)
        self.samples_stored = Counter("gosight_store_samples_written", "Samples committed to the store.", registry=r)
        self.duplicate_batches = Counter(
            "gosight_ingest_duplicate_batches", "Retried batches recognised as already stored and skipped.",
            registry=r)
        self.queue_samples = Gauge("gosight_ingest_queue_samples", "Samples waiting in the ingest queue.", registry=r)
        self.queue_capacity = Gauge(
            "gosight_ingest_queue_capacity_samples", "Samples the ingest queue can hold.", registry=r)
        self.queue_rejections = Counter(
            "gosight_ingest_queue_full", "Requests turned away because the ingest queue was full.", registry=r)
        self.write_duration = Histogram(
            "gosight_store_write_duration_seconds", "Time of one store commit.", buckets=_WRITE_BUCKETS, registry=r)
        self.write_errors = Counter("gosight_store_write_errors", "Store commits that failed.", registry=r)
        self.control_streams = Gauge(
            "gosight_agents_connected", "Agents with an open control stream.", registry=r)
        self.control_rejections = Counter(
            "gosight_control_rejected_streams", "Control streams closed for a protocol error, by reason.",
            ["reason"], registry=r)
        self.endpoint_conflicts = Counter(
            "gosight_endpoint_identity_conflicts",
            "Agents found claiming the endpoint id of another present agent, such as machines cloned with one "
            "machine id; counted once per pair of agents and server start.", registry=r)

    def add_gauge_callback(self, name: str, help_text: str, labels: list[str],
                           read: Callable[[], list[tuple[list[str], float]]]) -> None:
        """Expose a gauge whose values are read at scrape time."""
        self.registry.register(_CallbackCollector(name, help_text, labels, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CallbackCollector:
    def __init__(self, name: str, help_text: str, labels: list[str],
                 read: Callable[[], list[tuple[list[str], float]]]):
        self._name = name
        self._help = help_text
        self._labels = labels
        self._read = read

    def collect(self):
        family = GaugeMetricFamily(self._name, self._help, labels=self._labels)
        for label_values, value in self._read():
            family.add_metric(label_values, value)
        yield family

    def describe(self):
        yield GaugeMetricFamily(self._name, self._help, labels=self._labels)
