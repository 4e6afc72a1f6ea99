"""The limiter: at most ``max-in-flight`` unfinished Kubernetes Jobs from this controller (spec §4.5).

Upstream kept a bucket of tokens and moved them on events, which leaks a token whenever an event is
missed or arrives in an unexpected order (a Job seen for the first time already finished, a relist).
Here the tokens in use are *derived* from sets keyed by Buildkite job UUID, so each Job holds at most
one token however many events mention it:

* ``creating``: jobs that took a token and are being scheduled right now;
* ``running``: UUIDs of Jobs the informer (or a successful create) reports as not finished.

``in use = |creating ∪ running|`` and ``available = max-in-flight - in use``. Consequences:

* start-up seeding: the informer's initial list puts every unfinished Job in ``running``; more of them
  than the limit (a restart with a lower limit) is an *underflow*, counted, not fatal;
* a token comes back when a Job finishes (``Complete``/``Failed`` condition), is deleted while
  unfinished, or when scheduling ends without a Job (any error from the next stage: denial, parse
  error, Invalid, transient error), which fixes upstream's leak after failing a Buildkite job;
* a job that waits past its ``stale_at`` gives up without a token (:class:`StaleJobError`).

All state lives on the event loop; waiters are woken in FIFO order.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from engine.controller.metrics import LimiterMetrics, count_informer_event
from engine.controller.pipeline import JobHandler, PendingJob, StaleJobError
from engine.kube.informer import WatchEvent
from engine.kube.labels import job_is_finished, job_uuid_of

_log = logging.getLogger(__name__)


class Limiter:
    """Hold a max-in-flight token for each Job from creation until it finishes or is deleted."""

    def __init__(self, next_handler: JobHandler, max_in_flight: int, metrics: LimiterMetrics) -> None:
        if max_in_flight <= 0:
            raise ValueError("the limiter needs max-in-flight > 0 (0 means: do not install a limiter)")
        self._next = next_handler
        self._capacity = max_in_flight
        self._metrics = metrics
        self._creating: set[str] = set()
        self._running: set[str] = set()
        self._finished: set[str] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        metrics.max_in_flight.set(max_in_flight)
        self._publish()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def waiting(self) -> int:
        """Jobs waiting for a token now (each was promised to this controller: see the monitor's
        reservation budget)."""
        return len(self._waiters)

    @property
    def available(self) -> int:
        """Tokens free now; negative after an underflow (more unfinished Jobs than the limit)."""
        return self._capacity - len(self._creating | self._running)

    async def handle(self, job: PendingJob) -> None:
        """Wait for a token (until the job goes stale), then hand the job on; keep the token only if a
        Kubernetes Job now exists."""
        self._metrics.job_handler_calls.inc()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._acquire(job)
        except StaleJobError:
            self._metrics.job_handler_errors.inc()
            raise
        self._metrics.token_wait_seconds.observe(loop.time() - started)
        try:
            await self._next(job)
        except BaseException:
            self._metrics.job_handler_errors.inc()
            self._creating.discard(job.uuid)
            self._release_to_waiters()
            raise
        self._creating.discard(job.uuid)
        if job.uuid not in self._finished:
            self._running.add(job.uuid)
        self._release_to_waiters()

    def on_job_event(self, event: WatchEvent) -> None:
        """Informer handler for Kubernetes Jobs: track which Jobs are unfinished."""
        count_informer_event(self._metrics, event.kind)
        uuid = job_uuid_of(event.obj)
        if uuid is None:
            return
        if event.kind == "deleted":
            self._finished.discard(uuid)
            self._stop_holding(uuid, "deleted")
        elif job_is_finished(event.obj):
            self._finished.add(uuid)
            self._stop_holding(uuid, "finished")
        else:
            self._finished.discard(uuid)
            if uuid not in self._running:
                if uuid not in self._creating and self.available <= 0:
                    self._metrics.token_underflows.labels(source="informer").inc()
                    _log.info(
                        "Job for %s is unfinished but no max-in-flight token is free (limit %d)",
                        uuid,
                        self._capacity,
                    )
                self._running.add(uuid)
        self._publish()

    async def _acquire(self, job: PendingJob) -> None:
        """Take a token for ``job``; queue behind earlier waiters (FIFO) until ``job.stale_at``."""
        if not self._waiters and self.available > 0:
            self._take(job.uuid)
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            while True:
                remaining = job.stale_at - loop.time()
                if remaining <= 0:
                    raise StaleJobError(job.uuid)
                try:
                    async with asyncio.timeout(remaining):
                        await asyncio.shield(waiter)
                except TimeoutError:
                    raise StaleJobError(job.uuid) from None
                if self.available > 0:
                    self._take(job.uuid)
                    return
                # Woken, but the token went to a Job the informer reported meanwhile: wait again,
                # keeping this job's place at the head of the queue.
                self._waiters.remove(waiter)
                waiter = loop.create_future()
                self._waiters.appendleft(waiter)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            # Whether this job took a token or gave up, tokens may be left over (several came back
            # at once, or the one promised to this job is unused): offer them to those still waiting.
            self._release_to_waiters()

    def _take(self, uuid: str) -> None:
        self._creating.add(uuid)
        self._publish()

    def _stop_holding(self, uuid: str, why: str) -> None:
        if uuid in self._running:
            self._running.discard(uuid)
            _log.debug("max-in-flight token returned: Job for %s %s", uuid, why)
            self._release_to_waiters()

    def _release_to_waiters(self) -> None:
        """Wake as many waiters, oldest first, as there are free tokens."""
        free = self.available
        for waiter in self._waiters:
            if free <= 0:
                break
            if not waiter.done():
                waiter.set_result(None)
            free -= 1  # a waiter woken earlier that has not run yet also has a token promised
        self._publish()

    def _publish(self) -> None:
        self._metrics.tokens_available.set(self.available)
