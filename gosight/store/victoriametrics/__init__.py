"""VictoriaMetrics as the metric backend: remote write out, Prometheus query API in.

`RemoteWriter` forwards every committed sample by Prometheus remote write 1.0, and
`VictoriaMetricsBackend` answers metric queries from VictoriaMetrics' query API.
"""

from gosight.store.victoriametrics.forwarder import RemoteWriter
from gosight.store.victoriametrics.query import VictoriaMetricsBackend

__all__ = ["RemoteWriter", "VictoriaMetricsBackend"]
