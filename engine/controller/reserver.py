"""Reserving jobs before they are queued (the Stacks API mode): ``batch-reserve``, 1000 at a time.

A reserved job is this controller's alone until its reservation expires (``reservation-expiry-seconds``):
other stacks do not see it in their listings and cannot reserve it, so several controllers on one
queue never contend for a job. A job Buildkite answers ``not_reserved`` for (another stack holds it,
an agent acquired it, it was cancelled or finished meanwhile) is left alone. An error aborts the rest
of the call: that poll's jobs are simply asked for again on the next poll.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from engine.buildkite.stacks import Reservation
from engine.controller.metrics import StacksMetrics

BATCH = 1000
"""UUIDs per ``batch-reserve`` request (upstream's chunk size)."""

_log = logging.getLogger(__name__)


class ReservingAPI(Protocol):
    """``StacksAPI`` satisfies it."""

    async def reserve(self, job_uuids: Sequence[str], expiry_seconds: int) -> Reservation: ...


class StacksReserver:
    """The monitor's reserver in the Stacks API mode."""

    def __init__(self, stacks: ReservingAPI, expiry_seconds: int, metrics: StacksMetrics) -> None:
        self._stacks = stacks
        self._expiry = expiry_seconds
        self._metrics = metrics

    async def reserve(self, uuids: Sequence[str]) -> list[str]:
        """Reserve ``uuids``; the ones now held by this controller, in the order asked."""
        wanted = list(dict.fromkeys(uuids))
        held: set[str] = set()
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            self._metrics.reserve_requests.inc()
            try:
                answer = await self._stacks.reserve(chunk, self._expiry)
            except Exception:
                self._metrics.reserve_errors.inc()
                raise
            reserved = set(answer.reserved) & set(chunk)
            held |= reserved
            self._metrics.reservations.labels(result="reserved").inc(len(reserved))
            left = [uuid for uuid in chunk if uuid not in reserved]
            if left:
                self._metrics.reservations.labels(result="not_reserved").inc(len(left))
                _log.info(
                    "%d jobs not reserved (another stack holds them, or they are no longer scheduled): %s",
                    len(left),
                    ", ".join(left[:5]) + (", …" if len(left) > 5 else ""),
                )
        return [uuid for uuid in wanted if uuid in held]
