"""Kubernetes resource quantities (``500m``, ``1Gi``, ``1e3``), validated and put in canonical form.

Kubernetes accepts a quantity when its Go ``resource.ParseQuantity`` does, and stores it in a
*canonical* form: the largest suffix that loses no precision and needs no fractional digits
(``1.5`` → ``1500m``, ``1.5Gi`` → ``1536Mi``, ``1000`` → ``1k``, ``0.5Ki`` → ``512``). Values are
rounded up (away from zero) to whole nano-units, binary values are capped at ``2**63 - 1``, and
values between -1024 and 1024 (or fractional ones) written with a binary suffix are shown in decimal.
:func:`parse_quantity` implements exactly that, so a value checked here is the value the API server
will show back.

Accepted text, as in Go: optional sign, digits with an optional ``.`` fraction (``1.``, ``.5`` and
even ``.`` or a bare sign, which Go reads as zero), then one suffix: ``n u m k M G T P E`` (decimal
SI), ``Ki Mi Gi Ti Pi Ei`` (binary SI) or ``e``/``E`` followed by a signed integer exponent.
Surrounding whitespace is ignored (Go's JSON decoding trims it). Numbers are read as their decimal
text (so ``0.5`` gives ``500m``); ``true``/``false`` are not quantities.

Deliberate differences from Go, both about *output* only: Go sometimes echoes the input verbatim
when it is already canonical apart from a leading ``+`` or leading zeros (``+1Gi``, ``01``); this
module always returns the canonical text (``1Gi``, ``1``). And where Go would print a decimal value
beyond ``E`` without any suffix (a known upstream quirk that changes the value), this returns it in
``E`` (``1000E``).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {0: "", **{power // 10: suffix for suffix, power in _BINARY_SUFFIXES.items()}}
_SUFFIX_CHARACTERS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_NANO_EXPONENT = -9
_BINARY_MAX = 2**63 - 1
_HINT = 'expected a number with an optional suffix, like "500m", "2", "1.5Gi" or "1e3"'


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity; ``str()`` is one line naming it and the problem."""


def parse_quantity(value: str | int | float) -> str:
    """The canonical Kubernetes form of a quantity, or :class:`QuantityError`."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"expected a quantity ({_HINT}), got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise QuantityError(f"expected a finite quantity, got {value}")
    text = value if isinstance(value, str) else repr(value)
    stripped = text.strip()
    if not stripped:
        raise QuantityError(f"invalid quantity {json.dumps(text)}: empty ({_HINT})")
    negative, whole, fraction, suffix = _split(stripped, text)
    sign = -1 if negative else 1
    if suffix in _BINARY_SUFFIXES:
        return _binary_canonical(sign, whole, fraction, _BINARY_SUFFIXES[suffix])
    if suffix in _DECIMAL_SUFFIXES:
        exponent, style = _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    elif len(suffix) > 1 and suffix[0] in "eE" and _is_signed_integer(suffix[1:]):
        exponent, style = int(suffix[1:]), "DecimalExponent"
    else:
        raise QuantityError(
            f"invalid quantity {json.dumps(text)}: unknown suffix {json.dumps(suffix)} "
            "(use one of n u m k M G T P E Ki Mi Gi Ti Pi Ei, or e<exponent>)"
        )
    if exponent < _NANO_EXPONENT and not any(
        char in _DIGITS for char in stripped[: len(stripped) - len(suffix)]
    ):
        # Go reads digit-less text ("", "+", ".") as zero only on its fast path, which needs a
        # scale of at least nano; otherwise it fails to parse the number.
        raise QuantityError(f"invalid quantity {json.dumps(text)}: no digits")
    return _decimal_canonical(sign, whole, fraction, exponent, style)


def _split(text: str, original: str) -> tuple[bool, str, str, str]:
    """Sign, whole digits (leading zeros dropped), fraction digits and suffix, scanned like Go."""
    position = 0
    negative = False
    if text[:1] in ("+", "-"):
        negative = text[0] == "-"
        position = 1
    start = position
    while position < len(text) and text[position] in _DIGITS:
        position += 1
    whole = text[start:position].lstrip("0")
    fraction = ""
    if position < len(text) and text[position] == ".":
        position += 1
        start = position
        while position < len(text) and text[position] in _DIGITS:
            position += 1
        fraction = text[start:position]
    suffix_start = position
    while position < len(text) and text[position] in _SUFFIX_CHARACTERS:
        position += 1
    if position < len(text) and text[position] in "+-":
        position += 1
    while position < len(text) and text[position] in _DIGITS:
        position += 1
    if position != len(text):
        raise QuantityError(f"invalid quantity {json.dumps(original)}: {_HINT}")
    return negative, whole, fraction, text[suffix_start:]


def _is_signed_integer(text: str) -> bool:
    digits = text[1:] if text[:1] in ("+", "-") else text
    return bool(digits) and all(char in _DIGITS for char in digits)


def _decimal_canonical(sign: int, whole: str, fraction: str, exponent: int, style: str) -> str:
    """``(whole.fraction) * 10**exponent`` in canonical decimal SI or exponent notation.

    Works on the digit string and an exponent so a huge exponent never builds a huge integer.
    """
    mantissa = int(whole + fraction or "0")
    exponent -= len(fraction)
    if mantissa == 0:
        return "0"
    if exponent < _NANO_EXPONENT:
        shift = _NANO_EXPONENT - exponent
        digits = len(str(mantissa))
        mantissa = 1 if shift > digits else -(-mantissa // 10**shift)  # round up to a whole nano
        exponent = _NANO_EXPONENT
    return _render_decimal(sign * mantissa, exponent, style)


def _render_decimal(mantissa: int, exponent: int, style: str) -> str:
    """Largest exponent that is a multiple of 3 and keeps the mantissa whole, then its suffix."""
    magnitude = abs(mantissa)
    text = str(magnitude)
    trailing_zeros = len(text) - len(text.rstrip("0"))
    magnitude //= 10**trailing_zeros
    exponent += trailing_zeros
    remainder = exponent % 3
    magnitude *= 10**remainder
    exponent -= remainder
    number = ("-" if mantissa < 0 else "") + str(magnitude)
    if style == "DecimalExponent":
        return number if exponent == 0 else f"{number}e{exponent}"
    if exponent > max(_DECIMAL_BY_EXPONENT):
        top = max(_DECIMAL_BY_EXPONENT)
        scaled = ("-" if mantissa < 0 else "") + str(magnitude * 10 ** (exponent - top))
        return scaled + _DECIMAL_BY_EXPONENT[top]
    return number + _DECIMAL_BY_EXPONENT[exponent]


def _binary_canonical(sign: int, whole: str, fraction: str, power: int) -> str:
    """``(whole.fraction) * 2**power``: capped at ``2**63-1``, in ``Ki``... when whole and ≥ 1024."""
    magnitude = Fraction(int(whole + fraction or "0"), 10 ** len(fraction)) * 2**power
    if magnitude == 0:
        return "0"
    magnitude = min(Fraction(math.ceil(magnitude * 10**9), 10**9), Fraction(_BINARY_MAX))
    value = sign * magnitude
    if magnitude < 1024 or magnitude.denominator != 1:
        nanos = int(value * 10**9)
        return _render_decimal(nanos, _NANO_EXPONENT, "DecimalSI")
    amount = int(magnitude)
    steps = 0
    while amount % 1024 == 0:  # at most 6 times: the value is below 2**63
        amount //= 1024
        steps += 1
    return f"{'-' if sign < 0 else ''}{amount}{_BINARY_BY_POWER.get(steps, '')}"
