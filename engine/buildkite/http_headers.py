"""What the Buildkite clients (GraphQL, Agent REST, Stacks API) share about HTTP responses.

The APIs can answer "not now": HTTP 429 on GraphQL and the Stacks API, 423/429 on the agent API. The
wait they ask for arrives as ``Retry-After`` (delta seconds or an HTTP date, RFC 9110 §10.2.3) or, on
Buildkite's rate-limited APIs, as ``RateLimit-Reset`` (seconds until the window resets). An error's
explanation is read the same way from every API, and put on one line without the client's secrets.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

DEFAULT_TIMEOUT = 10.0
"""Seconds one request may take (the ``http-timeout`` default); upstream hard-coded 60 s."""
DEFAULT_RATE_LIMIT_WAIT = 5.0
"""Seconds to wait after a 429 that names no wait of its own."""
REDACTED = "[redacted]"
_MESSAGE_BYTES = 200


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


def server_message(body: bytes) -> str:
    """The server's explanation: ``{"message": ...}`` when the body is such JSON, else the start of
    the body (empty when there is none)."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return body[:_MESSAGE_BYTES].decode("utf-8", "replace")


def redact(text: str, *secrets: str) -> str:
    """``text`` on one line with each (non-empty) secret replaced by ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return " ".join(text.split())
