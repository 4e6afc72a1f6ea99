"""Stack notifications: short progress messages the Stacks API shows on a job in Buildkite.

Callers (the scheduler when a Job is created, the failer when a job is failed, the pod watcher when
an agent's pod cannot pull its images) only *queue* a message (:meth:`Notifier.notify` returns at
once); a flush every 100 ms sends what is queued in batches of up to 1000, concurrently, as upstream
does. A notification is a courtesy, not state: no retries (a failed batch is logged and counted), a
full queue drops the newest message (counted), and each detail is cropped to 255 bytes. Buildkite may
ingest notifications out of order, so each carries the time it was queued. On shutdown what is queued
is sent once more, briefly.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from engine.buildkite.stacks import Notification
from engine.controller.metrics import StacksMetrics

FLUSH_INTERVAL = 0.1
BATCH = 1000
CAPACITY = 100_000
SHUTDOWN_FLUSH_SECONDS = 2.0

_log = logging.getLogger(__name__)


class NotifyingAPI(Protocol):
    """``StacksAPI`` satisfies it."""

    async def notify(self, notifications: Sequence[Notification]) -> list[tuple[str, list[int]]]: ...


class Notifier:
    """Queue with :meth:`notify`; ``await run()`` sends until cancelled."""

    def __init__(
        self,
        api: NotifyingAPI,
        metrics: StacksMetrics,
        *,
        interval: float = FLUSH_INTERVAL,
        capacity: int = CAPACITY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._interval = interval
        self._capacity = capacity
        self._clock = clock
        self._queue: collections.deque[Notification] = collections.deque()
        metrics.notification_queue_length.set_function(lambda: len(self._queue))

    def notify(self, job_uuid: str, detail: str) -> None:
        """Queue one message for the job (dropped, and counted, when the queue is full)."""
        if not detail.strip():
            return
        if len(self._queue) >= self._capacity:
            self._metrics.notifications.labels(result="dropped").inc()
            return
        self._queue.append(Notification(job_uuid, " ".join(detail.split()), self._clock()))

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
        finally:
            if self._queue:
                with contextlib.suppress(Exception, asyncio.CancelledError, TimeoutError):
                    async with asyncio.timeout(SHUTDOWN_FLUSH_SECONDS):
                        await self.flush()

    async def flush(self) -> None:
        """Send everything queued now, in concurrent batches."""
        if not self._queue:
            return
        taken = list(self._queue)
        self._queue.clear()
        batches = [taken[start : start + BATCH] for start in range(0, len(taken), BATCH)]
        await asyncio.gather(*(self._send(batch) for batch in batches))

    async def _send(self, batch: list[Notification]) -> None:
        try:
            problems = await self._api.notify(batch)
        except Exception as error:
            self._metrics.notifications.labels(result="failed").inc(len(batch))
            _log.warning("%d stack notifications were not sent: %s", len(batch), " ".join(str(error).split()))
            return
        rejected = {index for _, indexes in problems for index in indexes}
        self._metrics.notifications.labels(result="sent").inc(len(batch) - len(rejected))
        if problems:
            self._metrics.notifications.labels(result="rejected").inc(len(rejected))
            shown = "; ".join(f"{error} (items {indexes})" for error, indexes in problems)
            _log.warning("Buildkite refused some stack notifications: %s", shown)
