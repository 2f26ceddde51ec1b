"""Container metrics from Docker or Podman, through the Docker Engine API.

Every collection lists all containers (one request), inspects the new ones and those
whose state changed or that have a health check, and requests one-shot statistics of
the running and paused ones, a few requests at a time. Each container becomes an
endpoint of its own (ctr-<12-character id>) whose series carry cAdvisor's names and
labels.

The engine may be missing, stop or restart at any time. The collector then returns
nothing, sets `up` to False (the runner reports gosight_collector_up 0), logs once,
and connects again at the next collection. The docker package is imported only once
an engine address is known, so an agent on a host without containers pays nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gosight.agent.collectors.base import Sample
from gosight.agent.collectors.container_files import read_host_view
from gosight.agent.collectors.container_samples import (
    STATS_STATES,
    ContainerInfo,
    HostView,
    describe,
    info_samples,
    resource_key,
    series_labels,
    stats_samples,
)
from gosight.config import Config
from gosight.logconfig import Throttle

log = logging.getLogger(__name__)

DOCKER_SOCKET = "/var/run/docker.sock"
PODMAN_SOCKET = "/run/podman/podman.sock"

# Requests to the engine in flight at once; statistics of many containers then take
# a fraction of the time one after the other would.
MAX_PARALLEL_REQUESTS = 4
# Inspect replies are reused for this long unless the container's state changes. A
# restart keeps the state "running" but changes the start time and the pid.
INSPECT_MAX_AGE_S = 60.0
# The first Engine API version with one-shot statistics. Older engines take one extra
# second per container, because they compute a CPU delta that the collector ignores.
ONE_SHOT_API_VERSION = (1, 41)


def candidate_addresses(setting: str, env: Mapping[str, str]) -> list[str]:
    """Return the engine addresses to try, in order: the setting, DOCKER_HOST, then the usual sockets."""
    if setting:
        return [setting]
    if env.get("DOCKER_HOST"):
        return [env["DOCKER_HOST"]]
    sockets = [DOCKER_SOCKET, PODMAN_SOCKET]
    if env.get("XDG_RUNTIME_DIR"):
        sockets.append(os.path.join(env["XDG_RUNTIME_DIR"], "podman", "podman.sock"))
    return sockets


def find_engine(setting: str, env: Mapping[str, str]) -> str | None:
    """Return the base URL of the engine to use, or None when no socket exists at the usual places."""
    for address in candidate_addresses(setting, env):
        if not address.startswith("/"):
            return address
        if os.path.exists(address):
            return "unix://" + address
    return None


def probe_socket(base_url: str, timeout_s: float) -> None:
    """Connect to a unix:// engine socket and close it; raise OSError when nothing listens.

    The docker package leaves a socket open when its own connection attempt fails, so
    the collector checks first. The engine can still stop between the two connections.
    """
    if not base_url.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        probe.connect(base_url[len("unix://"):])


@dataclass
class _Inspected:
    reply: dict[str, Any]
    state: str
    fetched_s: float


@dataclass
class _Reading:
    """The replies about one container; `gone` when the engine no longer has the container."""

    info: ContainerInfo
    inspect: _Inspected | None
    stats: dict[str, Any] | None = None
    host: HostView | None = None
    gone: bool = False
    error: str = ""


class ContainersCollector:
    name = "containers"

    def __init__(self, config: Config, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._setting = config["agent.containers.socket"]
        self._label_names = tuple(config["agent.containers.labels"])
        self._timeout_s = config["agent.containers.timeout_s"]
        self._env = os.environ if env is None else env
        self._clock = clock
        self._engine: _Engine | None = None
        self._inspected: dict[str, _Inspected] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._throttle = Throttle(300.0)
        self._reported_absent = False
        # Read by the runner: False while the engine is unreachable.
        self.up = True
        # Read by the agent's heartbeat on another thread: endpoint ids of the containers
        # of the latest successful collection, or None while the engine is unreachable.
        self.live_endpoint_ids: tuple[str, ...] | None = None

    @property
    def api_calls(self) -> int:
        """Requests sent to any engine by this process, across reconnections."""
        return _CALLS.value

    def collect(self) -> list[Sample]:
        engine = self._engine or self._connect()
        if engine is None:
            return []
        try:
            probe_socket(engine.base_url, self._timeout_s)
            listed = engine.call(engine.client.containers, all=True)
        except (OSError, *engine.errors) as error:
            self._lost(engine, error)
            return []

        readings = self._read_all(engine, listed)
        samples: list[Sample] = []
        live = []
        for reading in readings:
            if reading.gone:
                continue
            live.append(reading.info.endpoint_id)
            samples.extend(self._samples(engine, reading))
        self._remember_inspected(readings)
        self.live_endpoint_ids = tuple(live)
        return samples

    def close(self) -> None:
        """Stop the request threads and close the connection; collect may be called again afterwards."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    # Connection

    def _connect(self) -> _Engine | None:
        base_url = find_engine(self._setting, self._env)
        if base_url is None:
            self._mark_down()
            if not self._reported_absent:
                self._reported_absent = True
                log.info("no container engine found; container metrics start when one appears", extra={
                    "fields": {"tried": ",".join(candidate_addresses(self._setting, self._env))}})
            return None
        try:
            probe_socket(base_url, self._timeout_s)
            engine = _Engine.open(base_url, self._timeout_s)
        except (OSError, *_Engine.connect_errors()) as error:
            self._mark_down()
            self._report_unreachable(base_url, error)
            return None
        self._engine = engine
        self.up = True
        self._reported_absent = False
        self._throttle.reset("engine")
        log.info("container engine connected", extra={"fields": {
            "address": base_url, "engine": engine.runtime, "api_version": engine.api_version}})
        return engine

    def _lost(self, engine: _Engine, error: Exception) -> None:
        engine.close()
        self._engine = None
        self._inspected.clear()
        self._mark_down()
        self._report_unreachable(engine.base_url, error)

    def _mark_down(self) -> None:
        self.up = False
        self.live_endpoint_ids = None

    def _report_unreachable(self, base_url: str, error: Exception) -> None:
        suppressed = self._throttle.allow("engine")
        if suppressed is not None:
            log.warning("container engine unreachable; retrying at every collection", extra={"fields": {
                "address": base_url, "error": _describe_error(error), "suppressed": suppressed}})

    # Requests per container

    def _read_all(self, engine: _Engine, listed: list[dict[str, Any]]) -> list[_Reading]:
        now = self._clock()
        # Set when the engine stops responding, so the remaining containers do not each
        # wait out the request timeout.
        engine_failed = threading.Event()
        jobs = []
        for entry in listed:
            cached = self._inspected.get(entry["Id"])
            state = str(entry.get("State", "")).lower()
            fresh = cached is not None and cached.state == state and now - cached.fetched_s < INSPECT_MAX_AGE_S
            if fresh and not _has_health_check(cached.reply):
                jobs.append((entry, cached))
            else:
                jobs.append((entry, None))
        if len(jobs) <= 1:
            return [self._read_one(engine, entry, cached, now, engine_failed) for entry, cached in jobs]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_PARALLEL_REQUESTS, thread_name_prefix="gosight-containers")
        futures = [self._pool.submit(self._read_one, engine, entry, cached, now, engine_failed)
                   for entry, cached in jobs]
        return [future.result() for future in futures]

    def _read_one(self, engine: _Engine, entry: dict[str, Any], cached: _Inspected | None, now: float,
                  engine_failed: threading.Event) -> _Reading:
        """Inspect (unless cached) and read statistics of one container; engine errors go into the reading."""
        container_id = entry["Id"]
        inspected = cached
        if inspected is None:
            if engine_failed.is_set():
                return _Reading(describe(entry, None), None, error="inspect: skipped, the engine stopped responding")
            try:
                reply = engine.call(engine.client.inspect_container, container_id)
            except engine.not_found:
                return _Reading(describe(entry, None), None, gone=True)
            except engine.errors as error:
                if isinstance(error, engine.connection_errors):
                    engine_failed.set()
                return _Reading(describe(entry, None), None, error=f"inspect: {_describe_error(error)}")
            inspected = _Inspected(reply, str(entry.get("State", "")).lower(), now)
        info = describe(entry, inspected.reply)
        reading = _Reading(info, inspected)
        if info.state not in STATS_STATES:
            return reading
        if engine_failed.is_set():
            reading.error = "stats: skipped, the engine stopped responding"
            return reading
        try:
            reading.stats = engine.stats(container_id)
        except engine.not_found:
            reading.gone = True
            return reading
        except engine.empty_reply:
            # Podman answers with an empty body for a container that stopped since the
            # list; its state series come with the next collection.
            return reading
        except engine.errors as error:
            if isinstance(error, engine.connection_errors):
                engine_failed.set()
            reading.error = f"stats: {_describe_error(error)}"
            return reading
        if engine.local:
            reading.host = read_host_view(info.pid, container_id)
            if reading.host is None and info.pid:
                # The pid is not this container's any more: it restarted. Inspect it again next time.
                reading.inspect = None
        return reading

    def _samples(self, engine: _Engine, reading: _Reading) -> list[Sample]:
        info = reading.info
        labels = series_labels(info, self._label_names)
        resource = resource_key(info, engine.runtime)
        if reading.error:
            suppressed = self._throttle.allow(("container", reading.error.partition(":")[0]))
            if suppressed is not None:
                log.warning("reading a container failed; its series skip this collection", extra={"fields": {
                    "container_id": info.container_id[:12], "name": info.name, "error": reading.error,
                    "suppressed": suppressed}})
        if reading.inspect is None and reading.error.startswith("inspect"):
            # Without the inspect reply the limit, health and start time are unknown,
            # and a value of 0 would read as a fact.
            return [sample for sample in info_samples(info, labels, resource) if sample.name == "container_state"]
        samples = list(info_samples(info, labels, resource))
        if reading.stats is not None:
            samples.extend(stats_samples(reading.stats, reading.host, info, labels, resource))
        return samples

    def _remember_inspected(self, readings: list[_Reading]) -> None:
        self._inspected = {reading.info.container_id: reading.inspect
                           for reading in readings if reading.inspect is not None and not reading.gone}


class _CallCounter:
    """A thread-safe count of requests sent to engines."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, count: int = 1) -> None:
        with self._lock:
            self.value += count


_CALLS = _CallCounter()


class _Engine:
    """One connection to the engine, through the docker package's low-level client."""

    def __init__(self, client: Any, base_url: str, runtime: str, api_version: str) -> None:
        import docker.errors  # noqa: PLC0415 - imported only once an engine exists
        import requests.exceptions  # noqa: PLC0415

        self.client = client
        self.base_url = base_url
        self.runtime = runtime
        self.api_version = api_version
        self.local = base_url.startswith("unix://")
        self.errors = (docker.errors.DockerException, requests.exceptions.RequestException)
        self.connection_errors = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
        self.not_found = docker.errors.NotFound
        self.empty_reply = requests.exceptions.JSONDecodeError
        self._one_shot = _version_tuple(api_version) >= ONE_SHOT_API_VERSION

    @staticmethod
    def connect_errors() -> tuple[type[Exception], ...]:
        import docker.errors  # noqa: PLC0415
        import requests.exceptions  # noqa: PLC0415

        return docker.errors.DockerException, requests.exceptions.RequestException

    @classmethod
    def open(cls, base_url: str, timeout_s: float) -> _Engine:
        """Connect and ask the engine for its version; raise the docker package's errors on failure."""
        import docker  # noqa: PLC0415

        # version=None requests the engine's API version: one request.
        client = docker.APIClient(base_url=base_url, version=None, timeout=timeout_s)
        if base_url.startswith("unix://"):
            # Proxy variables do not apply to a socket, and reading them from the
            # environment took about a tenth of the collector's CPU time in
            # bench/containers.py.
            client.trust_env = False
        _CALLS.add()
        try:
            version = client.version(api_version=False)
            _CALLS.add()
        except Exception:
            client.close()
            raise
        return cls(client, base_url, _runtime_name(version), client.api_version)

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        _CALLS.add()
        return method(*args, **kwargs)

    def stats(self, container_id: str) -> dict[str, Any]:
        one_shot = True if self._one_shot else None
        return self.call(self.client.stats, container_id, stream=False, one_shot=one_shot)

    def close(self) -> None:
        self.client.close()


def _runtime_name(version: Mapping[str, Any]) -> str:
    """Return "podman" or "docker" from a /version reply."""
    names = [str((version.get("Platform") or {}).get("Name", ""))]
    names.extend(str(component.get("Name", "")) for component in version.get("Components") or ())
    return "podman" if any("podman" in name.lower() for name in names) else "docker"


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


def _has_health_check(reply: Mapping[str, Any]) -> bool:
    health = ((reply.get("State") or {}).get("Health") or {}).get("Status")
    return bool(health)


def _describe_error(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300]
