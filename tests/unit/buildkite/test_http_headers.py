"""Reading Retry-After / RateLimit-Reset wait hints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.buildkite.http_headers import parse_retry_after, requested_wait, wait_hint

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("Sat, 01 Mar 2025 12:00:30 GMT", 30.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # already past: retry now
        ("-1", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=lambda: NOW) == expected


def test_retry_after_wins_over_ratelimit_reset_and_names_are_case_insensitive() -> None:
    assert requested_wait({"retry-after": "3", "RateLimit-Reset": "40"}) == 3.0
    assert requested_wait({"ratelimit-reset": "40"}) == 40.0
    assert requested_wait({"Content-Type": "application/json"}) is None


def test_wait_hint_falls_back_to_the_default() -> None:
    assert wait_hint({}, 5.0) == 5.0
    assert wait_hint({"Retry-After": "junk"}, 5.0) == 5.0
    assert wait_hint({"Retry-After": "9"}, 5.0) == 9.0
