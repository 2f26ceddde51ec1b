"""Smoke run of the built executable: server and agent from the same file on loopback.

Run by the binary tests directly, and inside a network namespace with only a loopback
interface for the air-gap test (`python -m tests.binary.smoke BINARY WORKDIR` prints the
result as JSON).
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import httpx

from tests.support.processes import start_agent, start_server, wait_for

# Signs of a connection attempt that failed, in any log line.
FAILED_CONNECTION = re.compile(
    r"unreachable|name resolution|name or service not known|failed to connect|could not resolve|"
    r"connection refused|timed out connecting", re.IGNORECASE)


def meminfo_total_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def run_smoke(binary: Path, workdir: Path) -> dict:
    """Start server and agent from `binary`, check data, dashboard and shutdown; return findings."""
    program = [str(binary)]
    server = start_server(workdir / "server", workdir / "server.log", program=program)
    agent = start_agent(server.grpc, workdir / "agent", workdir / "agent.log", "--interval", "1", program=program)
    result: dict = {"server": server.http}
    with httpx.Client(base_url=server.url, timeout=10, headers=server.auth_headers()) as client:
        query = wait_for(
            lambda: client.get("/prometheus/api/v1/query", params={"query": "node_memory_MemTotal_bytes"})
            .json()["data"]["result"],
            timeout_s=60, message="the agent's MemTotal in the server")
        result["memtotal"] = float(query[0]["value"][1])
        result["memtotal_expected"] = float(meminfo_total_bytes())
        index = client.get("/")
        result["index_status"] = index.status_code
        assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', index.text)
        result["assets"] = assets
        if assets:
            asset = client.get(assets[0])
            result["asset_status"] = asset.status_code
            result["asset_cache"] = asset.headers.get("cache-control", "")
        result["view_status"] = client.get("/endpoints").status_code
    agent.signal(signal.SIGTERM)
    result["agent_exit"] = agent.process.wait(30)
    result["server_exit"] = server.proc.stop()
    stopped = [line for line in server.proc.lines if line.get("msg") == "server stopped"]
    result["drained"] = bool(stopped and stopped[0].get("drained"))
    logs = server.proc.log_text() + agent.log_text()
    result["failed_connections"] = [line for line in logs.splitlines() if FAILED_CONNECTION.search(line)]
    result["tracebacks"] = logs.count("Traceback")
    return result


if __name__ == "__main__":
    print(json.dumps(run_smoke(Path(sys.argv[1]), Path(sys.argv[2]))))
