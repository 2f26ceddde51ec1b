"""`gosight demo`, the README's first command: a server and its agent, a setup link, and a second start."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.auth.support import SessionClient
from tests.support.processes import GosightProcess, Server, spawn, wait_for

PASSWORD = "demo-admin-passphrase-3"


def _banner(demo: GosightProcess) -> str:
    line = wait_for(lambda: next((record["msg"] for record in demo.lines
                                  if "GoSight demo is running" in record.get("msg", "")), None),
                    timeout_s=60, message="the demo's banner")
    return str(line)


def _start_demo(data_dir: Path, log_path: Path) -> GosightProcess:
    return spawn(["demo", "--data-dir", str(data_dir), "--http-listen", "127.0.0.1:0"], log_path)


def _stop_like_ctrl_c(demo: GosightProcess) -> int:
    demo.signal(signal.SIGINT)
    return demo.process.wait(60)


def test_demo_first_start_then_again(tmp_path: Path):
    data_dir = tmp_path / "demo"
    first = _start_demo(data_dir, tmp_path / "first.log")
    try:
        banner = _banner(first)
        setup_url = re.search(r"(http://\S+/setup\?token=\S+)", banner).group(1)
        origin = f"{urlsplit(setup_url).scheme}://{urlsplit(setup_url).netloc}"
        token = parse_qs(urlsplit(setup_url).query)["token"][0]
        created = httpx.post(f"{origin}/api/v1/auth/setup", headers={"Origin": origin},
                             json={"token": token, "username": "owner", "password": PASSWORD})
        server = Server(proc=first, data_dir=data_dir / "server", http=urlsplit(origin).netloc, grpc="")
        with SessionClient(server).signed_in("owner", PASSWORD) as owner:
            endpoints = wait_for(lambda: owner.get("/api/v1/endpoints").json()["endpoints"],
                                 message="the demo's agent to register")
            load = wait_for(lambda: owner.get("/prometheus/api/v1/query",
                                              params={"query": "node_load1"}).json()["data"]["result"],
                            message="the demo's agent to send host metrics")
    finally:
        first_exit = _stop_like_ctrl_c(first)

    second = _start_demo(data_dir, tmp_path / "second.log")
    try:
        second_banner = _banner(second)
    finally:
        second_exit = _stop_like_ctrl_c(second)

    assert created.status_code == 201, created.text
    assert len(endpoints) == 1
    assert endpoints[0]["status"] == "online"
    assert load[0]["metric"]["endpoint_id"] == endpoints[0]["endpoint_id"]
    assert first_exit == 0
    assert "setup?token=" not in second_banner, "the admin exists, so no second setup link"
    assert f"gosight user set-password NAME --data-dir {data_dir / 'server'}" in second_banner
    assert second_exit == 0
