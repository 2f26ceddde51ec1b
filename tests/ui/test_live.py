"""The live WebSocket hub on a real uvicorn server, with a recording stand-in for the query engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gosight.model import SampleBatch, make_labels
from gosight.server.live import LiveHub, live_endpoint, query_metric_names
from gosight.server.routing import websocket
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.series import SeriesRegistry
from tests.support.processes import wait_for

LOAD = 'node_load1{endpoint_id="a"}'
START_MS = 1_700_000_000_000


@dataclass
class Recorder:
    """Stands in for the PromQL engine: records each evaluation and returns one sample."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, query: str, time_ms: int) -> list[dict]:
        with self.lock:
            self.calls.append((query, time_ms))
        if query.startswith("fail"):
            raise RuntimeError("store unavailable")
        return [{"metric": {"endpoint_id": "a"}, "value": [time_ms / 1000, "1.5"]}]

    def count(self, query: str) -> int:
        with self.lock:
            return sum(1 for called, _ in self.calls if called == query)


@dataclass
class LiveServer:
    hub: LiveHub
    url: str
    recorder: Recorder
    registry: SeriesRegistry
    loop: asyncio.AbstractEventLoop
    metrics: ServerMetrics
    clock_ms: list[int]

    def advance(self, milliseconds: int) -> int:
        """Move the hub's wall clock forward; return the new time in ms."""
        self.clock_ms[0] += milliseconds
        return self.clock_ms[0]

    def commit(self, metric: str, timestamp_ms: int) -> None:
        """Pretend the ingest writer committed one sample of `metric`."""
        series_id = self.registry.get_or_create(make_labels({"__name__": metric, "endpoint_id": "a"}))
        batch = SampleBatch(np.array([series_id], dtype=np.uint32), np.array([timestamp_ms], dtype=np.int64),
                            np.array([1.0]))
        self.hub.on_commit([batch])

    def stop_hub(self) -> None:
        asyncio.run_coroutine_threadsafe(self.hub.stop(), self.loop).result(10)


def _start(hub_options: dict) -> Iterator[LiveServer]:
    registry = SeriesRegistry()
    recorder = Recorder()
    metrics = ServerMetrics()
    clock_ms = [START_MS]
    hub = LiveHub(registry, recorder, query_metric_names, metrics=metrics, now_ms=lambda: clock_ms[0],
                  **hub_options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        hub.start()
        yield
        await hub.stop()

    app = Starlette(routes=[websocket("/ws/live", live_endpoint, permission="metrics:read")], lifespan=lifespan)
    app.state.live_hub = hub
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout_s=10, message="uvicorn to start")
    yield LiveServer(hub, f"ws://127.0.0.1:{port}/ws/live", recorder, registry, loops[0], metrics, clock_ms)
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def live() -> Iterator[LiveServer]:
    yield from _start({"min_interval_s": 0.2})


def _subscribe(client: ClientConnection, subscription_id: str, query: str) -> None:
    client.send(json.dumps({"subscribe": {"id": subscription_id, "query": query}}))


def _receive(client: ClientConnection, timeout_s: float = 5.0) -> dict:
    return json.loads(client.recv(timeout=timeout_s))


def _assert_silent(client: ClientConnection, timeout_s: float = 0.6) -> None:
    with pytest.raises(TimeoutError):
        message = client.recv(timeout=timeout_s)
        pytest.fail(f"expected no message, got {message}")


def test_subscribe_gets_first_value(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)

        message = _receive(client)

    assert message == {"id": "c1", "t": START_MS / 1000,
                       "result": [{"metric": {"endpoint_id": "a"}, "value": [START_MS / 1000, "1.5"]}]}


def test_commit_of_selected_metric_pushes_value(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)
        _receive(client)
        live.advance(2000)

        live.commit("node_load1", START_MS + 1000)
        update = _receive(client)

    assert update["id"] == "c1"
    assert update["t"] == (START_MS + 1000) / 1000


def test_future_samples_are_evaluated_at_the_clock(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)
        _receive(client)
        now_ms = live.advance(1000)

        live.commit("node_load1", now_ms + 60_000)
        update = _receive(client)

    assert update["t"] == now_ms / 1000


def test_commit_of_other_metric_is_ignored(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)
        _receive(client)
        live.advance(2000)

        live.commit("node_memory_MemFree_bytes", START_MS + 1000)

        _assert_silent(client)
    assert live.recorder.count(LOAD) == 1


def test_evaluations_are_rate_limited() -> None:
    for server in _start({"min_interval_s": 0.5}):
        with connect(server.url) as client:
            _subscribe(client, "c1", LOAD)
            _receive(client)
            server.advance(1000)
            started = time.monotonic()

            for step in range(1, 21):
                server.commit("node_load1", START_MS + step)
                time.sleep(0.03)
            updates = []
            with contextlib.suppress(TimeoutError):
                while True:
                    updates.append(_receive(client, timeout_s=1.0))
            elapsed = time.monotonic() - started

        assert 1 <= len(updates) <= elapsed / 0.5 + 1, updates
        assert updates[-1]["t"] == (START_MS + 20) / 1000, "the last commit must be evaluated"


def test_clients_share_one_evaluation(live: LiveServer) -> None:
    with connect(live.url) as first, connect(live.url) as second:
        _subscribe(first, "a", LOAD)
        initial = _receive(first)
        _subscribe(second, "b", LOAD)
        replayed = _receive(second)
        newer_ms = live.advance(1000)

        live.commit("node_load1", newer_ms)
        from_first = _receive(first)
        from_second = _receive(second)

    assert replayed == {**initial, "id": "b"}
    assert (from_first["id"], from_second["id"]) == ("a", "b")
    assert from_first["t"] == from_second["t"] == newer_ms / 1000
    assert live.recorder.count(LOAD) == 2


def test_invalid_query_reports_parse_error(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "bad", "rate(node_load1[5m]")

        message = _receive(client)

    assert message == {"id": "bad", "error": "parse error: unclosed left parenthesis"}
    assert live.hub.query_count == 0


def test_failing_evaluation_reports_error(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "f", "failing_metric")

        message = _receive(client)

    assert message == {"id": "f", "error": "evaluating the query failed: store unavailable"}


@pytest.mark.parametrize(("payload", "expected"), [
    ("not json", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
    ("[1]", "expected a JSON object with a subscribe or unsubscribe key"),
    ('{"subscribe": {"query": "up"}}', 'invalid subscribe message; expected {"subscribe": {"id": "...", "query": "..."}}'),
    ('{"unsubscribe": {}}', 'invalid unsubscribe message; expected {"unsubscribe": {"id": "..."}}'),
    ('{"ping": 1}', "unknown message; expected a subscribe or unsubscribe key"),
])
def test_bad_message_gets_error(live: LiveServer, payload: str, expected: str) -> None:
    with connect(live.url) as client:
        client.send(payload)

        message = _receive(client)

    assert message == {"error": expected}


def test_unsubscribe_stops_updates(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)
        _receive(client)

        client.send(json.dumps({"unsubscribe": {"id": "c1"}}))
        wait_for(lambda: live.hub.query_count == 0, message="the subscription to end")
        live.commit("node_load1", live.advance(1000))

        _assert_silent(client)


def test_disconnect_removes_subscriptions(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)
        _receive(client)
        assert live.hub.query_count == 1

    wait_for(lambda: live.hub.client_count == 0 and live.hub.query_count == 0, message="the client to be removed")


def test_late_samples_do_not_move_time_back(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)
        first = _receive(client)
        live.advance(1000)

        live.commit("node_load1", START_MS - 3_600_000)
        update = _receive(client)

    assert update["t"] == first["t"]


def test_slow_client_loses_counted_messages() -> None:
    for server in _start({"queue_messages": 2}):
        with connect(server.url, max_queue=1) as client:
            _subscribe(client, "c1", LOAD)
            _receive(client)
            wait_for(lambda: server.hub.client_count == 1, message="the client")
            hub_client = next(iter(server.hub._clients))

            def flood() -> None:
                for index in range(50):
                    server.hub._enqueue(hub_client, {"id": "c1", "n": index})

            server.loop.call_soon_threadsafe(flood)
            wait_for(lambda: server.hub.dropped_total > 0, message="dropped messages")

        dropped = server.hub.dropped_total
        assert 0 < dropped <= 48
        assert f"gosight_live_messages_dropped_total {float(dropped)}" in server.metrics.render().decode()


def test_stop_closes_clients_as_going_away(live: LiveServer) -> None:
    with connect(live.url) as client:
        _subscribe(client, "c1", LOAD)
        _receive(client)

        live.stop_hub()

        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
