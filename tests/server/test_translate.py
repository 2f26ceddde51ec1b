import pytest

from gosight.server import translate


@pytest.mark.parametrize("name, unit, kind, expected", [
    ("http.server.duration", "s", "histogram", "http_server_duration_seconds"),
    ("http.requests", "{request}", "counter", "http_requests_total"),
    ("http.requests", "1", "counter", "http_requests_total"),
    ("system.memory.usage", "By", "gauge", "system_memory_usage_bytes"),
    ("cpu.utilization", "1", "gauge", "cpu_utilization_ratio"),
    ("network.io", "By/s", "gauge", "network_io_bytes_per_second"),
    ("queue-depth", "", "gauge", "queue_depth"),
    ("2xx.responses", "", "counter", "_2xx_responses_total"),
    ("requests.total.count", "", "counter", "requests_count_total"),
    ("temperature", "Cel", "gauge", "temperature_celsius"),
    ("ratio", "%", "gauge", "ratio_percent"),
    # Names that already follow Prometheus conventions pass through unchanged.
    ("node_cpu_seconds_total", "s", "counter", "node_cpu_seconds_total"),
    ("node_memory_MemTotal_bytes", "By", "gauge", "node_memory_MemTotal_bytes"),
    ("node_load1", "", "gauge", "node_load1"),
    ("node_disk_reads_completed_total", "", "counter", "node_disk_reads_completed_total"),
    ("job:rate5m:sum", "", "gauge", "job:rate5m:sum"),
])
def test_metric_name(name, unit, kind, expected):
    assert translate.metric_name(name, unit, kind) == expected


@pytest.mark.parametrize("key, expected", [
    ("http.method", "http_method"),
    ("cpu", "cpu"),
    ("1st", "key_1st"),
    ("__reserved", "key__reserved"),
    ("_private", "_private"),
    ("a-b/c", "a_b_c"),
    ("", "_"),
])
def test_label_name(key, expected):
    assert translate.label_name(key) == expected
