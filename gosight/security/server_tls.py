"""The server's TLS set-up: which files to use, creating them on first start, credentials for both ports."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gosight.config import Config, split_host_port
from gosight.security import certs
from gosight.security.authority import Authority, default_server_hosts
from gosight.security.certs import CertificateError
from gosight.security.revocation import RevocationList

log = logging.getLogger(__name__)

CLIENT_AUTH_NONE = "none"
CLIENT_AUTH_REQUIRE = "require"
# TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are not affected by this string.
WEB_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
EXPIRY_WARNING = datetime.timedelta(days=30)


@dataclass
class ServerTLS:
    """Resolved TLS files of the server, loaded and checked."""

    cert_file: Path
    key_file: Path
    chain: list[x509.Certificate]
    client_auth: str
    client_ca_file: Path | None
    client_cas: list[x509.Certificate]
    crl_file: Path | None

    @property
    def ca_fingerprint(self) -> str | None:
        """Return the fingerprint of the CA certificate the server presents, which agents can pin."""
        authorities = [cert for cert in self.chain[1:] if certs.is_ca(cert)]
        return certs.fingerprint(authorities[-1]) if authorities else None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        require = self.client_auth == CLIENT_AUTH_REQUIRE
        return grpc.ssl_server_credentials(
            [(certs.read_file(self.key_file), certs.read_file(self.cert_file))],
            root_certificates=certs.pem_certs(self.client_cas) if require else None,
            require_client_auth=require)

    def uvicorn_options(self) -> dict:
        """Return uvicorn.Config keyword arguments for TLS on the web port.

        Python 3.10 and later default server contexts to TLS 1.2 as the minimum version.
        The web port never requests client certificates, so browsers can open the
        dashboard. OTLP/HTTP senders authenticate with tokens instead.
        """
        return {"ssl_certfile": str(self.cert_file), "ssl_keyfile": str(self.key_file),
                "ssl_version": ssl.PROTOCOL_TLS_SERVER, "ssl_cert_reqs": ssl.CERT_NONE, "ssl_ciphers": WEB_CIPHERS}

    def revocation_list(self) -> RevocationList | None:
        if self.client_auth != CLIENT_AUTH_REQUIRE or self.crl_file is None:
            return None
        revocations = RevocationList(self.crl_file, self.client_cas)
        revocations.load()
        return revocations


def tls_dir(config: Config) -> Path:
    return Path(config["server.tls.dir"]) if config["server.tls.dir"] else config.data_dir / "tls"


def server_cert_hosts(config: Config) -> list[str]:
    """Return the host names and addresses the server certificate that GoSight creates should carry."""
    extra = list(config["server.tls.cert_hosts"])
    for setting in ("server.grpc.listen", "server.http.listen"):
        host, _ = split_host_port(config[setting])
        if host and not _is_unspecified(host):
            extra.append(host)
    return default_server_hosts(extra)


def prepare_server_tls(config: Config) -> ServerTLS | None:
    """Resolve, create when missing (first start) and check the server's TLS files; None when TLS is off.

    Raises CertificateError naming the file and the setting to change.
    """
    if not config["server.tls.enabled"]:
        return None
    directory = tls_dir(config)
    authority = Authority(directory)
    cert_file = Path(config["server.tls.cert_file"]) if config["server.tls.cert_file"] else None
    key_file = Path(config["server.tls.key_file"]) if config["server.tls.key_file"] else None
    if cert_file is None:
        created_ca, created_server = authority.ensure_server_files(
            server_cert_hosts(config), config["server.tls.ca_validity_days"], config["server.tls.cert_validity_days"])
        if created_ca:
            log.info("tls certificate authority created", extra={"fields": {
                "ca_file": str(authority.ca_cert_path),
                "ca_fingerprint": certs.fingerprint(authority.load_ca_cert())}})
        if created_server:
            log.info("tls server certificate created", extra={"fields": {
                "cert_file": str(authority.server_cert_path), "hosts": ",".join(server_cert_hosts(config))}})
        cert_file, key_file = authority.server_cert_path, authority.server_key_path

    chain = certs.load_certs(cert_file)
    _check_key_matches(chain[0], key_file, cert_file)
    client_auth = config["server.tls.client_auth"]
    client_ca_file = None
    client_cas: list[x509.Certificate] = []
    crl_file = None
    if client_auth == CLIENT_AUTH_REQUIRE:
        client_ca_file = Path(config["server.tls.client_ca_file"] or authority.ca_cert_path)
        client_cas = certs.load_certs(client_ca_file)
        crl_file = Path(config["server.tls.crl_file"]) if config["server.tls.crl_file"] else authority.crl_path
    tls = ServerTLS(cert_file=cert_file, key_file=key_file, chain=chain, client_auth=client_auth,
                    client_ca_file=client_ca_file, client_cas=client_cas, crl_file=crl_file)
    _log_tls(tls)
    return tls


def _check_key_matches(leaf: x509.Certificate, key_file: Path, cert_file: Path) -> None:
    data = certs.read_file(key_file)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"{key_file} is not an unencrypted PEM private key: {error}; check "
                               "server.tls.key_file") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != leaf.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise CertificateError(f"the key in {key_file} does not belong to the first certificate in {cert_file}; "
                               "check server.tls.cert_file and server.tls.key_file")


def _log_tls(tls: ServerTLS) -> None:
    leaf = tls.chain[0]
    fields = {"cert_file": str(tls.cert_file), "client_auth": tls.client_auth,
              "not_after": leaf.not_valid_after_utc.isoformat()}
    fingerprint = tls.ca_fingerprint
    if fingerprint:
        fields["ca_fingerprint"] = fingerprint
    if tls.client_ca_file is not None:
        fields["client_ca_file"] = str(tls.client_ca_file)
        fields["crl_file"] = str(tls.crl_file)
    log.info("tls enabled", extra={"fields": fields})
    if fingerprint is None:
        log.warning("the server certificate file contains no CA certificate after the server's own, so agents "
                    "cannot pin a fingerprint; give them the CA file with agent.tls.ca_file",
                    extra={"fields": {"cert_file": str(tls.cert_file)}})
    remaining = leaf.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    if remaining < EXPIRY_WARNING:
        log.warning("server certificate expires soon; renew it with 'gosight certs init --force'",
                    extra={"fields": {"cert_file": str(tls.cert_file),
                                      "not_after": leaf.not_valid_after_utc.isoformat()}})


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False
