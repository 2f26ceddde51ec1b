"""Helpers for the transport security tests: the CLI, certificate files, probe requests, gRPC calls."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from gosight.security import certs
from tests.support.otlp import exporter, gauge, request_with
from tests.support.processes import GosightProcess, Server, start_agent, start_server

REPO = Path(__file__).resolve().parents[2]
PROBE_METRIC = "security_probe"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `gosight ARGS` with no GOSIGHT_* variables from the caller's environment."""
    full_env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "gosight", *args], capture_output=True, text=True, env=full_env,
                          timeout=60, cwd=REPO)


def cli_ok(*args: str) -> subprocess.CompletedProcess:
    result = run_cli(*args)
    assert result.returncode == 0, f"gosight {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def create_token(data_dir: Path, *extra: str) -> tuple[str, str]:
    """Create a token with the CLI; return (token, token id)."""
    result = cli_ok("token", "create", "--data-dir", str(data_dir), *extra)
    token = result.stdout.strip()
    token_id = result.stderr.split("created token ", 1)[1].split()[0]
    return token, token_id


@dataclass
class ClientFiles:
    """PEM files of one client certificate."""

    cert: Path
    key: Path


def write_client_cert(directory: Path, name: str, ca_key, ca_cert, *, valid_from: datetime.datetime | None = None,
                      validity_days: float = 30) -> ClientFiles:
    key, cert = certs.create_client_cert(ca_key, ca_cert, name, validity_days, valid_from=valid_from)
    files = ClientFiles(directory / f"{name}.crt", directory / f"{name}.key")
    certs.write_file(files.cert, certs.pem_certs([cert]), private=False, force=True)
    certs.write_file(files.key, certs.pem_key(key), private=True, force=True)
    return files


def write_foreign_ca(directory: Path) -> tuple:
    """Create a CA unrelated to the server's; return its key and certificate."""
    key, cert = certs.create_ca("unrelated CA", 30)
    certs.write_file(directory / "foreign-ca.crt", certs.pem_certs([cert]), private=False, force=True)
    return key, cert


def probe(case: str) -> bytes:
    """An OTLP request carrying one sample tagged with `case`, to find it in the store afterwards."""
    return request_with(gauge(PROBE_METRIC, [({"case": case}, 1.0, time.time_ns())])).SerializeToString()


def tls_channel(target: str, ca_file: Path, client: ClientFiles | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None)
    return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", "localhost")])


def export_status(channel: grpc.Channel, case: str, metadata=()) -> tuple[grpc.StatusCode, str]:
    """Send one probe; return the status code and details (OK and '' when accepted)."""
    try:
        exporter(channel)(probe(case), timeout=10, metadata=metadata)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def bearer(token: str, agent_id: str = "probe-agent") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"), ("gosight-agent-id", agent_id))


def launch_server(launched: list[GosightProcess], data_dir: Path, log_path: Path, *extra: str) -> Server:
    """Start a server and record it in `launched` (the fixture), which stops it if the test fails."""
    server = start_server(data_dir, log_path, *extra)
    launched.append(server.proc)
    return server


def launch_agent(launched: list[GosightProcess], server_grpc: str, data_dir: Path, log_path: Path,
                 *extra: str) -> GosightProcess:
    """Start an agent and record it in `launched` (the fixture), which stops it if the test fails."""
    agent = start_agent(server_grpc, data_dir, log_path, *extra)
    launched.append(agent)
    return agent
