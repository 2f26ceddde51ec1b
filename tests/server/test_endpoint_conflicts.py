"""Two agent ids claiming one host endpoint id: the registry's rules, on a fake clock.

The end-to-end case, with real server and agent processes, is in test_cloned_agents.py.
"""

from __future__ import annotations

from gosight.server.endpoints import (
    EndpointRegistry,
    IdentityConflict,
    split_endpoint_id,
)
from gosight.server.normalize import EndpointReport, MetricsDecoder
from gosight.store.meta import MetaStore
from gosight.store.series import SeriesRegistry
from tests.support.otlp import gauge, request_with

HOST = "host-0123456789ab"
AGENT_A = "a" * 32
AGENT_B = "b" * 32
AGENT_C = "c" * 32
NOW_NS = 1_000_000 * 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_000_000.0

    def __call__(self) -> float:
        return self.now_s


def make_registry(meta: MetaStore, clock: Clock) -> EndpointRegistry:
    return EndpointRegistry(meta, idle_after_s=30, offline_after_s=120, clock=clock)


def hello(registry: EndpointRegistry, agent_id: str, hostname: str, endpoint_id: str = HOST):
    return registry.hello(endpoint_id, agent_id, hostname, {"team": hostname}, {"os": "linux"})


def host_report(agent_id: str, hostname: str, endpoint_id: str = HOST) -> EndpointReport:
    return EndpointReport(endpoint_id=endpoint_id, hostname=hostname, agent_id=agent_id, job="gosight-agent",
                          instance=hostname, facts={}, labels={})


def container_report(agent_id: str, parent: str = HOST) -> EndpointReport:
    return EndpointReport(endpoint_id="ctr-00000000000a", hostname="clone", agent_id=agent_id, job="gosight-agent",
                          instance="clone", facts={}, labels={}, kind="container", parent=parent)


def test_second_agent_gets_own_endpoint(tmp_path):
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    first = hello(registry, AGENT_A, "clone-a")

    second = hello(registry, AGENT_B, "clone-b")

    split_id = split_endpoint_id(HOST, AGENT_B)
    assert first.endpoint_id == HOST
    assert first.conflicts == []
    assert second.endpoint_id == split_id
    assert second.conflicts == [IdentityConflict(
        endpoint_id=HOST, agent_id=AGENT_A, hostname="clone-a", other_agent_id=AGENT_B, other_hostname="clone-b",
        other_endpoint_id=split_id)]
    holder = registry.get(HOST)
    split = registry.get(split_id)
    assert (holder.agent_id, holder.hostname, holder.labels) == (AGENT_A, "clone-a", {"team": "clone-a"})
    assert (split.agent_id, split.hostname, split.labels) == (AGENT_B, "clone-b", {"team": "clone-b"})
    assert split.claimed_id == HOST
    assert split.connected is True


def test_split_id_is_short_and_stable():
    split_id = split_endpoint_id(HOST, AGENT_B)

    assert split_id == split_endpoint_id(HOST, AGENT_B)
    assert split_id != split_endpoint_id(HOST, AGENT_C)
    assert split_id.startswith(HOST + "-")
    assert len(split_id) == len(HOST) + 13


def test_conflict_reported_once(tmp_path):
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "clone-a")
    hello(registry, AGENT_B, "clone-b")
    report = host_report(AGENT_B, "clone-b")

    again = hello(registry, AGENT_B, "clone-b")
    data_conflicts = registry.file_data(report)
    holder_again = hello(registry, AGENT_A, "clone-a")

    assert again.endpoint_id == split_endpoint_id(HOST, AGENT_B)
    assert again.conflicts == []
    assert report.endpoint_id == split_endpoint_id(HOST, AGENT_B)
    assert data_conflicts == []
    assert holder_again.endpoint_id == HOST
    assert holder_again.conflicts == []


def test_data_before_hello_is_kept_apart(tmp_path):
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "clone-a")
    report = host_report(AGENT_B, "clone-b")

    conflicts = registry.file_data(report)
    later = hello(registry, AGENT_B, "clone-b")

    assert report.endpoint_id == split_endpoint_id(HOST, AGENT_B)
    assert [conflict.other_agent_id for conflict in conflicts] == [AGENT_B]
    assert later.endpoint_id == report.endpoint_id
    assert later.conflicts == []


def test_concurrent_first_data_is_kept_apart(tmp_path):
    """Neither agent sent hello yet and no data is committed: the first report already holds the endpoint."""
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    first = host_report(AGENT_A, "clone-a")
    second = host_report(AGENT_B, "clone-b")

    registry.file_data(first)
    conflicts = registry.file_data(second)

    assert first.endpoint_id == HOST
    assert second.endpoint_id == split_endpoint_id(HOST, AGENT_B)
    assert len(conflicts) == 1


def test_goodbye_lets_new_agent_take_over(tmp_path):
    """A reinstall: the old agent stopped cleanly, and a new agent id reports the same machine id."""
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "web1")
    registry.disconnected(HOST, goodbye=True)

    claim = hello(registry, AGENT_C, "web1")

    assert claim.endpoint_id == HOST
    assert claim.conflicts == []
    assert registry.get(HOST).agent_id == AGENT_C
    assert registry.conflict_group(HOST) == []


def test_offline_agent_is_taken_over(tmp_path):
    clock = Clock()
    registry = make_registry(MetaStore(tmp_path / "meta.db"), clock)
    hello(registry, AGENT_A, "web1")
    registry.disconnected(HOST, goodbye=False)
    clock.now_s += 121
    report = host_report(AGENT_C, "web1")

    conflicts = registry.file_data(report)

    assert report.endpoint_id == HOST
    assert conflicts == []
    assert registry.get(HOST).agent_id == AGENT_C


def test_recently_seen_agent_is_not_taken_over(tmp_path):
    """Without a goodbye the first agent counts as present until it is offline, even with its stream closed."""
    clock = Clock()
    registry = make_registry(MetaStore(tmp_path / "meta.db"), clock)
    hello(registry, AGENT_A, "clone-a")
    registry.disconnected(HOST, goodbye=False)
    clock.now_s += 100

    claim = hello(registry, AGENT_B, "clone-b")

    assert claim.endpoint_id == split_endpoint_id(HOST, AGENT_B)
    assert len(claim.conflicts) == 1
    assert registry.get(HOST).agent_id == AGENT_A


def test_split_survives_restart(tmp_path):
    clock = Clock()
    meta = MetaStore(tmp_path / "meta.db")
    registry = make_registry(meta, clock)
    hello(registry, AGENT_A, "clone-a")
    hello(registry, AGENT_B, "clone-b")
    registry.flush()
    meta.close()

    restarted = make_registry(MetaStore(tmp_path / "meta.db"), clock)
    # The clone reconnects first; the endpoint's own agent is not back yet.
    split_claim = hello(restarted, AGENT_B, "clone-b")
    holder_claim = hello(restarted, AGENT_A, "clone-a")

    assert split_claim.endpoint_id == split_endpoint_id(HOST, AGENT_B)
    assert split_claim.conflicts == []
    assert holder_claim.endpoint_id == HOST
    assert [conflict.other_agent_id for conflict in holder_claim.conflicts] == [AGENT_B]
    assert restarted.get(split_claim.endpoint_id).claimed_id == HOST


def test_third_clone_gets_endpoint_too(tmp_path):
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "clone-a")
    hello(registry, AGENT_B, "clone-b")

    third = hello(registry, AGENT_C, "clone-c")

    assert third.endpoint_id == split_endpoint_id(HOST, AGENT_C)
    assert [conflict.other_agent_id for conflict in third.conflicts] == [AGENT_C]
    group = registry.conflict_group(split_endpoint_id(HOST, AGENT_B))
    assert [member.agent_id for member in group] == [AGENT_A, AGENT_B, AGENT_C]
    assert [member.endpoint_id for member in group] == [HOST, split_endpoint_id(HOST, AGENT_B), third.endpoint_id]


def test_container_follows_split_host(tmp_path):
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "clone-a")
    hello(registry, AGENT_B, "clone-b")
    of_holder = container_report(AGENT_A)
    of_clone = container_report(AGENT_B)

    registry.file_data(of_holder)
    registry.file_data(of_clone)

    assert of_holder.parent == HOST
    assert of_clone.parent == split_endpoint_id(HOST, AGENT_B)
    assert of_clone.endpoint_id == "ctr-00000000000a"


def test_other_senders_are_not_filed(tmp_path):
    """OTLP senders other than the agent set no gosight.agent.id, so their endpoints are left alone."""
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "clone-a")
    report = host_report("", "collector")

    conflicts = registry.file_data(report)

    assert report.endpoint_id == HOST
    assert conflicts == []
    assert registry.get(HOST).agent_id == AGENT_A


def test_no_conflict_group_for_single_agent(tmp_path):
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "web1")

    assert registry.conflict_group(HOST) == []
    assert registry.conflict_group("host-unknown") == []


def test_decoder_labels_clone_series_with_split_id(tmp_path):
    registry = make_registry(MetaStore(tmp_path / "meta.db"), Clock())
    hello(registry, AGENT_A, "clone-a")
    series = SeriesRegistry()
    decoder = MetricsDecoder(series, max_future_ms=600_000, max_age_ms=86_400_000)
    resource = {"gosight.endpoint.id": HOST, "gosight.agent.id": AGENT_B, "host.name": "clone-b"}
    request = request_with(gauge("probe", [({}, 1.0, NOW_NS)]), resource=resource)

    result = decoder.decode(request, now_ms=NOW_NS // 1_000_000, file_endpoint=registry.file_data)

    labels = dict(series.labels(int(result.batch.series_ids[0])))
    split_id = split_endpoint_id(HOST, AGENT_B)
    assert labels["endpoint_id"] == split_id
    assert labels["host"] == "clone-b"
    assert list(result.endpoints) == [split_id]
    assert [conflict.other_endpoint_id for conflict in result.conflicts] == [split_id]
