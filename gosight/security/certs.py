"""X.509 material for GoSight's built-in certificate authority.

Keys are ECDSA on the P-256 curve: gRPC's TLS stack and Python's ssl module both accept
it in TLS 1.2 and 1.3, and its signatures are far cheaper to make than RSA ones of
similar strength. Every function here is pure apart from the file helpers at the end.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gosight.security import fingerprints

# Certificates start this long before "now" so a peer whose clock is a little behind accepts them.
CLOCK_SKEW = datetime.timedelta(minutes=5)
ORGANIZATION = "GoSight"


class CertificateError(Exception):
    """Raised when a certificate, key or revocation list is missing, unreadable or invalid; the message names it."""


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create_ca(common_name: str, validity_days: float, *, valid_from: datetime.datetime | None = None,
              key: ec.EllipticCurvePrivateKey | None = None
              ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create a self-signed CA that may sign leaf certificates only (path length 0)."""
    key = key or generate_key()
    name = _name(common_name)
    builder = (
        _builder(name, name, key.public_key(), validity_days, valid_from)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return key, builder.sign(key, hashes.SHA256())


def create_server_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: Iterable[str],
                       validity_days: float, *, valid_from: datetime.datetime | None = None
                       ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create a server certificate whose subject alternative names are `hosts` (names and IP addresses)."""
    names = subject_alternative_names(hosts)
    if not names:
        raise CertificateError("a server certificate needs at least one host name or IP address")
    common_name = next((str(item.value) for item in names if isinstance(item, x509.DNSName)), str(names[0].value))
    key = generate_key()
    builder = (
        _leaf_builder(ca_key, ca_cert, common_name, key, validity_days, valid_from)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return key, builder.sign(ca_key, hashes.SHA256())


def create_client_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, name: str,
                       validity_days: float, *, valid_from: datetime.datetime | None = None
                       ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create an agent's client certificate with `name` as its common name."""
    key = generate_key()
    builder = (
        _leaf_builder(ca_key, ca_cert, name, key, validity_days, valid_from)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    return key, builder.sign(ca_key, hashes.SHA256())


def create_crl(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
               revoked: Iterable[tuple[int, datetime.datetime]], number: int) -> x509.CertificateRevocationList:
    """Sign a revocation list of (serial, revocation time) pairs, valid until the CA expires."""
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(max(ca_cert.not_valid_after_utc, now + datetime.timedelta(days=1)))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, revoked_at in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at).build())
    return builder.sign(ca_key, hashes.SHA256())


def subject_alternative_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Turn host names and IP addresses into SAN entries, dropping duplicates and keeping order."""
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in hosts:
        host = host.strip().strip("[]")
        if not host or host.lower() in seen:
            continue
        seen.add(host.lower())
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host.lower()))
    return names


def fingerprint(cert: x509.Certificate) -> str:
    """Return `sha256:<hex>` over the certificate's DER bytes, as `openssl x509 -fingerprint -sha256` computes."""
    return fingerprints.PREFIX + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def format_serial(serial: int) -> str:
    return f"{serial:x}"


def parse_serial(text: str) -> int:
    """Parse a serial number written in hexadecimal, with or without colons or a 0x prefix."""
    cleaned = text.strip().lower().replace(":", "")
    cleaned = cleaned.removeprefix("0x")
    if not cleaned or not re.fullmatch(r"[0-9a-f]+", cleaned):
        raise ValueError(f"invalid serial number {text!r}: expected hexadecimal digits")
    return int(cleaned, 16)


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def common_name(cert: x509.Certificate) -> str:
    attributes = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else ""


def pem_certs(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_certs(path: Path) -> list[x509.Certificate]:
    """Read every certificate of a PEM file, leaf first as TLS chains are written."""
    data = read_file(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise CertificateError(f"{path} is not a PEM certificate file: {error}") from None
    return certs


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = read_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"{path} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{path} contains a {type(key).__name__} key; the certificate authority signs with "
                               "ECDSA")
    return key


def load_crl(path: Path) -> x509.CertificateRevocationList:
    data = read_file(path)
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError as error:
        raise CertificateError(f"{path} is not a PEM certificate revocation list: {error}") from None


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{path} not found") from None
    except OSError as error:
        raise CertificateError(f"cannot read {path}: {error.strerror}") from None


def write_file(path: Path, data: bytes, *, private: bool, force: bool = False) -> None:
    """Write `data` to `path` atomically; keys get mode 0600, certificates 0644.

    Raises FileExistsError when `path` exists and `force` is false, so nothing is
    replaced by accident. The temporary file is created with the final mode, so a
    key is never readable by others, even for a moment.
    """
    if path.exists() and not force:
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def ensure_private_dir(path: Path) -> Path:
    """Create `path` with mode 0700, and tighten an existing directory that others can read."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, validity_days: float,
             valid_from: datetime.datetime | None) -> x509.CertificateBuilder:
    start = valid_from or (_now() - CLOCK_SKEW)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=validity_days))
    )


def _leaf_builder(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common: str,
                  key: ec.EllipticCurvePrivateKey, validity_days: float,
                  valid_from: datetime.datetime | None) -> x509.CertificateBuilder:
    return (
        _builder(_name(common), ca_cert.subject, key.public_key(), validity_days, valid_from)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=crl_sign, encipher_only=False, decipher_only=False)
