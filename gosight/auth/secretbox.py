"""Encryption at rest of small secrets (TOTP seeds) with a key kept in the data directory.

The key is 32 random bytes in `<data_dir>/auth.key`, mode 0600, created by the first
process that needs it (the server or a `gosight user` command). Values are sealed
with AES-256-GCM and bound to their owner (the user id) as associated data, so a
sealed value copied onto another user's row does not open. A copy of meta.sqlite
without auth.key reveals no TOTP seed; back both up together, or TOTP stops working.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "auth.key"
KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = "v1"


class SecretBoxError(Exception):
    """A sealed value cannot be opened: wrong key, another owner, or damaged."""


class SecretBox:
    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise SecretBoxError(f"the key must be {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        return cls(load_or_create_key(data_dir / KEY_FILE))

    def seal(self, plaintext: str, owner: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), owner.encode("utf-8"))
        return f"{VERSION}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, sealed: str, owner: str) -> str:
        version, _, body = sealed.partition(":")
        if version != VERSION:
            raise SecretBoxError(f"unknown sealed value version {version!r}")
        try:
            raw = base64.b64decode(body, validate=True)
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode("utf-8"))
        except Exception as error:  # noqa: BLE001 - binascii and InvalidTag both mean "cannot open"
            raise SecretBoxError(f"cannot open a sealed value: {type(error).__name__}; was {KEY_FILE} replaced?") \
                from None
        return plain.decode("utf-8")


def load_or_create_key(path: Path) -> bytes:
    """Read the key file, or create it when missing.

    The key is written to a temporary file and then hard-linked into place, which
    fails when the file exists: two processes starting at once agree on one key, and
    no process ever reads a half-written file.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise SecretBoxError(f"{path} holds {len(key)} bytes instead of {KEY_BYTES}; restore it from a backup")
    return key
