"""The TLS directory shared by `gosight certs` and the server.

Layout (the directory has mode 0700, keys 0600, certificates 0644):

    ca.crt, ca.key          the certificate authority
    server.crt, server.key  the server certificate, followed in server.crt by the CA
                            certificate so agents that pin the CA can read it from the
                            TLS handshake
    ca.crl                  the certificate revocation list, signed by the CA
    clients/NAME.crt, .key  agent client certificates

Operations that change the directory hold an exclusive lock on `.lock`, so two
commands run at once cannot lose each other's revocations.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gosight.security import certs
from gosight.security.certs import CertificateError

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CRL = "ca.crl"
CLIENTS = "clients"

CLIENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass
class IssuedCertificate:
    name: str
    cert_path: Path
    key_path: Path | None
    cert: x509.Certificate

    @property
    def serial(self) -> str:
        return certs.format_serial(self.cert.serial_number)


@dataclass
class Revocation:
    serial: int
    name: str | None
    already_revoked: bool


def default_server_hosts(extra: Iterable[str] = ()) -> list[str]:
    """Return the names a server certificate should carry: this host's names, loopback, and `extra`."""
    hosts = [socket.gethostname()]
    fqdn = socket.getfqdn()
    if "." in fqdn and fqdn != "localhost":
        hosts.append(fqdn)
    hosts.extend(LOOPBACK_HOSTS)
    hosts.extend(extra)
    return list(dict.fromkeys(host for host in hosts if host and not _is_wildcard(host)))


class Authority:
    """A certificate authority kept in one directory."""

    def __init__(self, directory: Path):
        self.directory = directory

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / CA_CERT

    @property
    def ca_key_path(self) -> Path:
        return self.directory / CA_KEY

    @property
    def server_cert_path(self) -> Path:
        return self.directory / SERVER_CERT

    @property
    def server_key_path(self) -> Path:
        return self.directory / SERVER_KEY

    @property
    def crl_path(self) -> Path:
        return self.directory / CRL

    @property
    def clients_dir(self) -> Path:
        return self.directory / CLIENTS

    def has_ca(self) -> bool:
        cert, key = self.ca_cert_path.exists(), self.ca_key_path.exists()
        if cert != key:
            present, missing = (self.ca_cert_path, self.ca_key_path) if cert else (self.ca_key_path, self.ca_cert_path)
            raise CertificateError(f"{present} exists but {missing} does not; restore the missing file, or remove "
                                   f"{self.directory} to start over with a new certificate authority")
        return cert

    def load_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """Return the CA's key and certificate; raise CertificateError when they are missing."""
        if not self.has_ca():
            raise CertificateError(f"no certificate authority in {self.directory}; run 'gosight certs init' first")
        cert = certs.load_certs(self.ca_cert_path)[0]
        return certs.load_key(self.ca_key_path), cert

    def load_ca_cert(self) -> x509.Certificate:
        return certs.load_certs(self.ca_cert_path)[0]

    def init(self, hosts: Iterable[str], ca_validity_days: float, server_validity_days: float,
             force: bool = False) -> bool:
        """Create the CA (unless one exists) and the server certificate; return whether the CA was created.

        An existing server certificate is replaced only with `force`. The CA is never
        replaced here, because that would invalidate every certificate it issued.
        """
        with self._locked():
            existing = [path for path in (self.server_cert_path, self.server_key_path) if path.exists()]
            if existing and not force:
                raise FileExistsError(existing[0])
            created_ca = self._ensure_ca(ca_validity_days)
            self._write_server_cert(hosts, server_validity_days)
        return created_ca

    def ensure_server_files(self, hosts: Iterable[str], ca_validity_days: float,
                            server_validity_days: float) -> tuple[bool, bool]:
        """Create whichever of the CA and the server certificate is missing; return (CA created, server created)."""
        with self._locked():
            created_ca = self._ensure_ca(ca_validity_days)
            if created_ca or not (self.server_cert_path.exists() and self.server_key_path.exists()):
                self._write_server_cert(hosts, server_validity_days, force=True)
                return created_ca, True
        return False, False

    def issue(self, name: str, validity_days: float, *, force: bool = False,
              valid_from: datetime.datetime | None = None) -> IssuedCertificate:
        """Create a client certificate for the agent `name`, signed by the CA."""
        if not CLIENT_NAME_RE.match(name):
            raise ValueError(f"invalid certificate name {name!r}: expected 1 to 64 letters, digits, '.', '_' or "
                             "'-', starting with a letter or digit")
        with self._locked():
            ca_key, ca_cert = self.load_ca()
            cert_path, key_path = self._client_paths(name)
            if not force:
                for path in (cert_path, key_path):
                    if path.exists():
                        raise FileExistsError(path)
            key, cert = certs.create_client_cert(ca_key, ca_cert, name, validity_days, valid_from=valid_from)
            certs.ensure_private_dir(self.clients_dir)
            certs.write_file(key_path, certs.pem_key(key), private=True, force=force)
            certs.write_file(cert_path, certs.pem_certs([cert]), private=False, force=force)
        return IssuedCertificate(name, cert_path, key_path, cert)

    def issued(self) -> list[IssuedCertificate]:
        """Return the client certificates in the clients directory, by name."""
        found = []
        for cert_path in sorted(self.clients_dir.glob("*.crt")):
            key_path = cert_path.with_suffix(".key")
            found.append(IssuedCertificate(cert_path.stem, cert_path, key_path if key_path.exists() else None,
                                           certs.load_certs(cert_path)[0]))
        return found

    def revoked(self) -> dict[int, datetime.datetime]:
        """Return revoked serial numbers with their revocation times, from the signed list."""
        if not self.crl_path.exists():
            return {}
        crl = certs.load_crl(self.crl_path)
        ca_cert = self.load_ca_cert()
        if not crl.is_signature_valid(ca_cert.public_key()):
            raise CertificateError(f"{self.crl_path} is not signed by {self.ca_cert_path}; remove it or restore "
                                   "the matching certificate authority")
        return {entry.serial_number: entry.revocation_date_utc for entry in crl}

    def revoke(self, name_or_serial: str) -> Revocation:
        """Add a client certificate, given by name or hexadecimal serial, to the revocation list."""
        with self._locked():
            serial, name = self._resolve(name_or_serial)
            ca_key, ca_cert = self.load_ca()
            revoked = self.revoked()
            if serial in revoked:
                return Revocation(serial, name, already_revoked=True)
            revoked[serial] = datetime.datetime.now(datetime.timezone.utc)
            number = self._crl_number() + 1
            crl = certs.create_crl(ca_key, ca_cert, sorted(revoked.items()), number)
            certs.write_file(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), private=False,
                             force=True)
        return Revocation(serial, name, already_revoked=False)

    def _resolve(self, name_or_serial: str) -> tuple[int, str | None]:
        if CLIENT_NAME_RE.match(name_or_serial):
            cert_path, _ = self._client_paths(name_or_serial)
            if cert_path.exists():
                return certs.load_certs(cert_path)[0].serial_number, name_or_serial
        try:
            serial = certs.parse_serial(name_or_serial)
        except ValueError:
            raise CertificateError(f"no certificate named {name_or_serial!r} in {self.clients_dir}, and it is not "
                                   "a hexadecimal serial number; 'gosight certs list' shows both") from None
        names = [issued.name for issued in self.issued() if issued.cert.serial_number == serial]
        return serial, names[0] if names else None

    def _crl_number(self) -> int:
        if not self.crl_path.exists():
            return 0
        try:
            extension = certs.load_crl(self.crl_path).extensions.get_extension_for_class(x509.CRLNumber)
        except x509.ExtensionNotFound:
            return 0
        return extension.value.crl_number

    def _ensure_ca(self, validity_days: float) -> bool:
        if self.has_ca():
            return False
        key, cert = certs.create_ca(f"GoSight CA {socket.gethostname()}", validity_days)
        certs.write_file(self.ca_key_path, certs.pem_key(key), private=True)
        certs.write_file(self.ca_cert_path, certs.pem_certs([cert]), private=False)
        return True

    def _write_server_cert(self, hosts: Iterable[str], validity_days: float, force: bool = True) -> None:
        ca_key, ca_cert = self.load_ca()
        key, cert = certs.create_server_cert(ca_key, ca_cert, hosts, validity_days)
        certs.write_file(self.server_key_path, certs.pem_key(key), private=True, force=force)
        certs.write_file(self.server_cert_path, certs.pem_certs([cert, ca_cert]), private=False, force=force)

    def _client_paths(self, name: str) -> tuple[Path, Path]:
        return self.clients_dir / f"{name}.crt", self.clients_dir / f"{name}.key"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        certs.ensure_private_dir(self.directory)
        with open(self.directory / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False
