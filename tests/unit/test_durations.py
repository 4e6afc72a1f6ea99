"""Durations parse like Go's time.ParseDuration and print like Go's Duration.String."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model.durations import (
    DurationError,
    format_duration,
    format_nanoseconds,
    parse_duration,
    parse_duration_nanoseconds,
)

MAX_NS = 2**63 - 1


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        # Vectors from Go's time package tests.
        ("0", 0),
        ("5s", 5_000_000_000),
        ("30s", 30_000_000_000),
        ("1478s", 1_478_000_000_000),
        ("-5s", -5_000_000_000),
        ("+5s", 5_000_000_000),
        ("-0", 0),
        ("+0", 0),
        ("5.0s", 5_000_000_000),
        ("5.6s", 5_600_000_000),
        ("5.s", 5_000_000_000),
        (".5s", 500_000_000),
        ("1.0s", 1_000_000_000),
        ("1.00s", 1_000_000_000),
        ("1.004s", 1_004_000_000),
        ("1.0040s", 1_004_000_000),
        ("100.00100s", 100_001_000_000),
        ("10ns", 10),
        ("11us", 11_000),
        ("12µs", 12_000),  # U+00B5
        ("12μs", 12_000),  # U+03BC
        ("13ms", 13_000_000),
        ("14s", 14_000_000_000),
        ("15m", 900_000_000_000),
        ("16h", 57_600_000_000_000),
        ("3h30m", 12_600_000_000_000),
        ("10.5s4m", 250_500_000_000),
        ("-2m3.4s", -123_400_000_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("39h9m14.425s", 140_954_425_000_000),
        ("52763797000ns", 52_763_797_000),
        ("0.3333333333333333333h", 1_200_000_000_000),
        ("9007199254740993ns", 9_007_199_254_740_993),
        ("9223372036854775807ns", MAX_NS),
        ("9223372036854775.807us", MAX_NS),
        ("9223372036s854ms775us807ns", MAX_NS),
        ("-9223372036854775808ns", -(2**63)),
        ("-9223372036854775.808us", -(2**63)),
        ("0.100000000000000000000h", 360_000_000_000),
        ("0.830103483285477580700h", (49 * 60 + 48) * 1_000_000_000 + 372_539_827),
    ],
)
def test_go_parse_vectors(text: str, nanoseconds: int) -> None:
    assert parse_duration_nanoseconds(text) == nanoseconds
    assert parse_duration(text) == nanoseconds / 1e9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'invalid duration ""'),
        ("3", 'missing unit in duration "3"'),
        ("-", 'invalid duration "-"'),
        ("s", 'invalid duration "s"'),
        (".", 'invalid duration "."'),
        ("-.", 'invalid duration "-."'),
        (".s", 'invalid duration ".s"'),
        ("+.s", 'invalid duration "+.s"'),
        ("1d", 'unknown unit "d" in duration "1d"'),
        ("3000000h", 'duration "3000000h" is out of range'),
        ("9223372036854775808ns", 'duration "9223372036854775808ns" is out of range'),
        ("9223372036854775.808us", 'duration "9223372036854775.808us" is out of range'),
        ("9223372036854ms775us808ns", 'duration "9223372036854ms775us808ns" is out of range'),
        ("-9223372036854775809ns", 'duration "-9223372036854775809ns" is out of range'),
        ("1h 30m", 'unknown unit "h " in duration "1h 30m"'),
    ],
)
def test_go_parse_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("value", "seconds"), [(0, 0.0), (30, 30.0), (-5, -5.0), (1.5, 1.5), (600, 600.0)])
def test_numbers_are_seconds(value: float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), None, [1]])
def test_other_values_are_errors(value: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        # Vectors from Go's Duration.String tests.
        (0, "0s"),
        (1, "1ns"),
        (1_100, "1.1µs"),
        (2_200_000, "2.2ms"),
        (3_300_000_000, "3.3s"),
        (4 * 60 * 1_000_000_000 + 5_000_000_000, "4m5s"),
        (4 * 60 * 1_000_000_000 + 5_001_000_000, "4m5.001s"),
        (5 * 3600 * 1_000_000_000 + 6 * 60 * 1_000_000_000 + 7_001_000_000, "5h6m7.001s"),
        (8 * 60 * 1_000_000_000 + 1, "8m0.000000001s"),
        (MAX_NS, "2562047h47m16.854775807s"),
        (-(2**63), "-2562047h47m16.854775808s"),
        (-1_100, "-1.1µs"),
        (600 * 1_000_000_000, "10m0s"),
        (3600 * 1_000_000_000, "1h0m0s"),
    ],
)
def test_go_string_vectors(nanoseconds: int, text: str) -> None:
    assert format_nanoseconds(nanoseconds) == text


def test_format_duration_takes_seconds() -> None:
    assert [format_duration(s) for s in (600, 1, 0.3, 1.5, 0, 15 * 60)] == [
        "10m0s",
        "1s",
        "300ms",
        "1.5s",
        "0s",
        "15m0s",
    ]


def test_format_duration_rejects_out_of_range() -> None:
    with pytest.raises(DurationError):
        format_duration(1e12)


@given(st.integers(min_value=-(2**63), max_value=MAX_NS))
def test_formatted_text_parses_back_to_the_same_nanoseconds(nanoseconds: int) -> None:
    assert parse_duration_nanoseconds(format_nanoseconds(nanoseconds)) == nanoseconds
