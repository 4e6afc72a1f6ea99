"""The events table appended to failure messages: what Kubernetes said about an object.

When a Job never gets a pod, the reason is only in its events (``FailedCreate: ... exceeded quota``,
``error looking up service account``), so the Buildkite log shows them as a table with the columns
upstream uses: LAST EVENT, REPEATED, TYPE, REASON, MESSAGE (behaviour spec §4.9).

Both event shapes are understood: the old core/v1 one (``firstTimestamp``/``lastTimestamp``/``count``,
what a v1.20 controller-manager writes) and the newer one (``eventTime`` plus ``series``). Upstream
v0.20.2 read only the newer fields and showed a zero time for old-style events; later releases read
both, as this does. Rows are in chronological order of their last occurrence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.kube.human_duration import human_duration
from engine.kube.objects import int_at, mapping_at, string_at, timestamp_at
from engine.kube.text_table import render_table

NO_EVENTS = "Events: none"
EVENT_COLUMNS = ("LAST EVENT", "REPEATED", "TYPE", "REASON", "MESSAGE")
_NEVER = datetime.min.replace(tzinfo=UTC)


def _format_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def _row(event: Mapping[str, Any]) -> tuple[datetime | None, list[str]]:
    """``(last occurrence, cells)`` for one event."""
    series = mapping_at(event, "series")
    if series:
        first = timestamp_at(event, "eventTime")
        last = timestamp_at(series, "lastObservedTime") or first
        count = int_at(series, "count")
    else:
        first = timestamp_at(event, "firstTimestamp") or timestamp_at(event, "eventTime")
        last = timestamp_at(event, "lastTimestamp") or first
        count = int_at(event, "count")
    repeated = "-"
    if count > 1:
        span = (last - first).total_seconds() if first and last else 0.0
        repeated = f"x{count} over {human_duration(span)}"
    cells = [
        _format_time(last),
        repeated,
        string_at(event, "type"),
        string_at(event, "reason"),
        string_at(event, "message") or string_at(event, "note"),
    ]
    return last, cells


def render_events(events: Sequence[Mapping[str, Any]]) -> str:
    """``Events: none`` when there are none, else the events table (ending with a newline)."""
    if not events:
        return NO_EVENTS
    rows = [_row(event) for event in events]
    ordered = sorted(rows, key=lambda row: row[0] or _NEVER)
    return render_table(EVENT_COLUMNS, [cells for _, cells in ordered])
