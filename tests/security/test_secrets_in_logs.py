"""No token and no private key material reaches a log or command output.

A full mutual TLS set-up with required tokens runs at debug level: certificates and
tokens from the CLI, a server, an accepted agent and agents rejected for a revoked or
unknown token. Afterwards every log and every command output (except the one line on
which `gosight token create` prints its token) is searched for each token and for
each private key in PEM, DER hex, DER base64 and raw scalar form.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from gosight.security import certs
from gosight.security.authority import Authority
from gosight.security.tokens import generate_token
from tests.security.support import cli_ok, launch_agent, launch_server
from tests.support.processes import GosightProcess, wait_for


def key_forms(path: Path) -> list[str]:
    """Return the ways a private key could appear in text: PEM body lines, DER hex and base64, the scalar."""
    key = certs.load_key(path)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    pem_lines = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    return [*pem_lines, der.hex(), der.hex().upper(), base64.b64encode(der).decode(), scalar.hex(),
            scalar.hex().upper(), base64.b64encode(scalar).decode(), base64.urlsafe_b64encode(scalar).decode(),
            str(key.private_numbers().private_value)]


def cli_text(result: subprocess.CompletedProcess, include_stdout: bool = True) -> str:
    return (result.stdout if include_stdout else "") + result.stderr


def test_secrets_never_logged(tmp_path: Path, artifacts: Path, launched: list):
    data_dir = tmp_path / "server-data"
    outputs = [
        cli_text(cli_ok("certs", "init", "--data-dir", str(data_dir))),
        cli_text(cli_ok("certs", "issue", "web1", "--data-dir", str(data_dir))),
        cli_text(cli_ok("certs", "list", "--data-dir", str(data_dir))),
    ]
    created = cli_ok("token", "create", "--data-dir", str(data_dir), "--name", "web1", "--bind-agent")
    doomed = cli_ok("token", "create", "--data-dir", str(data_dir), "--name", "doomed")
    good_token = created.stdout.strip()
    doomed_token = doomed.stdout.strip()
    doomed_id = doomed.stderr.split("created token ", 1)[1].split()[0]
    outputs += [cli_text(created, include_stdout=False), cli_text(doomed, include_stdout=False),
                cli_text(cli_ok("token", "revoke", doomed_id, "--data-dir", str(data_dir))),
                cli_text(cli_ok("token", "list", "--data-dir", str(data_dir)))]
    unknown_token = generate_token()
    authority = Authority(data_dir / "tls")
    server = launch_server(launched, data_dir, artifacts / "server.log", "--log-level", "debug",
                           "--server.tls.enabled", "true", "--server.tls.client_auth", "require",
                           "--server.auth.require_agent_token", "true")

    def agent(name: str, token: str) -> GosightProcess:
        token_file = tmp_path / f"{name}.token"
        certs.write_file(token_file, token.encode(), private=True)
        return launch_agent(launched, server.grpc, tmp_path / f"{name}-data", artifacts / f"{name}.log",
                            "--interval", "0.5", "--log-level", "debug",
                            "--agent.tls.ca_file", str(authority.ca_cert_path),
                            "--agent.tls.cert_file", str(authority.clients_dir / "web1.crt"),
                            "--agent.tls.key_file", str(authority.clients_dir / "web1.key"),
                            "--agent.token_file", str(token_file), "--agent.backoff.max_s", "1")

    agents = [agent("good", good_token), agent("revoked", doomed_token), agent("unknown", unknown_token)]
    wait_for(lambda: any(line.get("msg") == "export succeeded" for line in agents[0].lines),
             message="the good agent's first export")
    for rejected in agents[1:]:
        wait_for(lambda: any("rejected" in str(line.get("msg")) for line in rejected.lines),
                 message="the rejected agents' errors")
    check = cli_ok("check-config", "--role", "agent", "--server", "h", "--agent.token", good_token)
    outputs.append(cli_text(check))
    for proc in agents:
        proc.stop()
    server.proc.stop()

    logs = {proc.log_path.name: proc.log_text() for proc in [server.proc, *agents]}
    logs.update({f"command output {index}": text for index, text in enumerate(outputs)})
    secrets = {"good token": good_token, "revoked token": doomed_token, "unknown token": unknown_token}
    for key_path in (authority.ca_key_path, authority.server_key_path, authority.clients_dir / "web1.key"):
        for index, form in enumerate(key_forms(key_path)):
            secrets[f"{key_path.name} form {index}"] = form
    assert "agent.token = (hidden)" in check.stdout
    for source, text in logs.items():
        assert "PRIVATE KEY" not in text, f"a PEM private key marker in {source}"
        for label, secret in secrets.items():
            assert secret not in text, f"the {label} appears in {source}"
