"""The monitor: poll Buildkite for scheduled jobs and feed them into the pipeline (spec §4.3, §13.2).

Two loops that never wait for each other, so a fault on one path cannot hold up the other:

* **polling**: every ``poll-interval`` (at least 1 s) one *cycle* fetches pages of scheduled jobs and
  hands each page on **as soon as it arrives**: the first Job of a large backlog is created while later
  pages are still on their way. A cycle fetches at most ``pagination-depth-limit`` pages: from the
  first page (where new jobs appear) while pages bring new jobs, then onwards from where the previous
  cycle stopped, so a controller with thousands of jobs in flight walks the listing over several
  cycles instead of re-fetching every page every second, and a new burst in front of them is read at
  once. A cycle never outlives ``stale-job-data-timeout`` (each request is also bounded by
  ``http-timeout``): a hung request costs at most one cycle. A rate-limited poll (HTTP 429) waits for
  ``Retry-After`` before asking again.
* **workers**: ``job-creation-concurrency`` long-lived workers take jobs from a work queue and hand
  them to the deduper. The queue is keyed by job UUID: a job seen again by a later poll is refreshed
  in place (fresh data, same turn), never queued twice. Jobs whose tags this controller does not serve
  are dropped, jobs the deduper already holds (in flight, or waiting to be failed) are not queued, and
  a job whose poll data went stale before a worker reached it is dropped for a later poll to see again.

Each page's jobs are shuffled before they are queued, so one job that can never be scheduled cannot
starve the others when several controllers share a queue.

Upstream defects fixed here: the poll interval is at least 1 s (upstream clamped it the wrong way);
workers do not idle out the stale timeout after every poll (upstream kept each cycle with jobs alive
for the whole timeout); every page is seen, not only the first 100 jobs; and one hung request no
longer stops scheduling for upstream's hard-coded 60 s.

A walk that has gone on from where earlier cycles stopped for ``query-reset-interval`` starts again
from the first page, so a job a cursor moved past is not missed for long.

**Reserving** (the Stacks API mode, with a ``reserver``): a job is only queued once this controller
holds it. Each page's candidates (tags served, not held, not queued already) are reserved in one
``batch-reserve`` call, highest priority first and no more than there is room for (``capacity``: free
max-in-flight tokens not yet promised to a queued or waiting job; everything when unlimited), so a
controller never sits on jobs another controller could start now. A job that was not reserved is left
alone. A reserved job is not listed any more, so it cannot go stale the way poll data does: it stays
queued until a worker takes it, until shortly before its reservation expires (``reservation_ttl``).
When handling it fails in a transient way it is queued again after a back-off (1 s, doubling, at most
30 s) while the reservation lasts; a job let go without a Kubernetes Job is counted as an expired
reservation (Buildkite offers it again when the reservation runs out).

Errors: a listing that cannot work (an invalid organization, a Stacks API listing refused with a 4xx)
is fatal (:class:`MonitorStoppedError` ends :meth:`Monitor.run`, and with it the controller); any other
query error is logged and the next poll retries, starting the walk again from the first page (a
timeout or a rate limit keeps the walk's place). A ``Retry-After`` on a listing, error or not, delays
the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace
from typing import Protocol

from engine.buildkite.errors import InvalidOrganizationError, ListingImpossibleError, RateLimitedError
from engine.buildkite.pages import JobPage
from engine.controller.backoff import doubling_delay
from engine.controller.failer import one_line
from engine.controller.metrics import MonitorMetrics, StacksMetrics
from engine.controller.pipeline import (
    DuplicateJobError,
    JobHandler,
    JobNotCreatedError,
    JobUnavailableError,
    PendingJob,
    StaleJobError,
)
from engine.model.jsonvalue import JSONObject
from engine.model.tags import job_accepted_by_controller, parse_tags

MIN_POLL_INTERVAL = 1.0
"""Seconds; a smaller configured interval is raised to this (Buildkite rate-limits GraphQL)."""
DEFAULT_PAGINATION_DEPTH_LIMIT = 5
DEFAULT_QUERY_RESET_INTERVAL = 10.0
BACKLOG = 100
"""Jobs waiting for a worker (one page) from which a cycle reads only the first page."""
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
"""Back-off of a reserved job whose handling failed in a transient way."""

_log = logging.getLogger(__name__)


class ScheduledJobSource(Protocol):
    """Pages of scheduled jobs for this controller's queue, from ``after`` (``None``: the first page),
    at most ``max_pages`` of them (``engine.controller.sources`` has one per API)."""

    def scheduled_job_pages(
        self, *, after: str | None = None, max_pages: int | None = None
    ) -> AsyncGenerator[JobPage, None]: ...


class Reserver(Protocol):
    """Reserves jobs before they are queued (the Stacks API's ``batch-reserve``); returns the UUIDs
    now held by this controller."""

    async def reserve(self, uuids: Sequence[str]) -> list[str]: ...


Holds = Callable[[str, float], bool]
"""``holds(uuid, seen_at)``: the job must not be queued (the deduper's :meth:`~Deduper.holds`)."""


class MonitorStoppedError(Exception):
    """The monitor cannot go on (bad organization, missing queue tag); the controller must stop."""


class Monitor:
    """Poll loop plus workers. Construct, then ``await run()`` until cancelled or fatal."""

    def __init__(
        self,
        source: ScheduledJobSource,
        handler: JobHandler,
        metrics: MonitorMetrics,
        *,
        tags: Sequence[str],
        poll_interval: float = MIN_POLL_INTERVAL,
        stale_job_data_timeout: float = 10.0,
        job_creation_concurrency: int = 5,
        pagination_depth_limit: int = DEFAULT_PAGINATION_DEPTH_LIMIT,
        query_reset_interval: float = DEFAULT_QUERY_RESET_INTERVAL,
        holds: Holds | None = None,
        rng: random.Random | None = None,
        ignored_job_tags: Sequence[str] = (),
        reserver: Reserver | None = None,
        reservation_ttl: float = 0.0,
        capacity: Callable[[], int | None] | None = None,
        stacks_metrics: StacksMetrics | None = None,
    ) -> None:
        """``tags``: the controller's tags a job's tags must be a subset of, but for
        ``ignored_job_tags``, left out on both sides (``ControllerConfig.unmatched_job_tags``: the
        profile's, and ``queue`` in the Stacks API mode, whose listing is per queue already).
        ``reserver``, ``reservation_ttl``, ``capacity``, ``stacks_metrics``: reserving (see the module
        doc); ``capacity()`` is how many more jobs may be taken on now, ``None`` for no limit."""
        self._source = source
        self._handler = handler
        self._metrics = metrics
        self._ignored_job_tags = tuple(ignored_job_tags)
        self._tags, _ = parse_tags(tags)
        for ignored in self._ignored_job_tags:
            self._tags.pop(ignored, None)
        self._reserver = reserver
        self._reservation_ttl = reservation_ttl
        self._capacity = capacity
        self._stacks_metrics = stacks_metrics
        self._retries: dict[str, int] = {}
        self._retry_handles: dict[str, asyncio.TimerHandle] = {}
        self.query_reset_interval = (
            query_reset_interval if query_reset_interval > 0 else DEFAULT_QUERY_RESET_INTERVAL
        )
        self._walk_started_at = 0.0
        self._wait_hint = 0.0
        """The longest ``Retry-After`` the current cycle was given."""
        self.poll_interval = max(poll_interval, MIN_POLL_INTERVAL)
        self.stale_job_data_timeout = stale_job_data_timeout if stale_job_data_timeout > 0 else 10.0
        self.job_creation_concurrency = job_creation_concurrency if job_creation_concurrency > 0 else 5
        self.pagination_depth_limit = (
            pagination_depth_limit if pagination_depth_limit > 0 else DEFAULT_PAGINATION_DEPTH_LIMIT
        )
        self._holds = holds
        self._rng = rng or random.Random()
        self._cursor: str | None = None
        """Where the next cycle continues the walk (``None``: from the first page)."""
        self._work: dict[str, PendingJob] = {}
        self._work_ready = asyncio.Event()
        metrics.work_queue_length.set_function(lambda: len(self._work))

    @property
    def queued(self) -> list[str]:
        """UUIDs waiting for a worker, in turn order (for tests and diagnostics)."""
        return list(self._work)

    async def run(self) -> None:
        """Poll until cancelled; raise :class:`MonitorStoppedError` when polling cannot work."""
        loop = asyncio.get_running_loop()
        workers = [
            asyncio.create_task(self._worker(), name=f"monitor-worker-{n}")
            for n in range(self.job_creation_concurrency)
        ]
        self._metrics.up.set(1)
        try:
            while True:
                started = loop.time()
                wait_at_least = await self.poll_once()
                elapsed = loop.time() - started
                await asyncio.sleep(max(self.poll_interval - elapsed, wait_at_least, 0.0))
        finally:
            self._metrics.up.set(0)
            for handle in self._retry_handles.values():
                handle.cancel()
            self._retry_handles.clear()
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    # ---- polling ---------------------------------------------------------------------------------

    async def poll_once(self) -> float:
        """One cycle: fetch pages and queue their jobs, within ``stale-job-data-timeout``. Returns extra
        seconds to wait before the next poll (a ``Retry-After``), else 0."""
        self._drop_stale()
        self._metrics.job_queries.inc()
        self._wait_hint = 0.0
        try:
            with self._metrics.job_query_seconds.time():
                async with asyncio.timeout(self.stale_job_data_timeout) as deadline:
                    await self._walk()
        except TimeoutError:
            if not deadline.expired():
                raise
            self._metrics.job_query_errors.inc()
            _log.warning(
                "polling Buildkite took longer than stale-job-data-timeout (%gs); "
                "the next poll goes on from the last page that arrived",
                self.stale_job_data_timeout,
            )
        except ListingImpossibleError as exc:
            self._metrics.job_query_errors.inc()
            if isinstance(exc, InvalidOrganizationError):
                raise MonitorStoppedError(
                    f"{exc}: the organization slug is wrong or the Buildkite API token cannot see it"
                ) from None
            raise MonitorStoppedError(str(exc)) from None
        except RateLimitedError as exc:
            self._metrics.job_query_errors.inc()
            _log.warning("polling Buildkite: %s; waiting before the next poll", exc)
            return max(exc.retry_after, self._wait_hint)
        except Exception as exc:
            self._cursor = None
            self._metrics.job_query_errors.inc()
            _log.warning("polling Buildkite failed, retrying at the next poll: %s", one_line(exc))
            return max(self._wait_hint, getattr(exc, "retry_after", None) or 0.0)
        return self._wait_hint

    async def _walk(self) -> None:
        """One cycle's pages, at most ``pagination-depth-limit`` of them:

        * the **front**: from the first page (the listing is newest first, so new jobs appear there),
          page after page while each brings jobs that are neither in flight nor already queued; the
          first page with nothing new ends it. When the front uses the whole budget and is still
          finding new jobs (a burst larger than a cycle), the walk's cursor moves to where it stopped,
          so the next cycle picks up the rest of the burst instead of re-reading it;
        * the **walk**: with the budget left, onwards from the saved cursor, so pages deep in a
          listing of thousands of jobs in flight are seen over several cycles, not every second. A walk
          that has gone on for ``query-reset-interval`` starts again from the first page.

        While the workers are a page or more behind, only the first page is read: new jobs are still
        seen at once, and nothing is fetched whose jobs would go stale in the queue. A page that asks
        for a pause (``Retry-After``) ends the cycle."""
        loop = asyncio.get_running_loop()
        if self._cursor is not None and loop.time() - self._walk_started_at >= self.query_reset_interval:
            self._cursor = None  # start again from the first page now and then
        if len(self._work) >= BACKLOG:
            await self._fetch(after=None, pages=1, advance=False)
            return
        budget = self.pagination_depth_limit
        if self._cursor is None:
            await self._fetch(after=None, pages=budget, advance=True)
            return
        read, end, finding_new = await self._fetch_front(budget)
        if self._wait_hint:
            return  # the server asked for a pause
        if finding_new and read == budget and end is not None:
            self._cursor = end
            return
        if budget > read:
            await self._fetch(after=self._cursor, pages=budget - read, advance=True)

    async def _fetch_front(self, budget: int) -> tuple[int, str | None, bool]:
        """Pages from the first while they bring new jobs: (pages read, the last one's end cursor,
        whether the last one brought new jobs)."""
        loop = asyncio.get_running_loop()
        read, end, finding_new = 0, None, False
        walk = self._source.scheduled_job_pages(after=None, max_pages=budget)
        async with contextlib.aclosing(walk):
            while True:
                requested_at = loop.time()
                try:
                    page = await anext(walk)
                except StopAsyncIteration:
                    break
                read, end = read + 1, page.end_cursor
                if page.retry_after:
                    self._wait_hint = max(self._wait_hint, page.retry_after)
                finding_new = await self._queue_page(page.nodes, requested_at) > 0
                if not finding_new or page.retry_after:
                    break
        return read, end, finding_new

    async def _fetch(self, *, after: str | None, pages: int, advance: bool) -> None:
        """Fetch up to ``pages`` pages from ``after``, queueing each on arrival; with ``advance``,
        the walk's cursor moves with each page (so a cycle cut short keeps what it read)."""
        loop = asyncio.get_running_loop()
        walk = self._source.scheduled_job_pages(after=after, max_pages=pages)
        async with contextlib.aclosing(walk):
            while True:
                requested_at = loop.time()
                try:
                    page = await anext(walk)
                except StopAsyncIteration:
                    return
                if advance:
                    if self._cursor is None and page.end_cursor is not None:
                        self._walk_started_at = requested_at
                    self._cursor = page.end_cursor
                if page.retry_after:
                    self._wait_hint = max(self._wait_hint, page.retry_after)
                await self._queue_page(page.nodes, requested_at)
                if page.retry_after:
                    return  # the server asked for a pause: no more pages this cycle

    async def _queue_page(self, nodes: list[JSONObject], queried_at: float) -> int:
        """Queue a page's jobs (reserving them first, with a reserver); returns how many were not
        queued before (new work)."""
        self._metrics.jobs_returned.inc(len(nodes))
        if not nodes:
            return 0
        _log.debug("a page of %d scheduled jobs", len(nodes))
        stale_at = queried_at + self.stale_job_data_timeout
        jobs = list(nodes)
        self._rng.shuffle(jobs)
        candidates: list[PendingJob] = []
        for node in jobs:
            job = self._pending_job(node, queried_at, stale_at)
            if job is None:
                continue
            if self._holds is not None and self._holds(job.uuid, queried_at):
                self._metrics.jobs_skipped_in_flight.inc()
                continue
            if self._reserver is not None and job.uuid in self._work:
                continue  # already ours and waiting for a worker
            candidates.append(job)
        if self._reserver is not None:
            candidates = await self._reserve(candidates)
        fresh = 0
        for job in candidates:
            fresh += job.uuid not in self._work
            self._work[job.uuid] = job  # a job already waiting keeps its turn, with fresher data
        if self._work:
            self._work_ready.set()
        return fresh

    async def _reserve(self, candidates: list[PendingJob]) -> list[PendingJob]:
        """The candidates this controller now holds (see the module doc), highest priority first."""
        assert self._reserver is not None
        room = self._capacity() if self._capacity is not None else None
        if room is not None:
            room -= len(self._work)
            if room <= 0:
                return []
        candidates.sort(key=lambda job: -_priority(job.node))  # stable: the shuffle breaks ties
        wanted = candidates if room is None else candidates[:room]
        if not wanted:
            return []
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        reserved = set(await self._reserver.reserve([job.uuid for job in wanted]))
        stale_at = asked_at + self._reservation_ttl
        return [replace(job, reserved=True, stale_at=stale_at) for job in wanted if job.uuid in reserved]

    def _drop_stale(self) -> None:
        """Forget queued jobs whose data went stale (a later poll queues them again, fresh)."""
        now = asyncio.get_running_loop().time()
        stale = [uuid for uuid, job in self._work.items() if job.stale_at <= now]
        for uuid in stale:
            job = self._work.pop(uuid)
            if job.reserved:
                self._let_go(job, "stale")
        if stale:
            self._metrics.stale_jobs.inc(len(stale))
            _log.info(
                "%d jobs not handled before their data went stale; the next poll retries them", len(stale)
            )

    def _let_go(self, job: PendingJob, reason: str) -> None:
        """A reserved job leaves this controller without a Kubernetes Job."""
        self._retries.pop(job.uuid, None)
        if self._stacks_metrics is not None:
            self._stacks_metrics.reservations_expired.labels(reason=reason).inc()
        _log.info(
            "letting reserved job %s go (%s); Buildkite offers it again when its reservation expires",
            job.uuid,
            reason,
        )

    def _retry_later(self, job: PendingJob) -> None:
        """Queue a reserved job again after a back-off, if its reservation lasts that long."""
        loop = asyncio.get_running_loop()
        attempts = self._retries.get(job.uuid, 0) + 1
        delay = doubling_delay(attempts, FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS)
        if loop.time() + delay >= job.stale_at:
            self._let_go(job, "retries")
            return
        self._retries[job.uuid] = attempts
        if self._stacks_metrics is not None:
            self._stacks_metrics.reserved_job_retries.inc()

        def requeue() -> None:
            self._retry_handles.pop(job.uuid, None)
            if self._holds is not None and self._holds(job.uuid, loop.time()):
                self._retries.pop(job.uuid, None)
                return
            self._work.setdefault(job.uuid, job)
            self._work_ready.set()

        self._retry_handles[job.uuid] = loop.call_later(delay, requeue)

    def _pending_job(self, node: JSONObject, queried_at: float, stale_at: float) -> PendingJob | None:
        uuid = node.get("uuid")
        rules_value = node.get("agentQueryRules")
        rules = tuple(str(rule) for rule in rules_value) if isinstance(rules_value, list) else ()
        if not isinstance(uuid, str) or not uuid:
            _log.warning("ignoring a scheduled job without a uuid")
            return None
        job_tags, _ = parse_tags(rules)
        for ignored in self._ignored_job_tags:
            job_tags.pop(ignored, None)
        if not job_accepted_by_controller(job_tags, self._tags):
            self._metrics.jobs_filtered_out.inc()
            _log.debug("job %s asks for tags %s this controller does not have", uuid, list(rules))
            return None
        return PendingJob(
            uuid=uuid, node=node, agent_query_rules=rules, queried_at=queried_at, stale_at=stale_at
        )

    # ---- workers ---------------------------------------------------------------------------------

    async def _next_job(self) -> PendingJob:
        while not self._work:
            self._work_ready.clear()
            await self._work_ready.wait()
        uuid = next(iter(self._work))
        return self._work.pop(uuid)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._next_job()
            if loop.time() >= job.stale_at:
                self._metrics.stale_jobs.inc()
                if job.reserved:
                    self._let_go(job, "stale")
                continue
            self._metrics.jobs_reached_worker.inc()
            try:
                await self._handler(job)
            except DuplicateJobError:
                self._metrics.job_handler_errors.labels(reason="duplicate").inc()
                self._retries.pop(job.uuid, None)
            except StaleJobError:
                self._metrics.job_handler_errors.labels(reason="stale").inc()
                self._metrics.stale_jobs.inc()
                if job.reserved:
                    self._let_go(job, "stale")
            except JobUnavailableError as exc:
                self._metrics.job_handler_errors.labels(reason="unavailable").inc()
                _log.warning("%s", one_line(exc))
                if job.reserved:
                    self._let_go(job, "unavailable")
            except Exception as exc:
                self._metrics.job_handler_errors.labels(reason="other").inc()
                _log.warning("job %s: %s", job.uuid, one_line(exc))
                if job.reserved and not isinstance(exc, JobNotCreatedError):
                    self._retry_later(job)
                else:
                    self._retries.pop(job.uuid, None)
            else:
                self._metrics.jobs_handled.inc()
                self._retries.pop(job.uuid, None)


def _priority(node: JSONObject) -> int:
    """A job document's ``priority { number }`` (0 when absent)."""
    priority = node.get("priority")
    number = priority.get("number") if isinstance(priority, dict) else priority
    return number if isinstance(number, int) and not isinstance(number, bool) else 0
