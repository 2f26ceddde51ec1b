"""The agent's network side: one thread running an asyncio loop with the gRPC channel,
the exporter and the control stream.

An event loop waits without polling, which keeps an idle agent near zero CPU; the
synchronous gRPC API would wake its threads several times a second. With a pinned CA
fingerprint, the loop first fetches the server's CA (retrying with backoff) while
collections keep going to the spool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from gosight.agent.control import ControlClient
from gosight.agent.exporter import Backoff, Exporter
from gosight.agent.identity import Identity
from gosight.agent.spool import Spool
from gosight.config import Config
from gosight.security.client_tls import AgentSecurity, load_agent_security
from gosight.wire import agent_pb2

log = logging.getLogger(__name__)


def channel_options(config: Config) -> list[tuple[str, int]]:
    backoff_max_ms = int(config["agent.backoff.max_s"] * 1000)
    return [
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.initial_reconnect_backoff_ms", min(1000, backoff_max_ms)),
        ("grpc.max_reconnect_backoff_ms", backoff_max_ms),
        ("grpc.enable_retries", 0),
    ]


class Transport:
    def __init__(self, config: Config, identity: Identity, spool: Spool, collectors: list[str],
                 stats: Callable[[], agent_pb2.Heartbeat]):
        """Load the agent's TLS files and token; raises AgentSecurityError naming the setting at fault."""
        self.config = config
        self.security: AgentSecurity = load_agent_security(config, config.data_dir)
        self.identity = identity
        self.spool = spool
        self.collectors = collectors
        self.stats = stats
        self.exporter: Exporter | None = None
        self.control: ControlClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._done: asyncio.Future | None = None
        self._thread = threading.Thread(target=self._run, name="gosight-transport", daemon=True)

    @property
    def sent_batches(self) -> int:
        return self.exporter.sent_batches if self.exporter else 0

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self, flush_timeout_s: float) -> None:
        """Send what the server takes within `flush_timeout_s`, say goodbye, close the channel."""
        if self._loop is None or self._done is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(flush_timeout_s), self._loop)
        future.result(flush_timeout_s + self.config["agent.send_timeout_s"] + 5)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        config = self.config
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        security = self.security
        if security.needs_fetch():
            # Collections spool meanwhile; the exporter starts once the server's CA is known.
            self._ready.set()
            backoff = Backoff(config["agent.backoff.initial_s"], config["agent.backoff.max_s"])
            if not await security.ensure_pinned_ca(config["agent.server"], self._stopped_within, backoff.next_delay):
                return
        channel = security.open_channel(config["agent.server"], channel_options(config))
        metadata = security.call_metadata(self.identity.agent_id)
        self.exporter = Exporter(channel, self.spool, timeout_s=config["agent.send_timeout_s"],
                                 backoff=Backoff(config["agent.backoff.initial_s"], config["agent.backoff.max_s"]),
                                 metadata=metadata, hint=security.hint)
        self.control = ControlClient(
            channel, self.identity, interval_s=config["agent.interval_s"], heartbeat_s=config["agent.heartbeat_s"],
            collectors=self.collectors, backoff=Backoff(config["agent.backoff.initial_s"],
                                                        config["agent.backoff.max_s"]),
            stats=self.stats, metadata=metadata, hint=security.hint)
        exporter = self.exporter
        self.spool.on_append = lambda: self._loop.call_soon_threadsafe(exporter.notify)
        tasks = [asyncio.ensure_future(self.exporter.run()), asyncio.ensure_future(self.control.run())]
        self._ready.set()
        await self._done
        await asyncio.gather(*tasks, return_exceptions=True)
        self.spool.on_append = None
        await channel.close()

    async def _shutdown(self, flush_timeout_s: float) -> None:
        if self.exporter is not None:
            await self.exporter.flush(flush_timeout_s)
            self.control.stop()
        self._done.set_result(None)

    async def _stopped_within(self, delay_s: float) -> bool:
        """Wait up to `delay_s`; return True when the transport is stopping."""
        try:
            await asyncio.wait_for(asyncio.shield(self._done), delay_s)
        except asyncio.TimeoutError:
            return False
        return True
