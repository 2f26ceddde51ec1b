"""Certificate fingerprints as GoSight writes them: `sha256:` and 64 lowercase hexadecimal digits.

Kept free of the cryptography package so configuration parsing stays light.
"""

from __future__ import annotations

import re

PREFIX = "sha256:"
_FINGERPRINT_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def normalize_fingerprint(text: str) -> str:
    """Return `text` in the `sha256:<hex>` form; colons between bytes and capital letters are accepted."""
    cleaned = text.strip().lower().replace(":", "")
    cleaned = cleaned.removeprefix("sha256")
    normalized = PREFIX + cleaned
    if not _FINGERPRINT_RE.match(normalized):
        raise ValueError("expected sha256: followed by 64 hexadecimal digits, as the server logs it at start and "
                         "'gosight certs fingerprint' prints it")
    return normalized
