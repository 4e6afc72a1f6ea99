"""The fail queue: Buildkite jobs waiting to be failed, worked off in the background.

Failing a job ("acquire and fail", :mod:`engine.controller.failer`) talks to the Agent REST API and,
when that API is having trouble, retries for minutes. Done inline, a handful of bad jobs held the
monitor's workers, and with them the poll loop and max-in-flight tokens, so ordinary jobs waited as
long as the outage lasted. Instead the scheduler only *enqueues* the failure here and moves on; a few
workers of this queue make the calls:

* **de-duplicated by job UUID**: a job already waiting keeps its place (and first message);
* **bounded** (``capacity``): when full, :meth:`FailQueue.enqueue` says no and the caller treats the
  job as not handled, so a later poll sees it again; nothing is lost, memory stays bounded;
* **retried with back-off**: an attempt that ends in ``"error"`` (agent API down after its own
  retries, Secret unreadable) is tried again after ``5 s, 10 s, 20 s...`` (capped at 60 s) up to
  ``max_attempts``; then the job is let go and a later poll decides it afresh;
* **held while waiting**: :meth:`FailQueue.holds` tells the deduper that a job is being failed, so
  polls do not hand it to the scheduler again; once failed, it stays held for ``remember_for`` seconds
  against poll data older than the failure (Buildkite may still list it as scheduled in such a poll).

Nothing is persisted: after a restart a job that was waiting is simply seen again by a poll, decided
again and failed again.

The backend is anything with an async ``fail(uuid, tags, message)`` returning a
:data:`~engine.controller.failer.FailOutcome` (``JobFailer`` does it through the Agent REST API; a
Stacks API backend can do it its own way), so the queue knows nothing about how a job is failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.controller.backoff import doubling_delay
from engine.controller.failer import FailBackend, FailCounters, fail_safely
from engine.controller.metrics import FailQueueMetrics

DEFAULT_CAPACITY = 1000
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_ATTEMPTS = 5
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 60.0

_log = logging.getLogger(__name__)


@dataclass
class _Entry:
    uuid: str
    tags: tuple[str, ...]
    message: str
    enqueued_at: float
    due_at: float
    attempts: int = 0
    in_progress: bool = False


@dataclass
class FailQueue:
    """Background failing of Buildkite jobs; ``enqueue`` from the event loop, ``await run()`` to work."""

    backend: FailBackend
    metrics: FailQueueMetrics
    counters: FailCounters | None = None
    """The calling component's counters (the scheduler's ``jobs_failed_on_buildkite``...)."""
    capacity: int = DEFAULT_CAPACITY
    concurrency: int = DEFAULT_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    first_retry_seconds: float = FIRST_RETRY_SECONDS
    max_retry_seconds: float = MAX_RETRY_SECONDS
    remember_for: float = 30.0
    """Seconds a failed job stays held against older poll data (at least stale-job-data-timeout)."""
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False)
    _done: dict[str, float] = field(default_factory=dict, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self.metrics.size.set_function(lambda: len(self._entries))
        self.metrics.oldest_seconds.set_function(self._oldest_age)

    # ---- the scheduler's side --------------------------------------------------------------------

    def enqueue(self, uuid: str, tags: Sequence[str], message: str) -> bool:
        """Queue job ``uuid`` to be failed with ``message``; ``False`` when the queue is full.

        Returns at once. A job already waiting is not queued twice (``True``: it will be failed).
        """
        if uuid in self._entries:
            self.metrics.enqueued.labels(result="already_queued").inc()
            return True
        if len(self._entries) >= self.capacity:
            self.metrics.enqueued.labels(result="full").inc()
            _log.warning(
                "cannot queue Buildkite job %s to be failed: %d jobs are waiting already; "
                "a later poll retries it",
                uuid,
                len(self._entries),
            )
            return False
        now = _now()
        self._entries[uuid] = _Entry(uuid, tuple(tags), message, enqueued_at=now, due_at=now)
        self._done.pop(uuid, None)
        self.metrics.enqueued.labels(result="queued").inc()
        self._changed.set()
        return True

    def holds(self, uuid: str, seen_at: float) -> bool:
        """True while ``uuid`` waits to be failed, or was failed after ``seen_at`` (``loop.time()``
        of the poll that saw it), so that poll's data must not schedule it again."""
        if uuid in self._entries:
            return True
        done_at = self._done.get(uuid)
        return done_at is not None and done_at >= seen_at

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # ---- the workers -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Fail queued jobs with ``concurrency`` workers until cancelled."""
        workers = [
            asyncio.create_task(self._worker(), name=f"fail-queue-{n}") for n in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    async def _worker(self) -> None:
        while True:
            entry = await self._next_due()
            try:
                await self._attempt(entry)
            finally:
                entry.in_progress = False

    async def _next_due(self) -> _Entry:
        """Wait for the entry due first; mark it in progress (no other worker takes it)."""
        while True:
            self._changed.clear()
            waiting = [entry for entry in self._entries.values() if not entry.in_progress]
            if waiting:
                entry = min(waiting, key=lambda candidate: candidate.due_at)
                delay = entry.due_at - _now()
                if delay <= 0:
                    entry.in_progress = True
                    return entry
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
            else:
                await self._changed.wait()

    async def _attempt(self, entry: _Entry) -> None:
        entry.attempts += 1
        started = time.perf_counter()
        outcome = await fail_safely(self.backend, entry.uuid, entry.tags, entry.message)
        self.metrics.attempt_seconds.observe(time.perf_counter() - started)
        if outcome == "failed":
            self._finish(entry, "failed")
            if self.counters is not None:
                self.counters.jobs_failed_on_buildkite.inc()
            return
        if self.counters is not None:
            self.counters.job_fail_on_buildkite_errors.inc()
        if outcome == "rejected":
            # Someone else has the job, or it finished or was cancelled: nothing left to do.
            self._finish(entry, "rejected")
        elif entry.attempts >= self.max_attempts:
            self._entries.pop(entry.uuid, None)
            self.metrics.outcomes.labels(outcome="gave_up").inc()
            _log.warning(
                "gave up failing Buildkite job %s after %d attempts; a later poll decides it again",
                entry.uuid,
                entry.attempts,
            )
        else:
            delay = doubling_delay(entry.attempts, self.first_retry_seconds, self.max_retry_seconds)
            entry.due_at = _now() + delay
            self.metrics.outcomes.labels(outcome="retried").inc()
            _log.info(
                "failing Buildkite job %s did not work (attempt %d/%d); trying again in %gs",
                entry.uuid,
                entry.attempts,
                self.max_attempts,
                delay,
            )
            self._changed.set()

    def _finish(self, entry: _Entry, outcome: str) -> None:
        self._entries.pop(entry.uuid, None)
        now = _now()
        self._done[entry.uuid] = now
        self._forget_older_than(now - self.remember_for)
        self.metrics.outcomes.labels(outcome=outcome).inc()

    def _forget_older_than(self, moment: float) -> None:
        for uuid in [uuid for uuid, done_at in self._done.items() if done_at < moment]:
            del self._done[uuid]

    def _oldest_age(self) -> float:
        """Seconds the longest-waiting job has waited (0 when none); entries keep enqueue order."""
        try:
            oldest = next(iter(self._entries.values()), None)
        except RuntimeError:  # read from a scrape on another thread while the loop changes the queue
            return 0.0
        return 0.0 if oldest is None else max(0.0, _now() - oldest.enqueued_at)


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 5, 10, 20, 40, then 60."""
    return doubling_delay(attempts, FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS)


def _now() -> float:
    """The event loop's clock (``PendingJob.queried_at`` uses the same one): ``time.monotonic``."""
    return time.monotonic()
