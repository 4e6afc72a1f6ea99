"""Reading the wait hints Buildkite puts on throttled or locked responses.

Both APIs can answer "not now": HTTP 429 on GraphQL and 423/429 on the agent API. The wait they ask
for arrives as ``Retry-After`` (delta seconds or an HTTP date, RFC 9110 §10.2.3) or, on Buildkite's
rate-limited APIs, as ``RateLimit-Reset`` (seconds until the window resets).
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds to wait for a ``Retry-After`` value, or ``None`` when it is absent or unreadable.

    A date in the past means "now" (0 s); negative or non-finite numbers are unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now or (lambda: datetime.now(UTC)))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def requested_wait(headers: Mapping[str, str]) -> float | None:
    """The wait a throttled response asks for: ``Retry-After``, else ``RateLimit-Reset``, else ``None``."""
    for name in ("Retry-After", "RateLimit-Reset"):
        seconds = parse_retry_after(_header(headers, name))
        if seconds is not None:
            return seconds
    return None


def wait_hint(headers: Mapping[str, str], default: float) -> float:
    """:func:`requested_wait`, falling back to ``default`` when the response names no wait."""
    seconds = requested_wait(headers)
    return default if seconds is None else seconds


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def _seconds_until_http_date(text: str, now: Callable[[], datetime]) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())
