"""Text pieces of failure messages: kubectl-style durations, tables, the events table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.kube.events import NO_EVENTS, render_events
from engine.kube.human_duration import human_duration
from engine.kube.objects import parse_timestamp
from engine.kube.text_table import render_table
from engine.kube.transforms import without_managed_fields


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 59 * 60, "47h"),
        (48 * 3600, "2d"),
        (5 * 86400 + 3 * 3600, "5d3h"),
        (8 * 86400, "8d"),
        (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 10 * 86400, "2y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_rounds_like_kubectl(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_table_has_a_header_and_aligned_columns() -> None:
    table = render_table(("NAME", "EXIT CODE"), [("init", 1), ("a-longer-name", 127)])
    assert table == (
        "+---------------+-----------+\n"
        "| NAME          | EXIT CODE |\n"
        "+---------------+-----------+\n"
        "| init          |         1 |\n"
        "| a-longer-name |       127 |\n"
        "+---------------+-----------+\n"
    )


def test_multi_line_cells_span_lines_and_none_is_empty() -> None:
    table = render_table(("A", "B"), [("x", "line one\nline two"), (None, "z")])
    assert table.splitlines()[3:6] == ["| x | line one |", "|   | line two |", "|   | z        |"]


def test_rows_must_match_the_headers() -> None:
    with pytest.raises(ValueError, match="2 cells, expected 3"):
        render_table(("A", "B", "C"), [("x", "y")])


def old_style(reason: str, message: str, first: str, last: str, count: int) -> dict[str, Any]:
    return {
        "type": "Warning",
        "reason": reason,
        "message": message,
        "firstTimestamp": first,
        "lastTimestamp": last,
        "count": count,
        "eventTime": None,
    }


def test_no_events_says_so() -> None:
    assert render_events([]) == NO_EVENTS == "Events: none"


def test_events_table_shows_repeats_and_is_chronological() -> None:
    events = [
        old_style(
            "FailedCreate",
            'Error creating: pods "j-x" is forbidden: exceeded quota: nopods',
            "2025-01-01T10:00:00Z",
            "2025-01-01T10:00:40Z",
            3,
        ),
        old_style("SuccessfulCreate", "Created pod: j-y", "2025-01-01T09:59:00Z", "2025-01-01T09:59:00Z", 1),
    ]
    lines = render_events(events).splitlines()
    assert [cell.strip() for cell in lines[1].split("|")[1:-1]] == [
        "LAST EVENT",
        "REPEATED",
        "TYPE",
        "REASON",
        "MESSAGE",
    ]
    assert "2025-01-01T09:59:00Z | -" in lines[3]
    assert "SuccessfulCreate" in lines[3]
    assert "2025-01-01T10:00:40Z | x3 over 40s | Warning | FailedCreate" in lines[4]
    assert "exceeded quota: nopods" in lines[4]


def test_series_events_use_event_time_and_series() -> None:
    event = {
        "type": "Normal",
        "reason": "Pulling",
        "note": "Pulling image",
        "eventTime": "2025-01-01T10:00:00.000000Z",
        "series": {"count": 4, "lastObservedTime": "2025-01-01T10:02:05.500000Z"},
    }
    row = render_events([event]).splitlines()[3]
    assert "2025-01-01T10:02:05Z | x4 over 2m5s | Normal | Pulling | Pulling image" in row


def test_timestamps_parse_as_aware_utc() -> None:
    assert parse_timestamp("2025-01-01T10:00:00Z") == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert parse_timestamp("2025-01-01T12:00:00+02:00") == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert parse_timestamp("2025-01-01T10:00:00.5Z") == datetime(2025, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp(None) is None


def test_managed_fields_are_dropped_without_touching_the_input() -> None:
    obj: dict[str, Any] = {"kind": "Pod", "metadata": {"name": "p", "managedFields": [{"manager": "x"}]}}
    trimmed = without_managed_fields(obj)
    assert trimmed == {"kind": "Pod", "metadata": {"name": "p"}}
    assert obj["metadata"]["managedFields"] == [{"manager": "x"}]
    untouched = {"metadata": {"name": "q"}}
    assert without_managed_fields(untouched) is untouched
