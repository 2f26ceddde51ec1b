"""The built-in CA: files and modes, names in certificates, revocation, fingerprints, the certs CLI."""

import datetime
import hashlib
import ipaddress
import socket
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gosight.config import ConfigError, load_config
from gosight.security import certs
from gosight.security.authority import Authority
from gosight.security.certs import CertificateError
from gosight.security.fingerprints import normalize_fingerprint
from gosight.security.revocation import RevocationList
from tests.security.support import cli_ok, run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def san_values(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in names}


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    created = Authority(tmp_path / "tls")
    created.init(["localhost", "127.0.0.1", "::1", "gosight.example", "10.0.0.5"], 365, 30)
    return created


def test_init_writes_private_files(authority: Authority):
    assert mode(authority.directory) == 0o700
    assert mode(authority.ca_key_path) == 0o600
    assert mode(authority.server_key_path) == 0o600
    assert mode(authority.ca_cert_path) == 0o644
    assert mode(authority.server_cert_path) == 0o644


def test_server_cert_names_and_chain(authority: Authority):
    chain = certs.load_certs(authority.server_cert_path)
    leaf, ca = chain

    assert len(chain) == 2, "the CA must follow the server certificate so agents can pin it"
    assert ca == authority.load_ca_cert()
    assert certs.is_ca(ca)
    assert not certs.is_ca(leaf)
    assert san_values(leaf) == {"localhost", "127.0.0.1", "::1", "gosight.example", "10.0.0.5"}
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    leaf.verify_directly_issued_by(ca)


def test_init_does_not_overwrite(authority: Authority):
    before = authority.server_cert_path.read_bytes()
    ca_before = authority.ca_cert_path.read_bytes()

    with pytest.raises(FileExistsError):
        authority.init(["localhost"], 365, 30)
    assert authority.server_cert_path.read_bytes() == before

    authority.init(["localhost"], 365, 30, force=True)
    assert authority.server_cert_path.read_bytes() != before
    assert authority.ca_cert_path.read_bytes() == ca_before, "--force must keep the CA"


def test_issue_client_certificate(authority: Authority):
    issued = authority.issue("web1", 10)

    assert mode(issued.key_path) == 0o600
    assert mode(authority.clients_dir) == 0o700
    assert certs.common_name(issued.cert) == "web1"
    usage = issued.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    issued.cert.verify_directly_issued_by(authority.load_ca_cert())
    with pytest.raises(FileExistsError):
        authority.issue("web1", 10)


@pytest.mark.parametrize("name", ["", "../evil", "a b", "-leading", "x" * 65])
def test_issue_rejects_invalid_names(authority: Authority, name: str):
    with pytest.raises(ValueError, match="invalid certificate name"):
        authority.issue(name, 10)


def test_issue_in_the_past_is_expired(authority: Authority):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)

    issued = authority.issue("old", 1, valid_from=past)

    assert issued.cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc)


def test_revoke_by_name_and_serial(authority: Authority):
    first = authority.issue("web1", 10)
    second = authority.issue("web2", 10)

    by_name = authority.revoke("web1")
    by_serial = authority.revoke(second.serial.upper())
    again = authority.revoke("web1")

    assert by_name.serial == first.cert.serial_number
    assert by_name.name == "web1"
    assert by_serial.serial == second.cert.serial_number
    assert by_serial.name == "web2"
    assert again.already_revoked
    assert set(authority.revoked()) == {first.cert.serial_number, second.cert.serial_number}
    crl = certs.load_crl(authority.crl_path)
    assert crl.is_signature_valid(authority.load_ca_cert().public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2


def test_revoke_unknown_name(authority: Authority):
    with pytest.raises(CertificateError, match="no certificate named 'nobody'"):
        authority.revoke("nobody")


def test_revocation_list_reloads_on_change(authority: Authority):
    issued = authority.issue("web1", 10)
    revocations = RevocationList(authority.crl_path, [authority.load_ca_cert()])
    revocations.load()

    before = revocations.is_revoked(issued.cert.serial_number)
    authority.revoke("web1")
    after = revocations.is_revoked(issued.cert.serial_number)

    assert before is False
    assert after is True


def test_revocation_list_keeps_last_good_copy(authority: Authority, tmp_path: Path):
    issued = authority.issue("web1", 10)
    authority.revoke("web1")
    revocations = RevocationList(authority.crl_path, [authority.load_ca_cert()])
    revocations.load()
    foreign_key, foreign_ca = certs.create_ca("other", 10)
    forged = certs.create_crl(foreign_key, foreign_ca, [], 99)

    authority.crl_path.write_bytes(forged.public_bytes(serialization.Encoding.PEM))

    assert revocations.is_revoked(issued.cert.serial_number), "a CRL from another CA must not un-revoke"


def test_fingerprint_is_sha256_of_der(authority: Authority):
    ca = authority.load_ca_cert()
    expected = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()

    assert certs.fingerprint(ca) == "sha256:" + expected
    with_colons = "SHA256:" + ":".join(expected[i:i + 2].upper() for i in range(0, 64, 2))
    assert normalize_fingerprint(with_colons) == "sha256:" + expected


@pytest.mark.parametrize("text", ["", "sha256:abc", "md5:" + "0" * 32, "sha256:" + "g" * 64])
def test_fingerprint_rejects_invalid(text: str):
    with pytest.raises(ValueError, match="expected sha256:"):
        normalize_fingerprint(text)


@pytest.mark.parametrize("flags, expected", [
    ({"server.tls.cert_file": "a.crt"}, "server.tls.key_file: missing"),
    ({"server.tls.client_auth": "require"}, "client certificates need TLS"),
    ({"server.tls.enabled": "true", "server.tls.client_ca_file": "ca.crt"}, "server.tls.client_auth is none"),
    ({"server.tls.client_auth": "request"}, "expected one of none, require"),
    ({"server.auth.require_agent_token": "maybe"}, "expected one of auto, true, false"),
    ({"agent.tls.cert_file": "a.crt"}, "agent.tls.key_file: missing"),
    ({"agent.tls.ca_fingerprint": "sha256:12"}, "expected sha256: followed by 64"),
    ({"agent.tls.ca_file": "ca.crt", "agent.tls.ca_fingerprint": "sha256:" + "a" * 64}, "keep only one"),
    ({"agent.token": "x", "agent.token_file": "f"}, "keep only one"),
])
def test_invalid_security_settings(flags: dict, expected: str):
    with pytest.raises(ConfigError) as caught:
        load_config(["server", "agent"], env={}, flags={"agent.server": "h", **flags})

    assert any(expected in line for line in caught.value.problems), caught.value.problems


def test_cli_certs_flow(tmp_path: Path):
    data_dir = str(tmp_path / "data")

    init = cli_ok("certs", "init", "--data-dir", data_dir, "--host", "metrics.example", "--host", "192.0.2.7")
    again = run_cli("certs", "init", "--data-dir", data_dir)
    issue = cli_ok("certs", "issue", "web1", "--data-dir", data_dir)
    revoke = cli_ok("certs", "revoke", "web1", "--data-dir", data_dir)
    listing = cli_ok("certs", "list", "--data-dir", data_dir)
    fingerprint = cli_ok("certs", "fingerprint", "--data-dir", data_dir)
    unknown = run_cli("certs", "revoke", "nobody", "--data-dir", data_dir)

    authority = Authority(tmp_path / "data" / "tls")
    leaf = certs.load_certs(authority.server_cert_path)[0]
    expected_fingerprint = certs.fingerprint(authority.load_ca_cert())
    assert f"CA fingerprint: {expected_fingerprint}" in init.stdout
    assert {"metrics.example", "192.0.2.7", "localhost", "127.0.0.1", "::1", socket.gethostname().lower()} <= \
        san_values(leaf)
    assert ipaddress.ip_address("::1") in leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert again.returncode == 1
    assert "already exists; pass --force" in again.stderr
    assert "issued web1: serial" in issue.stdout
    assert "revoked certificate" in revoke.stdout
    assert "(web1)" in revoke.stdout
    assert "web1" in listing.stdout
    assert "revoked" in listing.stdout
    assert fingerprint.stdout.strip() == expected_fingerprint
    assert unknown.returncode == 1
    assert "no certificate named 'nobody'" in unknown.stderr
    for result in (init, again, issue, revoke, listing, fingerprint, unknown):
        assert "Traceback" not in result.stderr
        assert "PRIVATE KEY" not in result.stdout + result.stderr


@pytest.mark.parametrize("days", ["0.0001", "-1", "40000", "soon"])
def test_cli_certs_validity_bounds(tmp_path: Path, days: str):
    result = run_cli("certs", "issue", "agent1", "--days", days, "--data-dir", str(tmp_path))

    assert result.returncode == 2
    assert f"argument --days: invalid validity '{days}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.crt")), "no certificate is written"
