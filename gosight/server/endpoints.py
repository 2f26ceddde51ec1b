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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gosight.model import Endpoint
from gosight.server.normalize import EndpointReport
from gosight.store.meta import MetaStore

ONLINE = "online"
IDLE = "idle"
OFFLINE = "offline"
GONE = "gone"
CONTAINER = "container"


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

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def hello(self, endpoint_id: str, agent_id: str, hostname: str, labels: dict[str, str],
              facts: dict[str, str]) -> Endpoint:
        now = self.now_ms()
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None:
                endpoint = Endpoint(endpoint_id=endpoint_id, first_seen_ms=now)
                self._endpoints[endpoint_id] = endpoint
            endpoint.kind = "host"
            endpoint.agent_id = agent_id
            endpoint.hostname = hostname
            endpoint.labels = dict(labels)
            endpoint.facts.update(facts)
            endpoint.last_seen_ms = now
            endpoint.connected = True
            self._said_goodbye.discard(endpoint_id)
            self._dirty.add(endpoint_id)
            return endpoint

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
                    gone_ms=endpoint.gone_ms)
