"""Password hashing and the password policy.

Hashes use scrypt from Python's standard library, with N=2^17, r=8, p=1: the
minimum that OWASP's Password Storage Cheat Sheet (2023) recommends for scrypt.
One hash then needs 128 MiB of memory and about 0.4 s of one core, which makes
guessing on GPUs expensive. scrypt rather than Argon2id because it needs no extra
native package in the single executable. The parameters are stored with each
hash, so they can be raised later and old hashes still verify.

The policy asks for at least `min_length` characters and rejects passwords found in
a bundled list of common and breached passwords (no network is needed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from functools import lru_cache
from pathlib import Path

SCRYPT_N = 1 << 17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_LENGTH = 1024
# Memory for one hash is 128 * N * r bytes (128 MiB); allow some headroom for OpenSSL.
_MAX_MEMORY = 256 << 20
# At most two hashes at once, so a burst of logins cannot take more than 256 MiB.
_HASH_SLOTS = threading.BoundedSemaphore(2)

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt")


class PasswordRejected(ValueError):
    """A new password breaks the policy; the message says which rule."""


def hash_password(password: str) -> str:
    """Return `scrypt$N$r$p$salt$hash` with a new random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str | None) -> bool:
    """Return whether `password` matches `stored`; a missing or malformed hash never matches.

    Without a stored hash, a dummy hash is still computed, so the time taken does not
    tell whether the account exists.
    """
    if not stored:
        _scrypt(password, b"\0" * SALT_BYTES, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def check_policy(password: str, min_length: int, username: str = "") -> None:
    """Raise PasswordRejected when `password` breaks the policy."""
    if len(password) < min_length:
        raise PasswordRejected(f"password too short: {len(password)} characters; use at least {min_length}")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"password too long: {len(password)} characters; use at most {MAX_LENGTH}")
    if password.strip() != password or not password.isprintable():
        raise PasswordRejected("password starts or ends with white space or contains control characters")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise PasswordRejected("password contains the user name; choose another one")
    if lowered in common_passwords():
        raise PasswordRejected("password is on the list of common and breached passwords; choose another one")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    with _HASH_SLOTS:
        return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEMORY,
                              dklen=KEY_BYTES)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
