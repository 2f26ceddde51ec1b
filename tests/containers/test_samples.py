"""Engine replies to samples, host files, and the runner's resources, without an engine."""

from __future__ import annotations

import pytest

from gosight.agent.catalog import _SPECS
from gosight.agent.collectors.base import Sample
from gosight.agent.collectors.container_files import memory_stat_path, parse_memory_stat, parse_net_dev
from gosight.agent.collectors.container_samples import (
    HostView,
    describe,
    endpoint_id,
    info_samples,
    label_name,
    memory_breakdown,
    parse_time,
    resource_key,
    series_labels,
    stats_samples,
)
from gosight.agent.collectors.containers import candidate_addresses, find_engine
from gosight.agent.runner import Collection
from gosight.server import translate
from gosight.wire.otlp import ResourceGroup, encode_resources, resource_attributes

CONTAINER_ID = "0123456789ab" + "c" * 52

# A Docker 24 reply on cgroup v2, trimmed to the fields the collector reads.
DOCKER_STATS = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000, "usage_in_usermode": 2_000_000_000,
                                "usage_in_kernelmode": 500_000_000}},
    "memory_stats": {"usage": 50_000_000, "limit": 67_108_864,
                     "stats": {"anon": 30_000_000, "file": 15_000_000, "inactive_file": 10_000_000}},
    "networks": {"eth0": {"rx_bytes": 1000, "rx_packets": 10, "rx_errors": 1, "rx_dropped": 2,
                          "tx_bytes": 2000, "tx_packets": 20, "tx_errors": 3, "tx_dropped": 4}},
    "blkio_stats": {"io_service_bytes_recursive": [
        {"major": 7, "minor": 99, "op": "read", "value": 4096},
        {"major": 7, "minor": 99, "op": "write", "value": 8192},
        {"major": 7, "minor": 99, "op": "Total", "value": 12288},
    ]},
    "pids_stats": {"current": 3},
}

LIST_ENTRY = {"Id": CONTAINER_ID, "Names": ["/web"], "Image": "nginx:1.25", "State": "running",
              "Labels": {"app": "web", "com.docker.compose.project": "shop"}}
INSPECT = {"State": {"StartedAt": "2024-03-05T14:07:09.123456789Z", "Pid": 4242, "Health": {"Status": "healthy"}},
           "HostConfig": {"Memory": 67_108_864, "NetworkMode": "bridge"}, "Config": {"Image": "nginx:1.25"}}


def by_key(samples) -> dict[tuple, float]:
    return {(sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("id", "name", "image")))):
            sample.value for sample in samples}


def test_describe_reads_list_and_inspect():
    info = describe(LIST_ENTRY, INSPECT)

    assert info.name == "web"
    assert info.image == "nginx:1.25"
    assert info.state == "running"
    assert info.health == "healthy"
    assert info.memory_limit_bytes == 67_108_864
    assert info.pid == 4242
    assert info.host_network is False
    assert info.endpoint_id == "ctr-0123456789ab"


def test_describe_without_inspect_keeps_list_facts():
    info = describe(LIST_ENTRY, None)

    assert (info.name, info.state, info.memory_limit_bytes, info.started_at_s) == ("web", "running", 0, None)


@pytest.mark.parametrize("text, expected", [
    ("2024-03-05T14:07:09.123456789Z", 1709647629.123456789),
    ("2024-03-05T14:07:09Z", 1709647629.0),
    ("2024-03-05T15:07:09.5+01:00", 1709647629.5),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    (None, None),
    ("yesterday", None),
])
def test_parse_time(text, expected):
    parsed = parse_time(text)

    if expected is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name, expected", [
    ("app", "container_label_app"),
    ("com.docker.compose.project", "container_label_com_docker_compose_project"),
    ("team-owner", "container_label_team_owner"),
])
def test_label_name(name, expected):
    assert label_name(name) == expected


def test_series_labels_only_listed_container_labels():
    info = describe(LIST_ENTRY, INSPECT)

    labels = series_labels(info, ("com.docker.compose.project", "missing"))

    assert labels == {"id": CONTAINER_ID, "name": "web", "image": "nginx:1.25",
                      "container_label_com_docker_compose_project": "shop"}


def test_endpoint_id_is_prefix_of_container_id():
    assert endpoint_id(CONTAINER_ID) == "ctr-0123456789ab"


@pytest.mark.parametrize("stat, expected", [
    ({"anon": 3, "file": 5, "inactive_file": 2}, (3, 5, 2)),
    ({"total_rss": 30, "total_cache": 50, "total_inactive_file": 20, "rss": 1, "cache": 1}, (30, 50, 20)),
    ({"rss": 3, "cache": 5, "inactive_file": 2}, (3, 5, 2)),
    ({"pgfault": 7}, None),
])
def test_memory_breakdown_cgroup_versions(stat, expected):
    breakdown = memory_breakdown(stat)

    assert (tuple(breakdown) if breakdown else None) == expected


def test_info_samples_one_state_set():
    info = describe({**LIST_ENTRY, "State": "exited"}, INSPECT)

    values = by_key(info_samples(info, series_labels(info, ()), ()))

    states = {labels[0][1]: value for (name, labels), value in values.items() if name == "container_state"}
    assert states == {"created": 0, "running": 0, "paused": 0, "restarting": 0, "removing": 0, "exited": 1, "dead": 0}
    assert values[("container_spec_memory_limit_bytes", ())] == 67_108_864
    assert values[("container_start_time_seconds", ())] == pytest.approx(1709647629.123456789)
    health = {labels[0][1]: value for (name, labels), value in values.items() if name == "container_health_status"}
    assert health == {"starting": 0, "healthy": 1, "unhealthy": 0}


def test_info_samples_unknown_state_kept():
    info = describe({**LIST_ENTRY, "State": "Stopping"}, None)

    values = by_key(info_samples(info, series_labels(info, ()), ()))

    assert values[("container_state", (("state", "stopping"),))] == 1
    assert sum(value for (name, _), value in values.items() if name == "container_state") == 1


def test_stats_samples_from_docker_reply():
    info = describe(LIST_ENTRY, INSPECT)

    values = by_key(stats_samples(DOCKER_STATS, None, info, series_labels(info, ()), ()))

    assert values[("container_cpu_usage_seconds_total", ())] == 2.5
    assert values[("container_cpu_user_seconds_total", ())] == 2.0
    assert values[("container_cpu_system_seconds_total", ())] == 0.5
    assert values[("container_memory_usage_bytes", ())] == 50_000_000
    assert values[("container_memory_rss", ())] == 30_000_000
    assert values[("container_memory_cache", ())] == 15_000_000
    assert values[("container_memory_working_set_bytes", ())] == 40_000_000
    assert values[("container_network_receive_bytes_total", (("interface", "eth0"),))] == 1000
    assert values[("container_network_transmit_packets_dropped_total", (("interface", "eth0"),))] == 4
    assert values[("container_threads", ())] == 3
    reads = [(key, value) for key, value in values.items() if key[0] == "container_fs_reads_bytes_total"]
    writes = [(key, value) for key, value in values.items() if key[0] == "container_fs_writes_bytes_total"]
    assert [value for _, value in reads] == [4096] and [value for _, value in writes] == [8192], values


def test_host_view_fills_what_podman_leaves_out():
    podman_stats = {**DOCKER_STATS, "memory_stats": {"usage": 50_000_000, "limit": 1 << 40},
                    "networks": {"network": {"rx_bytes": 999, "rx_packets": 0}}}
    host = HostView(memory_stat={"total_rss": 1000, "total_cache": 2000, "total_inactive_file": 500},
                    net_dev={"lo": {"rx_bytes": 5}, "tap0": {"rx_bytes": 700, "rx_packets": 7}})
    info = describe(LIST_ENTRY, INSPECT)

    values = by_key(stats_samples(podman_stats, host, info, series_labels(info, ()), ()))

    assert values[("container_memory_rss", ())] == 1000
    assert values[("container_memory_working_set_bytes", ())] == 50_000_000 - 500
    assert values[("container_network_receive_packets_total", (("interface", "tap0"),))] == 7
    interfaces = {dict(labels).get("interface") for name, labels in values if name.startswith("container_network")}
    assert interfaces == {"tap0"}, "loopback and the engine's summed interface are left out"


def test_working_set_never_negative():
    stats = {"memory_stats": {"usage": 100, "stats": {"anon": 10, "file": 90, "inactive_file": 500}}}
    info = describe(LIST_ENTRY, INSPECT)

    values = by_key(stats_samples(stats, None, info, series_labels(info, ()), ()))

    assert values[("container_memory_working_set_bytes", ())] == 0


def test_host_network_container_has_no_network_series():
    info = describe(LIST_ENTRY, {**INSPECT, "HostConfig": {"NetworkMode": "host"}})

    names = {sample.name for sample in stats_samples(DOCKER_STATS, None, info, series_labels(info, ()), ())}

    assert not any(name.startswith("container_network") for name in names), names


def test_parse_net_dev():
    text = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
        "carrier compressed\n"
        "    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0"
        "       0          0\n"
        "  eth0:  123456     789    1    2    0     0          0         0    65432     321    3    4    0     0"
        "       0          0\n"
    )

    parsed = parse_net_dev(text)

    assert parsed["eth0"] == {"rx_bytes": 123456, "rx_packets": 789, "rx_errors": 1, "rx_dropped": 2,
                              "tx_bytes": 65432, "tx_packets": 321, "tx_errors": 3, "tx_dropped": 4}
    assert set(parsed) == {"lo", "eth0"}


def test_parse_memory_stat():
    assert parse_memory_stat("anon 12\nfile 34\nbogus\nweird x\n") == {"anon": 12, "file": 34}


def test_memory_stat_path_v1():
    cgroups = "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n"

    assert memory_stat_path(cgroups, "/sys/fs/cgroup") == "/sys/fs/cgroup/memory/docker/abc/memory.stat"


def test_memory_stat_path_v2(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")

    path = memory_stat_path("0::/system.slice/docker-abc.scope\n", str(tmp_path))

    assert path == str(tmp_path / "system.slice" / "docker-abc.scope" / "memory.stat")


def test_memory_stat_path_v2_needs_unified_hierarchy(tmp_path):
    assert memory_stat_path("0::/system.slice/docker-abc.scope\n", str(tmp_path)) is None


@pytest.mark.parametrize("setting, env, expected", [
    ("/run/x.sock", {"DOCKER_HOST": "tcp://h:2375"}, ["/run/x.sock"]),
    ("", {"DOCKER_HOST": "tcp://h:2375"}, ["tcp://h:2375"]),
    ("", {}, ["/var/run/docker.sock", "/run/podman/podman.sock"]),
    ("", {"XDG_RUNTIME_DIR": "/run/user/1000"},
     ["/var/run/docker.sock", "/run/podman/podman.sock", "/run/user/1000/podman/podman.sock"]),
])
def test_candidate_addresses_order(setting, env, expected):
    assert candidate_addresses(setting, env) == expected


def test_find_engine_picks_first_existing_socket(tmp_path):
    runtime = tmp_path / "podman"
    runtime.mkdir()
    (runtime / "podman.sock").touch()

    found = find_engine("", {"XDG_RUNTIME_DIR": str(tmp_path)})

    assert found in ("unix:///var/run/docker.sock", "unix:///run/podman/podman.sock",
                     f"unix://{runtime / 'podman.sock'}")


def test_find_engine_none_without_sockets(tmp_path):
    assert find_engine(str(tmp_path / "missing.sock"), {}) is None


# --- the runner with resources


class FakeContainers:
    """A collector that reports two containers, then one."""

    name = "containers"

    def __init__(self) -> None:
        self.calls = 0
        self.up = True

    def collect(self):
        self.calls += 1
        names = ["a", "b"] if self.calls == 1 else ["a"]
        for name in names:
            resource = resource_key(describe({**LIST_ENTRY, "Id": name * 12, "Names": [f"/{name}"]}, None), "docker")
            yield Sample("container_threads", {"id": name * 12, "name": name, "image": "x"}, 1.0, resource)


def test_collection_keys_points_by_resource():
    collection = Collection([FakeContainers()])

    points, stale = collection.run()
    points_after, stale_after = collection.run()

    resources = {dict(resource).get("container.name") for resource, _ in points}
    assert resources == {None, "a", "b"}, resources
    assert stale == []
    assert [dict(resource)["container.name"] for resource, _ in stale_after] == ["b"]
    assert [point[0] for _, point in stale_after] == ["container_threads"]


def test_collector_down_reports_up_zero():
    collector = FakeContainers()
    collector.up = False
    collection = Collection([collector])

    points, _ = collection.run()

    up = [point for resource, point in points if point[0] == "gosight_collector_up"]
    assert up == [("gosight_collector_up", (("collector", "containers"),), 0.0)]


def test_encode_resources_one_resource_metrics_per_group():
    host = resource_attributes({"gosight.endpoint.id": "host-1"})
    container = resource_attributes({"gosight.endpoint.id": "ctr-1", "gosight.host.endpoint.id": "host-1"})
    groups = [ResourceGroup(host, [("node_load1", (), 0.5)]),
              ResourceGroup(container, [("container_threads", (("name", "a"),), 2.0)],
                            [("container_state", (("state", "running"),), 0.0)])]

    request = encode_resources(groups, 1_000, 0, "test", {})

    assert len(request.resource_metrics) == 2
    second = request.resource_metrics[1]
    attributes = {kv.key: kv.value.string_value for kv in second.resource.attributes}
    assert attributes == {"gosight.endpoint.id": "ctr-1", "gosight.host.endpoint.id": "host-1"}
    names = [metric.name for metric in second.scope_metrics[0].metrics]
    assert names == ["container_threads", "container_state"]
    stale_point = second.scope_metrics[0].metrics[1].gauge.data_points[0]
    assert stale_point.flags == 1, "a stale point carries the no-recorded-value flag"


CONTAINER_SPECS = [spec for spec in _SPECS if spec.collector == "containers"]


@pytest.mark.parametrize("spec", CONTAINER_SPECS, ids=lambda spec: spec.name)
def test_catalogue_name_survives_server_translation(spec):
    # The server applies OpenTelemetry's naming rules; cAdvisor's names must come out unchanged.
    assert translate.metric_name(spec.name, spec.unit, spec.type) == spec.name
