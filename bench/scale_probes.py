"""What the scale benchmark reads about processes and the API server: CPU and memory from ``/proc``,
requests from the kube-apiserver's audit log.

Kept apart from ``controller_at_scale.py`` so the benchmark's flow reads top to bottom and these
small readers can be checked on their own.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.harness.cluster import KubeCluster

_TICKS = os.sysconf("SC_CLK_TCK")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_megabytes(pid: int) -> tuple[float, float]:
    """``(resident now, peak resident)`` of the process, in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def parse_audit_time(text: str) -> float:
    """An audit timestamp (RFC 3339 with microseconds, ``Z``) as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Request:
    """One API request as the audit log recorded it (its final stage)."""

    user: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int
    received: float
    completed: float


def requests_of(events: Iterable[Mapping[str, Any]]) -> list[Request]:
    """One :class:`Request` per audit ID: the ``ResponseComplete`` entry, or for a watch still open
    the ``ResponseStarted`` one."""
    final: dict[str, Mapping[str, Any]] = {}
    for event in events:
        audit_id = str(event.get("auditID", ""))
        if event.get("stage") == "ResponseComplete" or audit_id not in final:
            final[audit_id] = event
    result = []
    for event in final.values():
        ref = event.get("objectRef") or {}
        result.append(
            Request(
                user=str((event.get("user") or {}).get("username", "")),
                verb=str(event.get("verb", "")),
                resource=str(ref.get("resource", ""))
                + (f"/{ref['subresource']}" if ref.get("subresource") else ""),
                namespace=str(ref.get("namespace", "")),
                name=str(ref.get("name", "")),
                code=int((event.get("responseStatus") or {}).get("code", 0)),
                received=parse_audit_time(str(event["requestReceivedTimestamp"])),
                completed=parse_audit_time(str(event["stageTimestamp"])),
            )
        )
    return sorted(result, key=lambda request: request.received)


def created_jobs(requests: Sequence[Request], user: str, namespace: str) -> dict[str, Request]:
    """The successful Job creates of ``user`` in ``namespace``, by Job name."""
    return {
        r.name: r
        for r in requests
        if r.user == user
        and r.verb == "create"
        and r.resource == "jobs"
        and r.namespace == namespace
        and r.code == 201
    }


def verbs_between(requests: Sequence[Request], user: str, start: float, end: float) -> Counter[str]:
    """``verb resource`` counts of ``user``'s requests received in ``[start, end]``."""
    return Counter(
        f"{r.verb} {r.resource}" for r in requests if r.user == user and start <= r.received <= end
    )


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def spread(samples: Sequence[float]) -> str:
    """``median (min-max)`` of several runs."""
    if not samples:
        return "n/a"
    return f"{statistics.median(samples):.2f} ({min(samples):.2f}-{max(samples):.2f})"


class AuditLog:
    """The cluster's audit log read incrementally: each call parses only the lines added since."""

    def __init__(self, cluster: KubeCluster) -> None:
        self._cluster = cluster
        self._events: list[dict[str, Any]] = []
        self._seen = 0

    def requests(self) -> list[Request]:
        events = list(self._cluster.audit_events())
        self._events.extend(events[self._seen :])
        self._seen = len(events)
        return requests_of(self._events)
