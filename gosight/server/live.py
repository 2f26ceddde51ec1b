"""Live mode: push fresh values of PromQL queries to the dashboard over a WebSocket.

Protocol on /ws/live, one JSON object per text message:
- client: `{"subscribe": {"id": "c1", "query": "<PromQL>"}}` and `{"unsubscribe": {"id": "c1"}}`;
- server: `{"id": "c1", "t": <seconds>, "result": [{"metric": {...}, "value": [<seconds>, "<value>"]}]}`,
  `{"id": "c1", "error": "<message>"}` for a query that cannot be evaluated, and
  `{"error": "<message>"}` for a message that cannot be understood.

The ingest writer calls `on_commit` after every commit. The hub hands the commit to
the event loop, and re-evaluates each subscribed query whose metrics were written, at
the newest sample time, at most once per `min_interval_s`. Clients that subscribe to
the same query share one evaluation. Each client has a bounded send queue: a client
that reads too slowly loses messages, which are counted, and never holds up the others.

A connection outlives the request that opened it, so its credentials are checked again
every `recheck_s`. An ended session, a revoked token, a disabled account or a role that
lost `metrics:read` closes the socket with code 1008 and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gosight.auth.middleware import access_problem
from gosight.logconfig import Throttle
from gosight.model import SampleBatch
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.promql import QueryError, nodes
from gosight.store.promql.errors import BadQueryError
from gosight.store.promql.format import api_float
from gosight.store.promql.parse import parse_query
from gosight.store.query_backend import QueryBackend
from gosight.store.series import SeriesRegistry

log = logging.getLogger(__name__)

# Evaluates a PromQL query at a time in ms and returns the instant vector in the
# Prometheus JSON shape. A ValueError carries a message meant for the client.
Evaluate = Callable[[str, int], list[dict[str, Any]]]
# Returns the metric names a query reads, or None when a selector has no fixed name.
MetricNames = Callable[[str], frozenset[str] | None]
# Checks a connection's credentials again: None while access holds, else why it ended.
Recheck = Callable[[], Awaitable[str | None]]

PERMISSION = "metrics:read"

MAX_MESSAGE_BYTES = 64 * 1024
MAX_QUERY_CHARS = 16 * 1024
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


@dataclass(eq=False)
class _Client:
    websocket: WebSocket
    queue: asyncio.Queue
    subscriptions: dict[str, str] = field(default_factory=dict)  # subscription id -> query
    dropped: int = 0


@dataclass(eq=False)
class _Group:
    """One distinct query and everyone subscribed to it."""

    query: str
    names: frozenset[str] | None
    subscribers: dict[tuple[_Client, str], None] = field(default_factory=dict)
    dirty: bool = False
    running: bool = False
    next_due: float = 0.0
    last_time_ms: int = -1
    # The latest result, sent at once to a client that subscribes to a query already running.
    last_message: dict[str, Any] | None = None


class LiveHub:
    """Fan out live query results to WebSocket clients.

    `on_commit` may be called from any thread; everything else runs on the event loop
    given to `start`. After `stop` the hub closes its clients and accepts no more.
    """

    def __init__(self, registry: SeriesRegistry, evaluate: Evaluate, metric_names: MetricNames, *,
                 metrics: ServerMetrics | None = None, min_interval_s: float = 1.0, queue_messages: int = 64,
                 max_subscriptions: int = 100, max_evaluations: int = 2, recheck_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, now_ms: Callable[[], int] | None = None):
        self.registry = registry
        self.recheck_s = recheck_s
        self.min_interval_s = min_interval_s
        self.queue_messages = queue_messages
        self.max_subscriptions = max_subscriptions
        self._evaluate = evaluate
        self._metric_names = metric_names
        self._clock = clock
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[_Client] = set()
        self._groups: dict[str, _Group] = {}
        self._latest_ms = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._evaluations = asyncio.Semaphore(max_evaluations)
        self._names_by_id: dict[int, str] = {}
        self._throttle = Throttle(60.0)
        self._closed = False
        self.dropped_total = 0
        self._dropped_counter: Counter | None = None
        if metrics is not None:
            self._dropped_counter = Counter(
                "gosight_live_messages_dropped", "Live messages dropped because a client read too slowly.",
                registry=metrics.registry)
            metrics.add_gauge_callback("gosight_live_clients", "Open live WebSocket connections.", [],
                                       lambda: [([], len(self._clients))])
            metrics.add_gauge_callback("gosight_live_queries", "Distinct queries with live subscribers.", [],
                                       lambda: [([], len(self._groups))])

    # Lifecycle.

    def start(self) -> None:
        """Start the evaluation task on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="gosight-live")

    async def stop(self) -> None:
        """Close every client with 1001 (going away) and stop evaluating. Idempotent."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for client in list(self._clients):
            # A client that is already gone raises on close, and needs nothing more.
            with contextlib.suppress(RuntimeError, OSError):
                await client.websocket.close(GOING_AWAY, "server shutting down")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # Ingest side (writer thread).

    def on_commit(self, batches: Sequence[SampleBatch]) -> None:
        """Note committed samples; called on the writer thread, so it only hands off to the loop."""
        loop = self._loop
        if loop is None or not self._groups or self._closed:
            return
        ids = np.unique(np.concatenate([batch.series_ids for batch in batches])) if batches else np.empty(0)
        if ids.size == 0:
            return
        names = {self._metric_name(int(series_id)) for series_id in ids}
        latest_ms = max(int(batch.timestamps_ms.max()) for batch in batches if batch.size)
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self._note_commit, names, latest_ms)

    def _metric_name(self, series_id: int) -> str:
        name = self._names_by_id.get(series_id)
        if name is None:
            name = next((value for label, value in self.registry.labels(series_id) if label == "__name__"), "")
            self._names_by_id[series_id] = name
        return name

    def _note_commit(self, names: set[str], latest_ms: int) -> None:
        # Backfilled or replayed samples can be old; evaluation time never moves back.
        self._latest_ms = max(self._latest_ms, min(latest_ms, self._now_ms()))
        for group in self._groups.values():
            if group.names is None or not group.names.isdisjoint(names):
                group.dirty = True
        self._wake.set()

    # Evaluation.

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            now = self._clock()
            next_due = math.inf
            for group in list(self._groups.values()):
                if not group.dirty or group.running:
                    continue
                if group.next_due > now:
                    next_due = min(next_due, group.next_due)
                    continue
                group.dirty = False
                group.running = True
                group.next_due = now + self.min_interval_s
                asyncio.create_task(self._evaluate_group(group))
            if next_due < math.inf:
                self._wake_later(next_due - now)

    def _wake_later(self, delay_s: float) -> None:
        # One timer at a time: frequent commits would otherwise stack a timer per commit.
        assert self._loop is not None
        when = self._loop.time() + max(0.0, delay_s)
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._wake.set()

    async def _evaluate_group(self, group: _Group) -> None:
        # Before the first commit there is no newest sample, so the clock is used. Late
        # samples older than the last evaluation are evaluated at that time again, so the
        # time never moves back and the client replaces its newest point.
        time_ms = max(self._latest_ms or self._now_ms(), group.last_time_ms)
        try:
            async with self._evaluations:
                result = await asyncio.to_thread(self._evaluate, group.query, time_ms)
            group.last_time_ms = time_ms
            message = {"t": time_ms / 1000, "result": result}
            group.last_message = message
        except ValueError as error:
            message = {"error": str(error)}
        except Exception as error:  # noqa: BLE001 - one failing query must not stop live mode
            suppressed = self._throttle.allow(group.query)
            if suppressed is not None:
                log.error("live query evaluation failed",
                          extra={"fields": {"query": group.query, "error": str(error), "suppressed": suppressed}})
            message = {"error": f"evaluating the query failed: {error}"}
        finally:
            group.running = False
            if group.dirty:
                self._wake.set()
        for client, subscription_id in list(group.subscribers):
            self._enqueue(client, {"id": subscription_id, **message})

    def _enqueue(self, client: _Client, message: dict[str, Any]) -> None:
        try:
            client.queue.put_nowait(message)
        except asyncio.QueueFull:
            client.dropped += 1
            self.dropped_total += 1
            if self._dropped_counter is not None:
                self._dropped_counter.inc()

    # Subscriptions.

    def _subscribe(self, client: _Client, subscription_id: str, query: str) -> str | None:
        """Add a subscription and send its first value; return an error message for the client, or None."""
        if subscription_id in client.subscriptions:
            self._unsubscribe(client, subscription_id)
        if len(client.subscriptions) >= self.max_subscriptions:
            return f"too many subscriptions on one connection (at most {self.max_subscriptions})"
        group = self._groups.get(query)
        if group is None:
            try:
                names = self._metric_names(query)
            except ValueError as error:
                return str(error)
            group = _Group(query, names)
            self._groups[query] = group
            # Evaluate soon, so a new chart gets its first live point without waiting for a commit.
            group.dirty = True
            self._wake.set()
        elif group.last_message is not None:
            self._enqueue(client, {"id": subscription_id, **group.last_message})
        group.subscribers[(client, subscription_id)] = None
        client.subscriptions[subscription_id] = query
        return None

    def _unsubscribe(self, client: _Client, subscription_id: str) -> None:
        query = client.subscriptions.pop(subscription_id, None)
        if query is None:
            return
        group = self._groups.get(query)
        if group is None:
            return
        group.subscribers.pop((client, subscription_id), None)
        if not group.subscribers:
            del self._groups[query]

    # The WebSocket endpoint.

    async def handle(self, websocket: WebSocket, recheck: Recheck | None = None) -> None:
        """Serve one client until it disconnects, loses access or the hub stops."""
        await websocket.accept()
        if self._closed:
            await websocket.close(GOING_AWAY, "server shutting down")
            return
        client = _Client(websocket, asyncio.Queue(self.queue_messages))
        self._clients.add(client)
        helpers = [asyncio.create_task(self._send_loop(client))]
        if recheck is not None:
            helpers.append(asyncio.create_task(self._watch_access(client, recheck)))
        try:
            await self._receive_loop(client)
        finally:
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            for subscription_id in list(client.subscriptions):
                self._unsubscribe(client, subscription_id)
            self._clients.discard(client)
            if client.dropped:
                log.info("live client closed after dropped messages", extra={"fields": {
                    "client": _peer(websocket), "dropped": client.dropped}})

    async def _receive_loop(self, client: _Client) -> None:
        websocket = client.websocket
        while True:
            try:
                text = await websocket.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                return
            except KeyError:
                # A binary frame: receive_text finds no "text" in the message.
                log.info("live client closed for a binary message", extra={"fields": {"client": _peer(websocket)}})
                await websocket.close(POLICY_VIOLATION, "send JSON text messages")
                return
            if len(text) > MAX_MESSAGE_BYTES:
                log.info("live client closed for a large message", extra={"fields": {
                    "client": _peer(websocket), "bytes": len(text)}})
                await websocket.close(POLICY_VIOLATION, f"message larger than {MAX_MESSAGE_BYTES} bytes")
                return
            reply = self._handle_message(client, text)
            if reply is not None:
                self._enqueue(client, reply)

    def _handle_message(self, client: _Client, text: str) -> dict[str, Any] | None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as error:
            return {"error": f"invalid JSON: {error}"}
        if not isinstance(message, dict):
            return {"error": "expected a JSON object with a subscribe or unsubscribe key"}
        if "subscribe" in message:
            body = message["subscribe"]
            subscription_id = body.get("id") if isinstance(body, dict) else None
            query = body.get("query") if isinstance(body, dict) else None
            if not isinstance(subscription_id, str) or not subscription_id or not isinstance(query, str):
                return {"error": 'invalid subscribe message; expected {"subscribe": {"id": "...", "query": "..."}}'}
            if not query.strip() or len(query) > MAX_QUERY_CHARS:
                return {"id": subscription_id,
                        "error": f"invalid query: it must be non-empty and at most {MAX_QUERY_CHARS} characters"}
            problem = self._subscribe(client, subscription_id, query)
            if problem is not None:
                return {"id": subscription_id, "error": problem}
            return None
        if "unsubscribe" in message:
            body = message["unsubscribe"]
            subscription_id = body.get("id") if isinstance(body, dict) else None
            if not isinstance(subscription_id, str):
                return {"error": 'invalid unsubscribe message; expected {"unsubscribe": {"id": "..."}}'}
            self._unsubscribe(client, subscription_id)
            return None
        return {"error": "unknown message; expected a subscribe or unsubscribe key"}

    async def _watch_access(self, client: _Client, recheck: Recheck) -> None:
        while True:
            await asyncio.sleep(self.recheck_s)
            problem = await recheck()
            if problem is None:
                continue
            log.info("live client closed: access ended", extra={"fields": {
                "client": _peer(client.websocket), "reason": problem}})
            # A close reason may hold at most 123 bytes.
            reason = problem.encode("utf-8")[:123].decode("utf-8", "ignore")
            with contextlib.suppress(RuntimeError, OSError):
                await client.websocket.close(POLICY_VIOLATION, reason)
            return

    async def _send_loop(self, client: _Client) -> None:
        websocket = client.websocket
        while True:
            message = await client.queue.get()
            if websocket.application_state != WebSocketState.CONNECTED:
                return
            try:
                await websocket.send_text(json.dumps(message, allow_nan=False, separators=(",", ":")))
            except (WebSocketDisconnect, RuntimeError, OSError):
                return

    # Introspection for tests and metrics.

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def query_count(self) -> int:
        return len(self._groups)


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "unknown"


async def live_endpoint(websocket: WebSocket) -> None:
    hub: LiveHub | None = getattr(websocket.app.state, "live_hub", None)
    if hub is None:
        # An application built without a hub, as some tests build it: reject the handshake.
        await websocket.close(TRY_AGAIN_LATER, "live mode is not running on this server")
        return
    await hub.handle(websocket, recheck=lambda: access_problem(websocket, PERMISSION))


def engine_evaluator(engine: QueryBackend) -> Evaluate:
    """Adapt a query backend to the hub: an instant query as a Prometheus vector in JSON form."""

    def evaluate(query: str, time_ms: int) -> list[dict[str, Any]]:
        try:
            result = engine.instant(query, time_ms)
        except QueryError as error:
            raise ValueError(str(error)) from None
        seconds = time_ms / 1000
        if result.result_type == "scalar":
            return [{"metric": {}, "value": [seconds, api_float(result.value)]}]
        if result.result_type != "vector":
            raise ValueError(f"live mode needs a query that returns an instant vector or a scalar, "
                             f"not a {result.result_type}; remove the range selector [..] at the top")
        return [{"metric": dict(series.labels), "value": [seconds, api_float(series.values[0])]}
                for series in result.series]

    return evaluate


def query_metric_names(query: str) -> frozenset[str] | None:
    """Return the metric names a query selects; None when one selector has no fixed name.

    Raises ValueError with the parser's message for an invalid query. A query without
    selectors, such as `time()`, also returns None, since its value changes on its own.
    """
    try:
        tree = parse_query(query)
    except BadQueryError as error:
        raise ValueError(str(error)) from None
    names: set[str] = set()
    for node in nodes.walk(tree):
        if not isinstance(node, nodes.VectorSelector):
            continue
        if node.name:
            names.add(node.name)
            continue
        fixed = [m.value for group in node.matcher_groups for m in group if m.name == "__name__" and m.op == "="]
        if len(fixed) != len(node.matcher_groups):
            return None
        names.update(fixed)
    return frozenset(names) or None
