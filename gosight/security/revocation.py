"""The server's view of the certificate revocation list.

gRPC's Python API verifies client certificates against a CA but offers no hook for
revocation lists, so the server checks each call's client certificate serial against
this list. The list is a standard PEM CRL signed by the client CA; `gosight certs
revoke` writes it, and any other CA tooling can too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography import x509

from gosight.logconfig import Throttle
from gosight.security import certs
from gosight.security.certs import CertificateError

log = logging.getLogger(__name__)


class RevocationList:
    """Revoked serial numbers, re-read whenever the CRL file changes.

    `is_revoked` costs one stat() call while the file is unchanged, so a revocation
    applies from the next call without a restart. A missing file means nothing is
    revoked. When a changed file cannot be read or is not signed by a trusted CA,
    the previous list stays in force and the error is logged.
    """

    def __init__(self, path: Path, issuers: list[x509.Certificate]):
        self.path = path
        self.issuers = issuers
        self._serials: frozenset[int] = frozenset()
        self._stamp: tuple[int, int, int] | None = None
        self._throttle = Throttle(60.0)

    def load(self) -> int:
        """Read the list now; raise CertificateError when it is invalid. Return the number of revoked serials."""
        stamp = self._stat()
        self._serials = self._read() if stamp is not None else frozenset()
        self._stamp = stamp
        return len(self._serials)

    def is_revoked(self, serial: int) -> bool:
        self._refresh()
        return serial in self._serials

    def __len__(self) -> int:
        return len(self._serials)

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        if stamp is None:
            self._serials = frozenset()
            self._stamp = None
            log.info("certificate revocation list removed; no certificate is revoked",
                     extra={"fields": {"path": str(self.path)}})
            return
        try:
            serials = self._read()
        except CertificateError as error:
            # Remember this version of the file so it is not parsed again on every call.
            self._stamp = stamp
            suppressed = self._throttle.allow("invalid")
            if suppressed is not None:
                log.error("certificate revocation list is invalid; keeping the previous one", extra={"fields": {
                    "path": str(self.path), "error": str(error), "revoked": len(self._serials),
                    "suppressed": suppressed}})
            return
        self._stamp = stamp
        added = len(serials - self._serials)
        self._serials = serials
        log.info("certificate revocation list reloaded", extra={"fields": {
            "path": str(self.path), "revoked": len(serials), "added": added}})

    def _read(self) -> frozenset[int]:
        crl = certs.load_crl(self.path)
        if not any(crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())
                   for issuer in self.issuers):
            raise CertificateError(f"{self.path} is not signed by a CA in server.tls.client_ca_file")
        return frozenset(entry.serial_number for entry in crl)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_mtime_ns, info.st_size, info.st_ino
