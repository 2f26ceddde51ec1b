"""The containers collector against a real engine: Podman serving the Docker Engine API."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gosight.agent.catalog import CATALOG
from gosight.agent.collectors.base import Sample
from gosight.agent.collectors.container_samples import STATES, parse_time
from gosight.agent.collectors.containers import ContainersCollector
from gosight.agent.runner import Collection
from gosight.config import load_config
from tests.containers.podman import LOCAL_IMAGE, Podman

MIB = 1 << 20
LIMIT_BYTES = 64 * MIB


def make_collector(address: str, **flags: object) -> ContainersCollector:
    config = load_config(["agent"], env={}, flags={
        "agent.server": "127.0.0.1:4317", "agent.containers.socket": address,
        "agent.containers.labels": "app,com.example.tier", **flags})
    return ContainersCollector(config)


@dataclass
class Fleet:
    podman: Podman
    ids: dict[str, str]


@pytest.fixture(scope="module")
def fleet(podman: Podman) -> Iterator[Fleet]:
    """Two running containers (one with a memory limit and labels), one stopped, one never started."""
    ids = {
        "col-web": podman.start_container("col-web", "--memory", "64m", "--label", "app=web",
                                          "--label", "com.example.tier=front"),
        "col-worker": podman.start_container("col-worker", "--health-cmd", "true", "--health-interval", "1h"),
        "col-stopped": podman.start_container("col-stopped"),
        "col-created": podman.create_container("col-created"),
    }
    podman.run("stop", "--time", "0", "col-stopped")
    yield Fleet(podman, ids)
    podman.run("rm", "--force", "--time", "0", *ids)


@pytest.fixture
def collector(fleet: Fleet) -> Iterator[ContainersCollector]:
    running = make_collector(fleet.podman.url)
    yield running
    running.close()


def of(samples: list[Sample], container: str, name: str) -> list[Sample]:
    return [sample for sample in samples if sample.labels.get("name") == container and sample.name == name]


def value(samples: list[Sample], container: str, name: str, **labels: str) -> float:
    matching = [sample for sample in of(samples, container, name)
                if all(sample.labels.get(key) == text for key, text in labels.items())]
    assert len(matching) == 1, f"expected one {name}{labels} of {container}, got {matching}"
    return matching[0].value


def current_state(samples: list[Sample], container: str) -> list[str]:
    return [sample.labels["state"] for sample in of(samples, container, "container_state") if sample.value == 1]


def podman_stats(podman: Podman, container: str) -> dict[str, int]:
    text = podman.run("stats", "--no-stream", "--format", "{{.CPUNano}} {{.MemLimit}} {{.PIDs}}", container)
    cpu_ns, limit, pids = text.split()
    return {"cpu_ns": int(cpu_ns), "limit": int(limit), "pids": int(pids)}


def net_dev(podman: Podman, container: str) -> dict[str, list[int]]:
    """Read /proc/net/dev inside the container: its own view of its interfaces."""
    lines = podman.run("exec", container, "cat", "/proc/net/dev").splitlines()[2:]
    return {line.split(":")[0].strip(): [int(part) for part in line.split(":")[1].split()] for line in lines}


# --- states, labels and limits


def test_states_of_running_and_stopped(collector):
    samples = collector.collect()

    assert current_state(samples, "col-web") == ["running"]
    assert current_state(samples, "col-worker") == ["running"]
    assert current_state(samples, "col-stopped") == ["exited"]
    assert current_state(samples, "col-created") == ["created"]
    reported = {sample.labels["state"] for sample in of(samples, "col-web", "container_state")}
    assert reported == set(STATES), f"state series {sorted(reported)}"


def test_collector_up_and_live_endpoints(collector, fleet):
    collector.collect()

    assert collector.up is True
    expected = {"ctr-" + container_id[:12] for container_id in fleet.ids.values()}
    assert expected <= set(collector.live_endpoint_ids), f"live {collector.live_endpoint_ids}"


def test_series_labels_name_the_container(collector, fleet):
    samples = collector.collect()

    usage = of(samples, "col-web", "container_memory_usage_bytes")
    assert len(usage) == 1, usage
    labels = usage[0].labels
    assert labels["id"] == fleet.ids["col-web"]
    assert labels["image"] == LOCAL_IMAGE
    assert labels["container_label_app"] == "web"
    assert labels["container_label_com_example_tier"] == "front"
    worker = of(samples, "col-worker", "container_memory_usage_bytes")[0].labels
    assert "container_label_app" not in worker, worker


def test_samples_carry_container_resource(collector, fleet):
    samples = collector.collect()

    resource = dict(of(samples, "col-web", "container_cpu_usage_seconds_total")[0].resource)
    assert resource["gosight.endpoint.id"] == "ctr-" + fleet.ids["col-web"][:12]
    assert resource["gosight.endpoint.kind"] == "container"
    assert resource["container.id"] == fleet.ids["col-web"]
    assert resource["container.name"] == "col-web"
    assert resource["container.image.name"] == LOCAL_IMAGE
    assert resource["container.runtime"] == "podman"


def test_every_sample_catalogued_with_its_labels(collector):
    samples = collector.collect()

    for sample in samples:
        spec = CATALOG.get(sample.name)
        assert spec is not None and spec.collector == "containers", f"{sample.name} is not a containers metric"
        plain = {label for label in sample.labels if not label.startswith("container_label_")}
        assert plain == set(spec.labels), f"{sample.name} labels {sorted(plain)}, catalogue {spec.labels}"
        assert math.isfinite(sample.value), f"{sample.name}{sample.labels} = {sample.value}"
        assert sample.value >= 0, f"{sample.name}{sample.labels} = {sample.value}"


def test_memory_limit_matches_engine(collector, fleet):
    samples = collector.collect()

    assert value(samples, "col-web", "container_spec_memory_limit_bytes") == LIMIT_BYTES
    assert fleet.podman.inspect("col-web")["HostConfig"]["Memory"] == LIMIT_BYTES
    assert podman_stats(fleet.podman, "col-web")["limit"] == LIMIT_BYTES
    assert value(samples, "col-worker", "container_spec_memory_limit_bytes") == 0
    assert value(samples, "col-stopped", "container_spec_memory_limit_bytes") == 0


def test_stopped_containers_have_no_statistics(collector):
    samples = collector.collect()

    for container in ("col-stopped", "col-created"):
        names = {sample.name for sample in samples if sample.labels.get("name") == container}
        assert names <= {"container_state", "container_spec_memory_limit_bytes", "container_start_time_seconds"}, (
            f"{container} has {sorted(names)}")


def test_start_time_matches_inspect(collector, fleet):
    samples = collector.collect()

    inspected = fleet.podman.inspect("col-web")["State"]["StartedAt"]
    reported = value(samples, "col-web", "container_start_time_seconds")
    assert abs(reported - _parse_podman_time(inspected)) < 0.001, f"{reported} vs {inspected}"
    assert of(samples, "col-created", "container_start_time_seconds") == []


# --- resource usage


def test_cpu_between_two_engine_readings(collector, fleet):
    fleet.podman.run("exec", "col-web", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
    before = podman_stats(fleet.podman, "col-web")["cpu_ns"] / 1e9

    samples = collector.collect()
    after = podman_stats(fleet.podman, "col-web")["cpu_ns"] / 1e9

    usage = value(samples, "col-web", "container_cpu_usage_seconds_total")
    user = value(samples, "col-web", "container_cpu_user_seconds_total")
    system = value(samples, "col-web", "container_cpu_system_seconds_total")
    assert before <= usage <= after, f"usage {usage} outside engine readings {before}..{after}"
    assert usage > 0.001, f"usage {usage} after a busy loop"
    # user and system come from USER_HZ ticks, so their sum matches the total to a few ticks.
    assert abs(user + system - usage) < 0.1, f"user {user} + system {system} vs usage {usage}"


def test_memory_follows_shared_memory_write(collector, fleet):
    before = collector.collect()
    fleet.podman.run("exec", "col-web", "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=16")

    after = collector.collect()
    fleet.podman.run("exec", "col-web", "rm", "/dev/shm/fill")

    grown = value(after, "col-web", "container_memory_usage_bytes") - value(
        before, "col-web", "container_memory_usage_bytes")
    cache_grown = value(after, "col-web", "container_memory_cache") - value(before, "col-web", "container_memory_cache")
    assert grown >= 15 * MIB, f"usage grew by {grown} bytes after writing 16 MiB to /dev/shm"
    assert cache_grown >= 15 * MIB, f"cache grew by {cache_grown} bytes; shared memory is page cache"
    usage = value(after, "col-web", "container_memory_usage_bytes")
    assert value(after, "col-web", "container_memory_working_set_bytes") <= usage
    assert value(after, "col-web", "container_memory_rss") <= usage
    assert usage <= LIMIT_BYTES


def test_network_counters_match_container_view(collector, fleet):
    before = net_dev(fleet.podman, "col-web")

    samples = collector.collect()
    after = net_dev(fleet.podman, "col-web")

    received = of(samples, "col-web", "container_network_receive_bytes_total")
    interfaces = {sample.labels["interface"] for sample in received}
    assert interfaces == set(after) - {"lo"}, f"interfaces {interfaces}, container has {sorted(after)}"
    for interface in interfaces:
        received = value(samples, "col-web", "container_network_receive_bytes_total", interface=interface)
        sent_packets = value(samples, "col-web", "container_network_transmit_packets_total", interface=interface)
        assert before[interface][0] <= received <= after[interface][0], f"{interface} received {received}"
        assert before[interface][9] <= sent_packets <= after[interface][9], f"{interface} sent {sent_packets}"


def test_threads_match_engine(collector, fleet):
    samples = collector.collect()

    assert value(samples, "col-web", "container_threads") == podman_stats(fleet.podman, "col-web")["pids"]


# --- health and pause


def test_health_status_follows_check(collector, fleet):
    fleet.podman.run("healthcheck", "run", "col-worker")

    samples = collector.collect()

    health = of(samples, "col-worker", "container_health_status")
    statuses = {sample.labels["status"]: sample.value for sample in health}
    assert statuses == {"starting": 0.0, "healthy": 1.0, "unhealthy": 0.0}, statuses
    assert of(samples, "col-web", "container_health_status") == [], "col-web has no health check"


def test_paused_container_keeps_statistics(collector, fleet):
    fleet.podman.run("pause", "col-web")
    try:
        samples = collector.collect()
    finally:
        fleet.podman.run("unpause", "col-web")

    assert current_state(samples, "col-web") == ["paused"]
    assert value(samples, "col-web", "container_memory_usage_bytes") > 0


def test_state_changes_at_next_collection(fleet):
    collector = make_collector(fleet.podman.url)
    fleet.podman.start_container("col-short")
    try:
        first = collector.collect()
        fleet.podman.run("stop", "--time", "0", "col-short")
        second = collector.collect()
    finally:
        collector.close()
        fleet.podman.run("rm", "--force", "col-short")

    assert current_state(first, "col-short") == ["running"]
    assert current_state(second, "col-short") == ["exited"]
    assert of(second, "col-short", "container_cpu_usage_seconds_total") == []


# --- failures


def test_container_removed_between_list_and_stats(fleet, monkeypatch):
    collector = make_collector(fleet.podman.url)
    doomed = fleet.podman.start_container("col-doomed")
    collector.collect()
    engine = collector._engine
    real_stats = engine.stats

    def remove_then_stats(container_id: str):
        if container_id == doomed:
            fleet.podman.run("rm", "--force", "--time", "0", doomed)
        return real_stats(container_id)

    monkeypatch.setattr(engine, "stats", remove_then_stats)
    try:
        samples = collector.collect()
    finally:
        collector.close()
        fleet.podman.run("rm", "--force", "--time", "0", "col-doomed", check=False)

    assert collector.up is True
    assert of(samples, "col-doomed", "container_state") == [], "a removed container has no series"
    assert "ctr-" + doomed[:12] not in collector.live_endpoint_ids
    assert current_state(samples, "col-web") == ["running"], "the other containers are still reported"


def test_engine_missing_logs_once_and_recovers(private_podman, caplog):
    private_podman.stop_service()
    collector = make_collector(str(private_podman.socket))
    collection = Collection([collector])
    caplog.set_level(logging.INFO, logger="gosight")
    try:
        first = collector.collect()
        points, _ = collection.run()
        private_podman.start_service()
        recovered = collector.collect()
    finally:
        collector.close()

    assert first == []
    assert (("gosight_collector_up", (("collector", "containers"),), 0.0)) in [point for _, point in points]
    assert collector.live_endpoint_ids is not None
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("no container engine found; container metrics start when one appears") == 1, messages
    assert "container engine connected" in messages, messages
    assert collector.up is True
    assert recovered == [], "the private engine has no containers"


def test_engine_restart_recovers(private_podman, caplog):
    private_podman.start_container("restart-a")
    collector = make_collector(private_podman.url)
    caplog.set_level(logging.INFO, logger="gosight")
    try:
        before = collector.collect()
        private_podman.stop_service()
        during = [collector.collect(), collector.collect()]
        up_during = collector.up
        live_during = collector.live_endpoint_ids
        private_podman.start_service()
        after = collector.collect()
    finally:
        collector.close()

    assert current_state(before, "restart-a") == ["running"]
    assert during == [[], []]
    assert up_during is False
    assert live_during is None, "an engine that does not answer lists nothing, so nothing is marked gone"
    warnings = [record for record in caplog.records
                if record.levelno == logging.WARNING and record.name.startswith("gosight")]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert current_state(after, "restart-a") == ["running"]
    assert collector.up is True


def test_stale_socket_reports_unreachable(private_podman, caplog):
    private_podman.stop_service()
    private_podman.socket.touch()
    collector = make_collector(str(private_podman.socket))
    caplog.set_level(logging.INFO, logger="gosight")
    try:
        results = [collector.collect() for _ in range(3)]
    finally:
        collector.close()

    assert results == [[], [], []]
    assert collector.up is False
    unreachable = [record for record in caplog.records
                   if record.getMessage().startswith("container engine unreachable")]
    assert len(unreachable) == 1, [record.getMessage() for record in caplog.records]


def test_collection_takes_little_time(collector):
    collector.collect()
    started = time.perf_counter()

    collector.collect()

    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"one collection of a few containers took {elapsed:.3f} s"


def _parse_podman_time(text: str) -> float:
    parsed = parse_time(text)
    assert parsed is not None, text
    return parsed
