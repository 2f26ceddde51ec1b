"""Start real gosight server and agent processes for tests, and wait on them with deadlines."""

from __future__ import annotations

import functools
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    """Return a TCP port that was free a moment ago, for programs that cannot listen on port 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.05,
             message: str = "condition") -> object:
    """Poll `condition` until it returns a truthy value; fail with `message` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as error:  # noqa: BLE001 - keep polling, report the last error on timeout
            last_error = error
            result = None
        if result:
            return result
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {message}; last error: {last_error!r}")


@dataclass
class GosightProcess:
    """A running `gosight` command whose JSON log lines are collected as they arrive."""

    args: list[str]
    process: subprocess.Popen
    log_path: Path
    lines: list[dict] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)

    def start_reader(self) -> None:
        def read() -> None:
            with open(self.log_path, "a", encoding="utf-8") as copy:
                for raw in self.process.stderr:
                    copy.write(raw)
                    copy.flush()
                    try:
                        record = json.loads(raw)
                    except json.JSONDecodeError:
                        record = {"msg": raw.rstrip("\n"), "level": "raw"}
                    self.lines.append(record)
                    self._queue.put(record)
            self.process.stderr.close()

        threading.Thread(target=read, daemon=True).start()

    def wait_for_log(self, message: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        for record in list(self.lines):
            if record.get("msg") == message:
                return record
        while time.monotonic() < deadline:
            try:
                record = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self._queue.empty():
                    break
                continue
            if record.get("msg") == message:
                return record
        raise AssertionError(f"no log line {message!r} within {timeout_s} s; exit code {self.process.poll()}; "
                             f"log:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout_s: float = 30.0) -> int:
        """Send SIGTERM and wait; kill after `timeout_s`. Return the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.args[:2]} did not stop within {timeout_s} s; log:\n{self.log_text()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None,
          program: list[str] | None = None) -> GosightProcess:
    """Start `gosight ARGS`; `program` replaces `python -m gosight`, e.g. with the built executable."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("GOSIGHT_")}
    full_env.update({"GOSIGHT_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    command = [*(program or [sys.executable, "-m", "gosight"]), *args]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=full_env)
    running = GosightProcess(args=args, process=process, log_path=log_path)
    running.start_reader()
    return running


# The admin account that start_server creates in every data directory it is given.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "test-admin-passphrase-7"


@dataclass
class Server:
    proc: GosightProcess
    data_dir: Path
    http: str
    grpc: str
    # An API token of the admin with every permission; None for a server started without users.
    token: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.http}"

    def auth_headers(self) -> dict[str, str]:
        """Return the headers that authenticate a request as the admin; the one place tests get credentials."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, headers=self.auth_headers())


def start_server(data_dir: Path, log_path: Path, *extra: str, env: dict[str, str] | None = None,
                 grpc_listen: str = "127.0.0.1:0", http_listen: str = "127.0.0.1:0",
                 program: list[str] | None = None, bootstrap: bool = True) -> Server:
    """Start a server; with `bootstrap`, first create the admin and an API token in its data directory."""
    token = bootstrap_admin(data_dir) if bootstrap else None
    proc = spawn(["server", "--data-dir", str(data_dir), "--http-listen", http_listen,
                  "--grpc-listen", grpc_listen, *extra], log_path, env, program)
    record = proc.wait_for_log("server listening", timeout_s=60.0)
    return Server(proc=proc, data_dir=data_dir, http=record["http"], grpc=record["grpc"], token=token)


def bootstrap_admin(data_dir: Path) -> str:
    """Create the admin account (once) and a new one-day API token with every permission; return the token.

    It writes the metadata database directly, as 'gosight user add' and 'gosight user token'
    do, which saves two process starts per server.
    """
    from gosight.auth import rbac  # noqa: PLC0415 - keeps test collection light
    from gosight.auth.store import AuthStore, now_ms  # noqa: PLC0415

    data_dir.mkdir(parents=True, exist_ok=True)
    store = AuthStore(data_dir)
    try:
        user = store.find_user(ADMIN_USER)
        if user is None:
            user = store.create_user(ADMIN_USER, _admin_password_hash(), rbac.ADMIN)
        token, _ = store.create_token(user.user_id, "tests", rbac.grantable_permissions(), now_ms() + 86_400_000)
    finally:
        store.close()
    return token


@functools.lru_cache(maxsize=1)
def _admin_password_hash() -> str:
    from gosight.auth.passwords import hash_password  # noqa: PLC0415

    return hash_password(ADMIN_PASSWORD)


def start_agent(server_grpc: str, data_dir: Path, log_path: Path, *extra: str,
                env: dict[str, str] | None = None, program: list[str] | None = None) -> GosightProcess:
    proc = spawn(["agent", "--server", server_grpc, "--data-dir", str(data_dir), *extra], log_path, env, program)
    proc.wait_for_log("agent started", timeout_s=60.0)
    return proc
