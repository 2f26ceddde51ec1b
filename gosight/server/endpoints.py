"""Endpoints the server has heard from, and their presence.

Presence comes from the last time an endpoint was heard from, by heartbeat or by
data: online when that is recent, idle after `idle_after_s`, offline after
`offline_after_s`. An agent that says goodbye is offline at once. State lives in
memory and is saved to the metadata store by `flush`, which the server calls
periodically and on shutdown.

Containers are endpoints too, linked to their host by `parent`. Their presence comes
from their data alone. The host's agent lists its live containers in heartbeats; a
container of that host missing from the list is gone, until data newer than the
list arrives for it.

A host endpoint belongs to one agent id, its owner. The endpoint id comes from the
machine id, so machines cloned from one image with the same /etc/machine-id report
the same endpoint id. A second agent id may claim an endpoint while its owner is
present, which means connected, or heard from within `offline_after_s` without a
goodbye. The second agent's data then goes to an endpoint of its own,
`split_endpoint_id`, from then on. Each such pair is reported once per server
process, when both agents are present. The split is saved with the endpoint
(`claimed_id`), so it outlasts server restarts.

NOTE: clones made after the agent first ran also share its data directory, and so its
agent id. The server cannot distinguish them, so their data merges and each one's
control stream replaces the other's.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gosight.model import Endpoint
from gosight.server.normalize import EndpointReport
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.meta import MetaStore

log = logging.getLogger(__name__)

ONLINE = "online"
IDLE = "idle"
OFFLINE = "offline"
GONE = "gone"
CONTAINER = "container"

CONFLICT_HINT = (
    "if these are machines cloned from one image, give each clone its own machine id: delete /etc/machine-id, "
    "run systemd-machine-id-setup and restart the agent (or set agent.machine_id_file to a file holding an id "
    "of its own); if both agents run on one machine, stop one of them")


@dataclass(frozen=True)
class IdentityConflict:
    """Two agent ids that claimed one host endpoint id while both were present."""

    endpoint_id: str
    # The owner, which keeps `endpoint_id`.
    agent_id: str
    hostname: str
    # The agent whose data is stored under `other_endpoint_id` instead.
    other_agent_id: str
    other_hostname: str
    other_endpoint_id: str


@dataclass
class Claim:
    """The endpoint id an agent's data is stored under, and the conflicts to report now."""

    endpoint_id: str
    conflicts: list[IdentityConflict] = field(default_factory=list)


def split_endpoint_id(endpoint_id: str, agent_id: str) -> str:
    """Return the endpoint id for `agent_id`'s data while another agent owns `endpoint_id`.

    A digest rather than the agent id itself, because agent ids may be long or share
    a prefix, and the endpoint id should stay short in lists and URLs.
    """
    return f"{endpoint_id}-{hashlib.sha256(agent_id.encode()).hexdigest()[:12]}"


def report_conflict(conflict: IdentityConflict, metrics: ServerMetrics) -> None:
    """Log one warning for `conflict` and count it in gosight_endpoint_identity_conflicts_total."""
    metrics.endpoint_conflicts.inc()
    log.warning("two agents report the same endpoint id; storing their data apart", extra={"fields": {
        "endpoint_id": conflict.endpoint_id, "agent_id": conflict.agent_id, "hostname": conflict.hostname,
        "other_agent_id": conflict.other_agent_id, "other_hostname": conflict.other_hostname,
        "other_endpoint_id": conflict.other_endpoint_id, "hint": CONFLICT_HINT}})


class EndpointRegistry:
    def __init__(self, meta: MetaStore, *, idle_after_s: float, offline_after_s: float,
                 clock: Callable[[], float] = time.time):
        self.meta = meta
        self.idle_after_ms = int(idle_after_s * 1000)
        self.offline_after_ms = int(offline_after_s * 1000)
        self._clock = clock
        self._lock = threading.Lock()
        self._endpoints: dict[str, Endpoint] = {e.endpoint_id: e for e in meta.load_endpoints()}
        self._said_goodbye: set[str] = set(self._endpoints)
        self._dirty: set[str] = set()
        # (claimed endpoint id, agent id) -> the endpoint id that agent's data is stored under.
        self._split_of: dict[tuple[str, str], str] = {}
        # Claimed endpoint id -> the endpoint ids split off from it, oldest first.
        self._splits: dict[str, list[str]] = {}
        # Split endpoint ids whose conflict this process has reported.
        self._reported: set[str] = set()
        for endpoint in self._endpoints.values():
            if endpoint.claimed_id:
                self._remember_split(endpoint)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def hello(self, endpoint_id: str, agent_id: str, hostname: str, labels: dict[str, str],
              facts: dict[str, str]) -> Claim:
        """Register an agent's hello for `endpoint_id`; return the endpoint id its data is stored under."""
        now = self.now_ms()
        with self._lock:
            claim = self._claim(endpoint_id, agent_id, hostname, labels, now)
            endpoint = self._endpoints[claim.endpoint_id]
            endpoint.kind = "host"
            endpoint.agent_id = agent_id
            endpoint.hostname = hostname
            endpoint.labels = dict(labels)
            endpoint.facts.update(facts)
            endpoint.connected = True
            return claim

    def file_data(self, report: EndpointReport) -> list[IdentityConflict]:
        """Point `report` at the endpoint its data is stored under; return the conflicts to report now.

        Called by the decoder before series ids are assigned. Reports without an agent
        id, from other OTLP senders, stay as they are. A container keeps its own id, and
        its `parent` follows the host's agent to a split endpoint.
        """
        if not report.agent_id:
            return []
        now = self.now_ms()
        with self._lock:
            if report.kind == CONTAINER:
                report.parent = self._split_of.get((report.parent, report.agent_id), report.parent)
                return []
            claim = self._claim(report.endpoint_id, report.agent_id, report.hostname, report.labels, now)
            report.endpoint_id = claim.endpoint_id
            return claim.conflicts

    def _claim(self, endpoint_id: str, agent_id: str, hostname: str, labels: dict[str, str], now: int) -> Claim:
        """Choose the endpoint that `agent_id`'s data for `endpoint_id` goes to, and mark it heard from.

        The caller holds the lock. A missing endpoint is created here, before its data
        is committed, so a clone's request decoded meanwhile finds it owned.
        """
        filed_as = self._split_of.get((endpoint_id, agent_id))
        if filed_as is None:
            claimed = self._endpoints.get(endpoint_id)
            if claimed is None:
                claimed = Endpoint(endpoint_id=endpoint_id, hostname=hostname, agent_id=agent_id, labels=dict(labels),
                                   first_seen_ms=now)
                self._endpoints[endpoint_id] = claimed
            if claimed.agent_id and claimed.agent_id != agent_id and self._present(claimed, now):
                filed_as = self._split(claimed, agent_id, hostname, labels, now)
            else:
                # The owner itself, a new endpoint, or an endpoint whose owner is gone. In the last case,
                # usually a fresh install on the same machine, the claiming agent becomes the owner.
                claimed.agent_id = agent_id
                claimed.hostname = hostname or claimed.hostname
                filed_as = endpoint_id
        endpoint = self._endpoints[filed_as]
        endpoint.last_seen_ms = now
        self._said_goodbye.discard(filed_as)
        self._dirty.add(filed_as)
        return Claim(filed_as, self._conflicts_due(endpoint_id, now))

    def _split(self, claimed: Endpoint, agent_id: str, hostname: str, labels: dict[str, str], now: int) -> str:
        split_id = split_endpoint_id(claimed.endpoint_id, agent_id)
        endpoint = self._endpoints.get(split_id)
        if endpoint is None:
            endpoint = Endpoint(endpoint_id=split_id, hostname=hostname, agent_id=agent_id, labels=dict(labels),
                                first_seen_ms=now)
            self._endpoints[split_id] = endpoint
        endpoint.claimed_id = claimed.endpoint_id
        self._remember_split(endpoint)
        return split_id

    def _remember_split(self, endpoint: Endpoint) -> None:
        self._split_of[(endpoint.claimed_id, endpoint.agent_id)] = endpoint.endpoint_id
        splits = self._splits.setdefault(endpoint.claimed_id, [])
        if endpoint.endpoint_id not in splits:
            splits.append(endpoint.endpoint_id)

    def _conflicts_due(self, endpoint_id: str, now: int) -> list[IdentityConflict]:
        """Return the conflicts over `endpoint_id` not reported yet, among those whose two agents are present."""
        claimed = self._endpoints.get(endpoint_id)
        if claimed is None or not self._present(claimed, now):
            return []
        due = []
        for split_id in self._splits.get(endpoint_id, ()):
            split = self._endpoints[split_id]
            if split_id in self._reported or split.agent_id == claimed.agent_id or not self._present(split, now):
                continue
            self._reported.add(split_id)
            due.append(IdentityConflict(endpoint_id=endpoint_id, agent_id=claimed.agent_id, hostname=claimed.hostname,
                                        other_agent_id=split.agent_id, other_hostname=split.hostname,
                                        other_endpoint_id=split_id))
        return due

    def _present(self, endpoint: Endpoint, now: int) -> bool:
        return endpoint.connected or self.status(endpoint, now) in (ONLINE, IDLE)

    def heartbeat(self, endpoint_id: str, facts: dict[str, str] | None = None) -> None:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None:
                return
            endpoint.last_seen_ms = self.now_ms()
            if facts:
                endpoint.facts.update(facts)
            self._dirty.add(endpoint_id)

    def disconnected(self, endpoint_id: str, goodbye: bool) -> None:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None:
                return
            endpoint.connected = False
            if goodbye:
                self._said_goodbye.add(endpoint_id)
            self._dirty.add(endpoint_id)

    def note_data(self, reports: dict[str, EndpointReport]) -> None:
        now = self.now_ms()
        with self._lock:
            for endpoint_id, report in reports.items():
                endpoint = self._endpoints.get(endpoint_id)
                if endpoint is None:
                    endpoint = Endpoint(endpoint_id=endpoint_id, first_seen_ms=now, hostname=report.hostname,
                                        agent_id=report.agent_id, labels=dict(report.labels))
                    self._endpoints[endpoint_id] = endpoint
                endpoint.facts.update(report.facts)
                if report.job:
                    endpoint.facts.setdefault("job", report.job)
                if report.kind:
                    endpoint.kind = report.kind
                if report.parent:
                    endpoint.parent = report.parent
                # Data stamped before the removal was listed is a late delivery from the
                # agent's spool, not a sign that the container is back.
                if endpoint.gone_ms and report.last_data_ms > endpoint.gone_ms:
                    endpoint.gone_ms = 0
                endpoint.last_seen_ms = now
                endpoint.last_data_ms = now
                self._said_goodbye.discard(endpoint_id)
                self._dirty.add(endpoint_id)

    def containers_listed(self, host_endpoint_id: str, endpoint_ids: list[str], time_ms: int) -> list[str]:
        """Mark the host's container endpoints missing from `endpoint_ids` as gone at `time_ms`.

        `time_ms` is the agent's clock when it built the list. Return the endpoint ids
        newly marked gone.
        """
        listed = set(endpoint_ids)
        removed = []
        with self._lock:
            for endpoint in self._endpoints.values():
                if endpoint.kind != CONTAINER or endpoint.parent != host_endpoint_id:
                    continue
                if endpoint.endpoint_id in listed:
                    if endpoint.gone_ms:
                        endpoint.gone_ms = 0
                        self._dirty.add(endpoint.endpoint_id)
                elif not endpoint.gone_ms:
                    endpoint.gone_ms = time_ms
                    self._dirty.add(endpoint.endpoint_id)
                    removed.append(endpoint.endpoint_id)
        return removed

    def status(self, endpoint: Endpoint, now_ms: int | None = None) -> str:
        now_ms = self.now_ms() if now_ms is None else now_ms
        if endpoint.gone_ms:
            return GONE
        if endpoint.endpoint_id in self._said_goodbye and not endpoint.connected:
            return OFFLINE
        age = now_ms - endpoint.last_seen_ms
        if age < self.idle_after_ms:
            return ONLINE
        if age < self.offline_after_ms:
            return IDLE
        return OFFLINE

    def get(self, endpoint_id: str) -> Endpoint | None:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            return _copy(endpoint) if endpoint else None

    def all(self) -> list[Endpoint]:
        with self._lock:
            return [_copy(endpoint) for endpoint in self._endpoints.values()]

    def conflict_group(self, endpoint_id: str) -> list[Endpoint]:
        """Return the endpoints of every agent that claimed the same id as `endpoint_id`'s agent.

        The owner's endpoint comes first, then the ones split off from it, oldest first.
        The list is empty when no agent ever had to be split off.
        """
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None:
                return []
            claimed_id = endpoint.claimed_id or endpoint_id
            splits = self._splits.get(claimed_id)
            if not splits:
                return []
            return [_copy(self._endpoints[member]) for member in (claimed_id, *splits) if member in self._endpoints]

    def counts(self) -> dict[str, int]:
        now = self.now_ms()
        result = {ONLINE: 0, IDLE: 0, OFFLINE: 0, GONE: 0}
        for endpoint in self.all():
            result[self.status(endpoint, now)] += 1
        return result

    def flush(self) -> None:
        with self._lock:
            dirty = [_copy(self._endpoints[endpoint_id]) for endpoint_id in self._dirty]
            self._dirty.clear()
        self.meta.save_endpoints(dirty)


def _copy(endpoint: Endpoint) -> Endpoint:
    return Endpoint(endpoint_id=endpoint.endpoint_id, kind=endpoint.kind, hostname=endpoint.hostname,
                    agent_id=endpoint.agent_id, labels=dict(endpoint.labels), facts=dict(endpoint.facts),
                    first_seen_ms=endpoint.first_seen_ms, last_seen_ms=endpoint.last_seen_ms,
                    last_data_ms=endpoint.last_data_ms, connected=endpoint.connected, parent=endpoint.parent,
                    gone_ms=endpoint.gone_ms, claimed_id=endpoint.claimed_id)
