"""The agent's side of transport security: trust roots, client certificates, tokens, error hints.

With a pinned CA fingerprint (`agent.tls.ca_fingerprint`) the agent needs no file from
the server. It opens one TLS connection to the gRPC port without verifying it, reads
the certificate chain the server presents (the server sends its CA after its own
certificate), and keeps the certificate whose SHA-256 fingerprint equals the pin. That
certificate becomes the trust root of the real gRPC channel, which verifies the server
as usual, and is saved in the agent's data directory for later starts. An attacker in
the middle cannot produce a certificate with the pinned fingerprint, so the pin
protects the first contact as well as later ones.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import stat
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from gosight.config import Config, split_host_port
from gosight.security.headers import AGENT_ID_HEADER, AUTHORIZATION_HEADER

if TYPE_CHECKING:
    from cryptography import x509

# The cryptography package and gosight.security.certs, which uses it, are imported inside
# the functions that need them: an agent without TLS never loads them, which keeps its
# memory small.

log = logging.getLogger(__name__)

PINNED_CA_FILE = "server-ca.crt"
FETCH_TIMEOUT_S = 10.0


class AgentSecurityError(Exception):
    """The agent's TLS or token settings cannot be used; the message names the setting."""


class PinMismatch(Exception):
    """The server presented no certificate with the pinned fingerprint."""


@dataclass
class AgentSecurity:
    """The agent's credentials, loaded at start; the pinned CA may still have to be fetched."""

    tls: bool
    # Kept out of repr(), so printing this object does not show the secrets.
    token: str | None = field(default=None, repr=False)
    ca_pem: bytes | None = None
    ca_fingerprint: str | None = None
    pinned_ca_path: Path | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)
    server_name: str = ""

    def call_metadata(self, agent_id: str) -> tuple[tuple[str, str], ...]:
        metadata = ((AGENT_ID_HEADER, agent_id),)
        if self.token:
            metadata = ((AUTHORIZATION_HEADER, f"Bearer {self.token}"),) + metadata
        return metadata

    def needs_fetch(self) -> bool:
        return self.tls and self.ca_pem is None and self.ca_fingerprint is not None

    def open_channel(self, target: str, options: list[tuple[str, object]]) -> grpc.aio.Channel:
        if not self.tls:
            return grpc.aio.insecure_channel(target, options=options)
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca_pem, private_key=self.key_pem,
                                                   certificate_chain=self.cert_pem)
        if self.server_name:
            options = [*options, ("grpc.ssl_target_name_override", self.server_name)]
        return grpc.aio.secure_channel(target, credentials, options=options)

    def hint(self, details: str) -> str | None:
        """Return advice for a failed connection's error details, or None when there is none to give."""
        return connection_hint(details, tls=self.tls, client_cert=self.cert_pem is not None,
                               pinned=self.ca_fingerprint is not None)

    async def ensure_pinned_ca(self, server: str, wait: Callable[[float], Awaitable[bool]],
                              next_delay: Callable[[], float]) -> bool:
        """Fetch the server's CA until it matches the pin; return False when `wait` reports a stop.

        `wait(delay)` sleeps between attempts and returns True when the agent is stopping.
        """
        while True:
            try:
                ca = await asyncio.to_thread(fetch_pinned_ca, server, self.ca_fingerprint, self.server_name,
                                             self.cert_pem, self.key_pem)
            except PinMismatch as error:
                log.error("server certificate does not match the pinned fingerprint; will retry", extra={"fields": {
                    "server": server, "error": str(error)}})
            except (OSError, ssl.SSLError, ValueError) as error:
                # ValueError: the server sent a certificate that cannot be parsed.
                log.warning("fetching the server's CA certificate failed; will retry", extra={"fields": {
                    "server": server, "error": f"{type(error).__name__}: {error}"}})
            else:
                from gosight.security import certs

                self.ca_pem = certs.pem_certs([ca])
                if self.pinned_ca_path is not None:
                    _save_pinned_ca(self.pinned_ca_path, self.ca_pem)
                log.info("server CA certificate matches the pinned fingerprint", extra={"fields": {
                    "ca_fingerprint": self.ca_fingerprint, "saved_to": str(self.pinned_ca_path)}})
                return True
            if await wait(next_delay()):
                return False


def tls_enabled(config: Config) -> bool:
    """Return whether the agent uses TLS: set explicitly, or implied by any CA or certificate setting."""
    return bool(config["agent.tls.enabled"] or config["agent.tls.ca_file"] or config["agent.tls.ca_fingerprint"]
                or config["agent.tls.cert_file"])


def load_agent_security(config: Config, data_dir: Path) -> AgentSecurity:
    """Read the agent's token and TLS files; raise AgentSecurityError naming the setting at fault."""
    security = AgentSecurity(tls=tls_enabled(config), token=_load_token(config),
                             server_name=config["agent.tls.server_name"])
    if not security.tls:
        return security
    if config["agent.tls.ca_file"]:
        security.ca_pem = _read_certs_pem(Path(config["agent.tls.ca_file"]), "agent.tls.ca_file")
    if config["agent.tls.cert_file"]:
        security.cert_pem = _read_certs_pem(Path(config["agent.tls.cert_file"]), "agent.tls.cert_file")
        security.key_pem = _read_key_pem(Path(config["agent.tls.key_file"]), security.cert_pem)
    pin = config["agent.tls.ca_fingerprint"]
    if pin:
        security.ca_fingerprint = pin
        security.pinned_ca_path = data_dir / "tls" / PINNED_CA_FILE
        security.ca_pem = _load_pinned_ca(security.pinned_ca_path, pin)
    return security


def fetch_pinned_ca(server: str, pin: str, server_name: str = "", cert_pem: bytes | None = None,
                    key_pem: bytes | None = None, timeout_s: float = FETCH_TIMEOUT_S) -> x509.Certificate:
    """Read the chain the server presents and return its CA certificate that matches `pin`.

    Blocking. Raises PinMismatch when no certificate matches, OSError or ssl.SSLError
    when the handshake fails.
    """
    from gosight.security import certs

    chain = read_presented_chain(server, server_name, cert_pem, key_pem, timeout_s)
    for cert in chain:
        if certs.fingerprint(cert) == pin:
            if not certs.is_ca(cert):
                raise PinMismatch(f"the certificate with fingerprint {pin} is not a CA certificate; pin the "
                                  "fingerprint of the server's CA, which 'gosight certs fingerprint' prints")
            return cert
    raise PinMismatch(
        f"the server presented {len(chain)} certificate(s) and none has fingerprint {pin}; compare "
        "agent.tls.ca_fingerprint with the ca_fingerprint in the server's 'tls enabled' log line or the output of "
        "'gosight certs fingerprint' on the server, and check that agent.server names the right server")


def read_presented_chain(server: str, server_name: str = "", cert_pem: bytes | None = None,
                         key_pem: bytes | None = None, timeout_s: float = FETCH_TIMEOUT_S) -> list[x509.Certificate]:
    """Open a TLS connection without verification and return the certificates the server sent."""
    host, port = split_host_port(server, 4317)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Nothing is trusted on this connection: it only reads certificates, which are checked against the pin.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if cert_pem and key_pem:
        _load_client_cert(context, cert_pem, key_pem)
    sni = server_name or (host if not _is_ip(host) else None)
    with socket.create_connection((host.strip("[]"), port), timeout=timeout_s) as raw:
        with context.wrap_socket(raw, server_hostname=sni) as tls:
            return _unverified_chain(tls)


def connection_hint(details: str, *, tls: bool, client_cert: bool, pinned: bool) -> str | None:
    """Turn gRPC's connection error details into advice naming the settings to check."""
    trust = "agent.tls.ca_fingerprint" if pinned else "agent.tls.ca_file"
    if "WRONG_VERSION_NUMBER" in details:
        return ("the server does not speak TLS on this port: enable server.tls.enabled on the server, or turn "
                "TLS off on the agent")
    if "Hostname Verification" in details or "Peer name" in details:
        return ("the server's certificate does not name the host in agent.server: set agent.tls.server_name to a "
                "name in the certificate, or add the name to server.tls.cert_hosts and renew the server certificate")
    if "CERTIFICATE_VERIFY_FAILED" in details:
        return (f"the server's certificate is not trusted (signed by another CA, or expired): check {trust} "
                "against the server's CA")
    if "Socket closed" in details or "Connection reset" in details:
        if not tls:
            return ("the server closed the connection; if it runs with server.tls.enabled, turn TLS on for the "
                    "agent (agent.tls.ca_fingerprint or agent.tls.ca_file)")
        if client_cert:
            return ("the server closed the connection during the TLS handshake: it may have rejected this agent's "
                    "client certificate (issued by another CA, or expired); the server's log names the reason")
        return ("the server closed the connection during the TLS handshake: it may require a client certificate "
                "(set agent.tls.cert_file and agent.tls.key_file)")
    return None


def _unverified_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    from cryptography import x509

    # Python 3.13 made get_unverified_chain() public, returning DER bytes. Python 3.11 (and 3.12) have it only
    # on the private _sslobj, returning certificate objects with public_bytes().
    reader = getattr(tls, "get_unverified_chain", None) or getattr(tls._sslobj, "get_unverified_chain", None)
    if reader is None:
        raise PinMismatch("this Python cannot read the server's certificate chain; copy the server's ca.crt to "
                          "the agent and set agent.tls.ca_file instead of agent.tls.ca_fingerprint")
    chain = []
    for item in reader() or ():
        der = item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER)
        chain.append(x509.load_der_x509_certificate(der))
    return chain


def _load_client_cert(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    # ssl.SSLContext reads certificates only from files; a private temporary directory keeps the key unreadable
    # by others for the moment it exists.
    from gosight.security import certs

    with tempfile.TemporaryDirectory(prefix="gosight-tls-") as directory:
        cert_path = Path(directory) / "client.crt"
        key_path = Path(directory) / "client.key"
        certs.write_file(cert_path, cert_pem, private=True)
        certs.write_file(key_path, key_pem, private=True)
        context.load_cert_chain(cert_path, key_path)


def _load_token(config: Config) -> str | None:
    token = config["agent.token"]
    path = config["agent.token_file"]
    if path:
        token_path = Path(path)
        try:
            token = token_path.read_text(encoding="utf-8").strip()
            mode = token_path.stat().st_mode
        except FileNotFoundError:
            raise AgentSecurityError(f"agent.token_file {path} not found; create a token with 'gosight token "
                                     "create' on the server and save it there") from None
        except (OSError, UnicodeDecodeError) as error:
            raise AgentSecurityError(f"cannot read agent.token_file {path}: {error}") from None
        if not token:
            raise AgentSecurityError(f"agent.token_file {path} is empty; save the token from 'gosight token create' "
                                     "in it")
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("the token file is readable by other users; restrict it with chmod 600",
                        extra={"fields": {"path": path}})
    if token and any(character.isspace() for character in token.strip()):
        raise AgentSecurityError("the agent token contains white space; copy it exactly as 'gosight token create' "
                                 "printed it")
    return token.strip() if token else None


def _read_certs_pem(path: Path, setting: str) -> bytes:
    from gosight.security import certs

    try:
        loaded = certs.load_certs(path)
    except certs.CertificateError as error:
        raise AgentSecurityError(f"{setting}: {error}") from None
    if not loaded:
        raise AgentSecurityError(f"{setting}: {path} contains no PEM certificate")
    return certs.pem_certs(loaded)


def _read_key_pem(path: Path, cert_pem: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from gosight.security import certs

    try:
        data = certs.read_file(path)
        key = serialization.load_pem_private_key(data, password=None)
    except certs.CertificateError as error:
        raise AgentSecurityError(f"agent.tls.key_file: {error}") from None
    except (ValueError, TypeError) as error:
        raise AgentSecurityError(f"agent.tls.key_file: {path} is not an unencrypted PEM private key: {error}") from None
    leaf = x509.load_pem_x509_certificate(cert_pem)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != leaf.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise AgentSecurityError(f"agent.tls.key_file: the key in {path} does not belong to the certificate in "
                                 "agent.tls.cert_file")
    return data


def _load_pinned_ca(path: Path, pin: str) -> bytes | None:
    """Return the CA saved by an earlier start if it still matches the pin; None means fetch it again."""
    from gosight.security import certs

    try:
        saved = certs.load_certs(path)
    except certs.CertificateError:
        return None
    matching = [cert for cert in saved if certs.fingerprint(cert) == pin]
    if not matching:
        log.info("saved server CA does not match the pinned fingerprint; fetching it again",
                 extra={"fields": {"path": str(path)}})
        return None
    return certs.pem_certs(matching)


def _save_pinned_ca(path: Path, pem: bytes) -> None:
    from gosight.security import certs

    try:
        certs.ensure_private_dir(path.parent)
        certs.write_file(path, pem, private=False, force=True)
    except OSError as error:
        log.warning("saving the server's CA certificate failed; it will be fetched again on the next start",
                    extra={"fields": {"path": str(path), "error": str(error)}})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
