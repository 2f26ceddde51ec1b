"""The agent's main loop: collect on a fixed schedule, spool, export, stay connected."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from gosight import __version__
from gosight.agent.catalog import CATALOG
from gosight.agent.collectors import build_collectors
from gosight.agent.collectors.base import Collector, ResourceKey
from gosight.agent.identity import Identity, IdentityError, load_identity
from gosight.agent.spool import Spool
from gosight.agent.transport import Transport
from gosight.config import Config, DataDirError, ensure_data_dir
from gosight.logconfig import Throttle
from gosight.model import HOST_ENDPOINT_ATTRIBUTE
from gosight.wire import agent_pb2
from gosight.wire.otlp import Point, RequestEncoder, ResourceGroup, resource_attributes

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 5.0

# A point with the key of the resource it belongs to.
KeyedPoint = tuple[ResourceKey, Point]


class AgentStartupError(Exception):
    """The agent cannot start; the message says what to change."""


class Collection:
    """Runs the collectors once per interval and turns their samples into points.

    A collector that raises, or sets `up` to False, is reported with
    gosight_collector_up 0; a collector that raises also gets a throttled log line.
    The others go on. Series that vanished since the previous run are returned as
    stale, so the server marks them ended. Points are keyed by their resource: the
    empty key is the agent's host, other keys come from samples that name a resource.
    """

    def __init__(self, collectors: list[Collector]):
        self.collectors = collectors
        self.runs = 0
        self._previous: dict[tuple[ResourceKey, str, tuple], KeyedPoint] = {}
        self._throttle = Throttle(300.0)
        self._failing: set[str] = set()

    def run(self) -> tuple[list[KeyedPoint], list[KeyedPoint]]:
        self.runs += 1
        # Numbered runs let anyone check downstream that each collection arrived exactly once.
        points: list[KeyedPoint] = [((), ("gosight_agent_collections_total", (), float(self.runs)))]
        for collector in self.collectors:
            started = time.perf_counter()
            try:
                collected = [
                    (sample.resource, (sample.name, tuple(sorted(sample.labels.items())), float(sample.value)))
                    for sample in collector.collect()
                ]
            except Exception as error:  # noqa: BLE001 - one broken collector must not stop the others
                self._report_failure(collector.name, error)
                up = 0.0
            else:
                points.extend(collected)
                if collector.name in self._failing:
                    self._failing.discard(collector.name)
                    self._throttle.reset(collector.name)
                    log.info("collector recovered", extra={"fields": {"collector": collector.name}})
                up = 1.0 if getattr(collector, "up", True) else 0.0
            labels = (("collector", collector.name),)
            points.append(((), ("gosight_collector_up", labels, up)))
            points.append(((), ("gosight_collector_duration_seconds", labels, time.perf_counter() - started)))

        current = {(resource, name, labels): (resource, (name, labels, value))
                   for resource, (name, labels, value) in points}
        stale = [point for key, point in self._previous.items() if key not in current]
        self._previous = current
        return points, stale

    def _report_failure(self, name: str, error: Exception) -> None:
        self._failing.add(name)
        suppressed = self._throttle.allow(name)
        if suppressed is not None:
            log.error("collector failed", extra={"fields": {
                "collector": name, "error": f"{type(error).__name__}: {error}", "suppressed": suppressed}})


class Agent:
    def __init__(self, config: Config, identity: Identity, spool: Spool):
        self.config = config
        self.identity = identity
        self.spool = spool
        self.interval_s = config["agent.interval_s"]
        self.max_samples = config["agent.batch.max_samples"]
        self.collection = Collection(build_collectors(config))
        self.host_resource = identity.resource()
        self.resource = resource_attributes(self.host_resource)
        self._resources: dict[ResourceKey, list[KeyValue]] = {(): self.resource}
        # One encoder per request of a collection split into several, keyed by its first point.
        self._encoders: dict[int, RequestEncoder] = {}
        self.transport = Transport(config, identity, spool,
                                   [collector.name for collector in self.collection.collectors], self.heartbeat)
        self.stop_event = threading.Event()

    def heartbeat(self) -> agent_pb2.Heartbeat:
        """Build a heartbeat; called on the transport thread."""
        heartbeat = agent_pb2.Heartbeat(
            time_unix_ms=int(time.time() * 1000), spool_batches=self.spool.batches, spool_bytes=self.spool.bytes,
            dropped_batches=self.spool.dropped_batches, sent_batches=self.transport.sent_batches)
        live = self._live_containers()
        if live is not None:
            heartbeat.containers.endpoint_ids.extend(live)
        return heartbeat

    def _live_containers(self) -> list[str] | None:
        """Return the container endpoints of the latest collection, or None while no engine is reachable."""
        for collector in self.collection.collectors:
            endpoint_ids = getattr(collector, "live_endpoint_ids", None)
            if endpoint_ids is not None:
                return list(endpoint_ids)
        return None

    def collect_once(self) -> int:
        """Collect, encode and spool one round; return the number of points spooled."""
        time_ms = int(time.time() * 1000)
        points, stale = self.collection.run()
        # The spool's own state goes out with the data, so losses in an outage can be
        # queried and alerted on once the server hears from the agent again.
        points += [((), ("gosight_agent_spool_dropped_batches_total", (), float(self.spool.dropped_batches))),
                   ((), ("gosight_agent_spool_batches", (), float(self.spool.batches))),
                   ((), ("gosight_agent_spool_bytes", (), float(self.spool.bytes)))]
        self._prune_resources(points, stale)
        for start in range(0, max(len(points), 1), self.max_samples):
            part = points[start:start + self.max_samples]
            part_stale = stale if start == 0 else []
            encoder = self._encoders.setdefault(start, RequestEncoder(__version__, CATALOG))
            request = encoder.encode(self._groups(part, part_stale), time_ms, self.identity.boot_time_ms)
            self.spool.append(request.SerializeToString())
        return len(points) + len(stale)

    def _groups(self, points: list[KeyedPoint], stale: list[KeyedPoint]) -> list[ResourceGroup]:
        """Group points by resource, the host first, so each resource is encoded once per request."""
        by_resource: dict[ResourceKey, tuple[list[Point], list[Point]]] = {(): ([], [])}
        for resource, point in points:
            by_resource.setdefault(resource, ([], []))[0].append(point)
        for resource, point in stale:
            by_resource.setdefault(resource, ([], []))[1].append(point)
        return [ResourceGroup(self._resource(resource), current, ended)
                for resource, (current, ended) in by_resource.items() if current or ended or not resource]

    def _resource(self, key: ResourceKey) -> list[KeyValue]:
        """Return the encoded attributes of a resource: the host's, replaced by the key's, linked to the host."""
        attributes = self._resources.get(key)
        if attributes is None:
            merged = dict(self.host_resource)
            merged.update(key)
            merged.setdefault(HOST_ENDPOINT_ATTRIBUTE, self.identity.endpoint_id)
            attributes = self._resources[key] = resource_attributes(merged)
        return attributes

    def _prune_resources(self, points: list[KeyedPoint], stale: list[KeyedPoint]) -> None:
        """Forget the attributes of resources that are gone, such as removed containers."""
        if len(self._resources) == 1:
            return
        live = {resource for resource, _ in points}
        live.update(resource for resource, _ in stale)
        for key in [key for key in self._resources if key and key not in live]:
            del self._resources[key]

    def run(self) -> None:
        self.transport.start()
        log.info("agent started", extra={"fields": {
            "agent_id": self.identity.agent_id, "endpoint_id": self.identity.endpoint_id,
            "machine_id_file": self.identity.machine_id_file, "server": self.config["agent.server"],
            "interval_s": self.interval_s,
            "collectors": ",".join(collector.name for collector in self.collection.collectors)}})
        next_run = time.monotonic()
        while not self.stop_event.is_set():
            try:
                self.collect_once()
            except OSError as error:
                log.error("spooling a collection failed", extra={"fields": {"error": str(error)}})
            next_run += self.interval_s
            now = time.monotonic()
            if next_run < now:
                # A collection overran the interval: skip the missed runs instead of bunching them.
                next_run = now + self.interval_s - ((now - next_run) % self.interval_s)
            self.stop_event.wait(next_run - now)

        log.info("agent stopping", extra={"fields": {"spooled": self.spool.batches}})
        for collector in self.collection.collectors:
            # Collectors with connections or threads, such as the containers collector, close them.
            close = getattr(collector, "close", None)
            if close is not None:
                close()
        self.transport.stop(FLUSH_TIMEOUT_S)
        self.spool.sync()
        log.info("agent stopped", extra={"fields": {"unsent_batches": self.spool.batches}})


def build_agent(config: Config) -> Agent:
    """Create an agent with its identity and spool in config.data_dir."""
    data_dir = _ensure_dir(config.data_dir)
    try:
        identity = load_identity(data_dir, config["agent.hostname"], config["agent.labels"],
                                 config["agent.machine_id_file"])
    except IdentityError as error:
        raise AgentStartupError(str(error)) from None
    spool = Spool(data_dir / "spool", config["agent.spool.max_bytes"], identity.agent_id)
    log.info("agent data directory", extra={"fields": {"data_dir": str(data_dir)}})
    return Agent(config, identity, spool)


def run_agent(config: Config) -> int:
    agent = build_agent(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop_event.set())
    agent.run()
    return 0


def _ensure_dir(path: Path) -> Path:
    try:
        return ensure_data_dir(path)
    except DataDirError as error:
        raise AgentStartupError(str(error)) from None
