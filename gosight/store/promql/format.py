"""Float formatting that matches Go's, for messages, labels and the HTTP API."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def _shortest_digits(value: float) -> tuple[str, int, bool]:
    """Return the shortest round-trip digits, the decimal exponent of the first digit, and the sign."""
    sign, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(str(digit) for digit in digits).rstrip("0") or "0"
    first_exponent = len(digits) + exponent - 1
    return text, first_exponent, math.copysign(1.0, value) < 0


def _exponent_form(digits: str, exponent: int, negative: bool) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exponent < 0 else "+"
    return f"{'-' if negative else ''}{mantissa}e{sign}{abs(exponent):02d}"


def _positional_form(digits: str, exponent: int, negative: bool) -> str:
    if exponent >= 0:
        whole = digits[:exponent + 1].ljust(exponent + 1, "0")
        fraction = digits[exponent + 1:]
    else:
        whole = "0"
        fraction = "0" * (-exponent - 1) + digits
    text = whole + ("." + fraction if fraction else "")
    return ("-" if negative else "") + text


def go_float(value: float) -> str:
    """Format like Go's fmt %g: shortest digits, exponent form below 1e-4 or from 1e6 on."""
    value = float(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exponent, negative = _shortest_digits(value)
    if exponent < -4 or exponent >= 6:
        return _exponent_form(digits, exponent, negative)
    return _positional_form(digits, exponent, negative)


def label_float(value: float) -> str:
    """Format like Go's strconv.FormatFloat(v, 'f', -1, 64), as count_values writes its label."""
    value = float(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    return _positional_form(*_shortest_digits(value))


def api_float(value: float) -> str:
    """Format a sample value as the Prometheus API does: exponent form below 1e-6 and from 1e21 on."""
    value = float(value)
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exponent, negative = _shortest_digits(value)
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        return _exponent_form(digits, exponent, negative)
    return _positional_form(digits, exponent, negative)


# Integers up to this size print exactly through int64 conversion.
_EXACT_INTEGER = 2.0 ** 53


def api_floats(values: np.ndarray) -> list[str]:
    """`api_float` for an array; whole numbers, the common case, take a vectorised path."""
    values = np.asarray(values, dtype=np.float64)
    out: list[str] = [""] * values.shape[0]
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < _EXACT_INTEGER)
    whole &= ~((values == 0) & np.signbit(values))
    whole_index = np.flatnonzero(whole)
    if whole_index.size:
        texts = values[whole_index].astype(np.int64).astype(str).tolist()
        for index, text in zip(whole_index.tolist(), texts):
            out[index] = text
    rest = np.flatnonzero(~whole)
    with np.errstate(invalid="ignore"):
        # Python's repr is the shortest round-trip form too, and positional in this range.
        plain = (np.abs(values[rest]) >= 1e-4) & (np.abs(values[rest]) < _EXACT_INTEGER)
    plain_index = rest[plain]
    # tolist() gives Python floats at once; indexing numpy scalars one by one costs more.
    for index, text in zip(plain_index.tolist(), map(repr, values[plain_index].tolist())):
        out[index] = text
    for index in rest[~plain].tolist():
        out[index] = api_float(values[index])
    return out


def api_timestamp(ms: int) -> str:
    """Format a millisecond timestamp as Prometheus' JSON does: seconds with a 3-digit fraction when needed."""
    sign = "-" if ms < 0 else ""
    ms = abs(int(ms))
    seconds, fraction = divmod(ms, 1000)
    if fraction:
        return f"{sign}{seconds}.{fraction:03d}"
    return f"{sign}{seconds}"
