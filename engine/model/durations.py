"""Go-style durations (``5m``, ``1h30m``, ``300ms``) for the controller config.

Upstream reads every duration key with Go's ``time.ParseDuration``, so a config that worked there
must mean the same here: :func:`parse_duration` follows that function exactly (units, signs,
fractions truncated to whole nanoseconds, the ``int64`` nanosecond range) and only adds that a bare
number (not a string) is a count of seconds. Values are returned as ``float`` seconds because that is
what the rest of the project (policies, timers) works in.

:func:`format_duration` renders seconds the way Go's ``Duration.String`` does (``10m0s``, ``1.5s``,
``300ms``, ``0s``), so logs and generated docs show the same text an upstream user would recognise,
and ``parse_duration(format_duration(x)) == x`` for any whole number of nanoseconds.
"""

from __future__ import annotations

import json
import math

NANOSECONDS_PER_SECOND = 1_000_000_000
_MAX_NANOSECONDS = 2**63 - 1
_MIN_NANOSECONDS = -(2**63)

_UNIT_NANOSECONDS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": NANOSECONDS_PER_SECOND,
    "m": 60 * NANOSECONDS_PER_SECOND,
    "h": 3600 * NANOSECONDS_PER_SECOND,
}
_UNITS_HINT = "ns, us, ms, s, m, h"
_DIGITS = "0123456789"


class DurationError(ValueError):
    """A value that is not a duration; ``str()`` is one line naming the value and the problem."""


def parse_duration(value: str | int | float) -> float:
    """Seconds in a Go duration string (``"1h2m3.5s"``, ``"-300ms"``, ``"0"``) or a number of seconds.

    Raises :class:`DurationError` with a one-line message for anything else.
    """
    if isinstance(value, bool):
        raise DurationError(f'expected a duration like "30s" or "5m", got the boolean {str(value).lower()}')
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DurationError(f"expected a finite number of seconds, got {value}")
        return value
    if not isinstance(value, str):
        raise DurationError(f'expected a duration like "30s" or "5m", got {type(value).__name__}')
    return parse_duration_nanoseconds(value) / NANOSECONDS_PER_SECOND


def parse_duration_nanoseconds(text: str) -> int:
    """Whole nanoseconds in a Go duration string, exactly as ``time.ParseDuration`` computes them."""
    quoted = json.dumps(text, ensure_ascii=False)
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise DurationError(f"invalid duration {quoted}")
    total = 0
    while rest:
        whole, rest = _leading_digits(rest)
        had_whole = whole != ""
        fraction = ""
        if rest.startswith("."):
            fraction, rest = _leading_digits(rest[1:])
        if not had_whole and fraction == "":
            raise DurationError(f"invalid duration {quoted}")
        unit_end = 0
        while unit_end < len(rest) and rest[unit_end] not in _DIGITS + ".":
            unit_end += 1
        unit, rest = rest[:unit_end], rest[unit_end:]
        if not unit:
            raise DurationError(f"missing unit in duration {quoted} (units: {_UNITS_HINT})")
        scale = _UNIT_NANOSECONDS.get(unit)
        if scale is None:
            unit_text = json.dumps(unit, ensure_ascii=False)
            raise DurationError(f"unknown unit {unit_text} in duration {quoted} (units: {_UNITS_HINT})")
        total += _component_nanoseconds(whole, fraction, scale, quoted)
        if total > 2**63:
            raise DurationError(f"duration {quoted} is out of range (at most about 2562047h)")
    if negative:
        return -total
    if total > _MAX_NANOSECONDS:
        raise DurationError(f"duration {quoted} is out of range (at most about 2562047h)")
    return total


def _leading_digits(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    return text[:end], text[end:]


def _component_nanoseconds(whole: str, fraction: str, scale: int, quoted: str) -> int:
    """One ``<number><unit>`` term. Go keeps only the fraction digits that fit in an int64 and turns
    them into nanoseconds with float64 arithmetic; doing the same keeps results bit-identical."""
    value = int(whole) if whole else 0
    if value > 2**63 // scale:
        raise DurationError(f"duration {quoted} is out of range (at most about 2562047h)")
    value *= scale
    digits = 0
    divisor = 1.0
    for char in fraction:
        if digits > (2**63 - 1) // 10 or digits * 10 + int(char) > 2**63:
            break  # Go stops accumulating once another digit would overflow
        digits = digits * 10 + int(char)
        divisor *= 10
    if digits > 0:
        value += int(float(digits) * (float(scale) / divisor))
    return value


def format_duration(seconds: float) -> str:
    """Render seconds like Go's ``Duration.String``: ``10m0s``, ``1h0m0s``, ``1.5s``, ``300ms``, ``0s``.

    The value is first rounded to whole nanoseconds (Go's resolution).
    """
    nanoseconds = round(seconds * NANOSECONDS_PER_SECOND)
    if not _MIN_NANOSECONDS <= nanoseconds <= _MAX_NANOSECONDS:
        raise DurationError(f"{seconds} seconds is out of range for a duration")
    return format_nanoseconds(nanoseconds)


def format_nanoseconds(nanoseconds: int) -> str:
    """Go's ``Duration.String`` for a whole number of nanoseconds."""
    sign = "-" if nanoseconds < 0 else ""
    magnitude = abs(nanoseconds)
    if magnitude == 0:
        return "0s"
    if magnitude < NANOSECONDS_PER_SECOND:
        if magnitude < 1_000:
            return f"{sign}{magnitude}ns"
        if magnitude < 1_000_000:
            return f"{sign}{_decimal(magnitude, 3)}µs"
        return f"{sign}{_decimal(magnitude, 6)}ms"
    whole_seconds, fraction = divmod(magnitude, NANOSECONDS_PER_SECOND)
    seconds_text = _decimal(whole_seconds % 60 * NANOSECONDS_PER_SECOND + fraction, 9) + "s"
    minutes = whole_seconds // 60
    if minutes == 0:
        return sign + seconds_text
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{sign}{minutes}m{seconds_text}"
    return f"{sign}{hours}h{minutes}m{seconds_text}"


def _decimal(value: int, places: int) -> str:
    """``value / 10**places`` without trailing zeros (and without a point for whole numbers)."""
    whole, fraction = divmod(value, 10**places)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{str(fraction).rjust(places, '0').rstrip('0')}"
