"""`gosight demo`: a server and an agent in one process, for a first look.

The demo keeps its data in a directory of its own (`demo` inside the data
directory), listens on loopback only, and starts the agent once the server's gRPC
port is known. On Ctrl-C the agent stops first and flushes, then the server drains.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from pathlib import Path

from gosight.agent.runner import build_agent
from gosight.config import Config
from gosight.server.main import Listening, serve

log = logging.getLogger(__name__)


async def run_demo(config: Config) -> None:
    agent_thread: dict[str, object] = {}
    server_dir = Path(config["data_dir"]) / "server"

    def start_agent(listening: Listening) -> None:
        values = dict(config.values)
        values["agent.server"] = listening.grpc
        values["data_dir"] = str(Path(config["data_dir"]) / "agent")
        agent = build_agent(dataclasses.replace(config, values=values))
        thread = threading.Thread(target=agent.run, name="gosight-demo-agent", daemon=True)
        thread.start()
        agent_thread.update(agent=agent, thread=thread)
        address = f"http://{_browser_host(listening.http)}/"
        if listening.setup_url:
            print(f"GoSight demo is running. Create the admin account at {listening.setup_url} "
                  f"(one use), then sign in at {address}. Ctrl-C stops it.", file=sys.stderr, flush=True)
        else:
            # An earlier demo created the admin already. Print how to reset its password, because
            # otherwise the sign-in page is a dead end.
            print(f"GoSight demo is running: open {address} in a browser and sign in with the account created "
                  f"when this demo first ran. To set a new password, run 'gosight user list --data-dir {server_dir}' "
                  f"for the names, then 'gosight user set-password NAME --data-dir {server_dir}'; to start afresh, "
                  "run 'gosight demo --data-dir NEW_DIR'. Ctrl-C stops it.", file=sys.stderr, flush=True)

    def stop_agent() -> None:
        agent = agent_thread.get("agent")
        thread = agent_thread.get("thread")
        if agent is None or thread is None:
            return
        agent.stop_event.set()
        thread.join(30)

    server_values = dict(config.values)
    server_values["data_dir"] = str(server_dir)
    await serve(dataclasses.replace(config, values=server_values), on_listening=start_agent,
                on_stopping=stop_agent)


def _browser_host(address: str) -> str:
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"
