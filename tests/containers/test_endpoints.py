"""Container endpoints on the server: resource identity, the registry and the metadata store."""

from __future__ import annotations

import sqlite3

from gosight.server.endpoints import GONE, ONLINE, EndpointRegistry
from gosight.server.normalize import EndpointReport, resource_identity
from gosight.store.meta import _MIGRATIONS, MetaStore

HOST = "host-aaaaaaaaaaaa"
OTHER_HOST = "host-bbbbbbbbbbbb"


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


def container_report(endpoint_id: str, parent: str = HOST, data_ms: int = 1_000_000) -> EndpointReport:
    return EndpointReport(endpoint_id=endpoint_id, hostname="web1", agent_id="agent-1", job="gosight-agent",
                          instance="web1", facts={"container_name": endpoint_id}, labels={}, last_data_ms=data_ms,
                          kind="container", parent=parent)


def make_registry(tmp_path, clock: Clock | None = None) -> EndpointRegistry:
    return EndpointRegistry(MetaStore(tmp_path / "meta.db"), idle_after_s=30, offline_after_s=120,
                            clock=clock or Clock())


def test_resource_identity_of_container():
    attributes = {
        "service.name": "gosight-agent", "service.instance.id": "web1", "host.name": "web1",
        "gosight.endpoint.id": "ctr-0123456789ab", "gosight.endpoint.kind": "container",
        "gosight.host.endpoint.id": HOST, "container.id": "0123456789ab" * 5, "container.name": "shop-db",
        "container.image.name": "postgres:16", "container.runtime": "docker", "gosight.label.env": "prod",
    }

    identity, report = resource_identity(attributes)

    assert identity == {"endpoint_id": "ctr-0123456789ab", "host": "web1", "instance": "web1",
                        "job": "gosight-agent", "env": "prod"}
    assert report.kind == "container"
    assert report.parent == HOST
    assert report.facts["container_name"] == "shop-db"
    assert report.facts["image"] == "postgres:16"
    assert report.facts["runtime"] == "docker"


def test_resource_identity_of_host_names_no_kind():
    _, report = resource_identity({"host.name": "web1", "gosight.endpoint.id": HOST})

    assert (report.kind, report.parent) == ("", "")


def test_data_creates_linked_container(tmp_path):
    registry = make_registry(tmp_path)

    registry.note_data({"ctr-1": container_report("ctr-1")})

    endpoint = registry.get("ctr-1")
    assert (endpoint.kind, endpoint.parent, endpoint.hostname) == ("container", HOST, "web1")
    assert registry.status(endpoint) == ONLINE


def test_unlisted_container_is_gone(tmp_path):
    registry = make_registry(tmp_path)
    registry.note_data({"ctr-1": container_report("ctr-1"), "ctr-2": container_report("ctr-2"),
                        "ctr-9": container_report("ctr-9", parent=OTHER_HOST)})

    removed = registry.containers_listed(HOST, ["ctr-1"], 2_000_000)

    assert removed == ["ctr-2"]
    assert registry.status(registry.get("ctr-2")) == GONE
    assert registry.get("ctr-2").gone_ms == 2_000_000
    assert registry.status(registry.get("ctr-1")) == ONLINE
    assert registry.status(registry.get("ctr-9")) == ONLINE, "another host's container is not touched"
    assert registry.counts()[GONE] == 1


def test_listing_again_does_not_move_removal_time(tmp_path):
    registry = make_registry(tmp_path)
    registry.note_data({"ctr-2": container_report("ctr-2")})
    registry.containers_listed(HOST, [], 2_000_000)

    removed = registry.containers_listed(HOST, [], 3_000_000)

    assert removed == []
    assert registry.get("ctr-2").gone_ms == 2_000_000


def test_late_data_does_not_revive_gone_container(tmp_path):
    registry = make_registry(tmp_path)
    registry.note_data({"ctr-2": container_report("ctr-2", data_ms=1_000_000)})
    registry.containers_listed(HOST, [], 2_000_000)

    registry.note_data({"ctr-2": container_report("ctr-2", data_ms=1_900_000)})

    assert registry.status(registry.get("ctr-2")) == GONE


def test_newer_data_revives_container(tmp_path):
    registry = make_registry(tmp_path)
    registry.note_data({"ctr-2": container_report("ctr-2", data_ms=1_000_000)})
    registry.containers_listed(HOST, [], 2_000_000)

    registry.note_data({"ctr-2": container_report("ctr-2", data_ms=2_100_000)})

    assert registry.status(registry.get("ctr-2")) == ONLINE
    assert registry.get("ctr-2").gone_ms == 0


def test_relisted_container_is_back(tmp_path):
    registry = make_registry(tmp_path)
    registry.note_data({"ctr-2": container_report("ctr-2")})
    registry.containers_listed(HOST, [], 2_000_000)

    registry.containers_listed(HOST, ["ctr-2"], 3_000_000)

    assert registry.get("ctr-2").gone_ms == 0


def test_links_survive_restart(tmp_path):
    registry = make_registry(tmp_path)
    registry.note_data({"ctr-1": container_report("ctr-1"), "ctr-2": container_report("ctr-2")})
    registry.containers_listed(HOST, ["ctr-1"], 2_000_000)
    registry.flush()
    registry.meta.close()

    reopened = make_registry(tmp_path)

    assert reopened.get("ctr-1").parent == HOST
    assert reopened.get("ctr-1").kind == "container"
    assert reopened.get("ctr-2").gone_ms == 2_000_000
    assert reopened.status(reopened.get("ctr-2")) == GONE
    reopened.meta.close()


def test_metadata_from_before_containers_is_migrated(tmp_path):
    path = tmp_path / "meta.db"
    connection = sqlite3.connect(path)
    connection.executescript(_MIGRATIONS[0])
    connection.execute("INSERT INTO endpoints VALUES ('host-1', 'host', 'web1', 'a', '{}', '{}', 1, 2, 3)")
    connection.execute("PRAGMA user_version=1")
    connection.commit()
    connection.close()

    store = MetaStore(path)
    try:
        endpoints = store.load_endpoints()
    finally:
        store.close()

    assert [(e.endpoint_id, e.parent, e.gone_ms) for e in endpoints] == [("host-1", "", 0)]
