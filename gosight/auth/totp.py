"""TOTP (RFC 6238) codes with pyotp, and the enrolment QR code drawn as SVG with segno.

Codes have 6 digits and a 30 s step. A code is accepted for the current step and
one step either side, for clocks that drift; the caller then records the step, so
each code works once (see AuthStore.use_totp_step).
"""

from __future__ import annotations

import base64
import hmac
import io
import time

import pyotp
import segno

ISSUER = "GoSight"
# One step either side of now: a code is valid for up to 90 s.
WINDOW_STEPS = 1


def new_seed() -> str:
    """Return a random base32 seed of 160 bits, the length RFC 4226 recommends."""
    return pyotp.random_base32(32)


def provisioning_uri(seed: str, username: str) -> str:
    return pyotp.TOTP(seed).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg_data_url(uri: str) -> str:
    """Return the QR code of `uri` as a data: URL of an SVG image, drawn here without any network."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=5, border=4, dark="#000", light="#fff",
                                    xmldecl=False, nl=False)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def matching_step(seed: str, code: str, now_s: float | None = None) -> int | None:
    """Return the time step whose code equals `code`, or None when no step in the window matches."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(seed)
    current = totp.timecode(int(now_s if now_s is not None else time.time()))
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
