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

Errors: an invalid organization is fatal (:class:`MonitorStoppedError` ends :meth:`Monitor.run`, and
with it the controller); any other query error is logged and the next poll retries, starting the walk
again from the first page (a timeout or a rate limit keeps the walk's place).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Protocol

from engine.buildkite.errors import InvalidOrganizationError, RateLimitedError
from engine.buildkite.graphql import JobPage
from engine.controller.metrics import MonitorMetrics
from engine.controller.pipeline import DuplicateJobError, JobHandler, PendingJob, StaleJobError
from engine.model.jsonvalue import JSONObject
from engine.model.tags import job_accepted_by_controller, parse_tags

MIN_POLL_INTERVAL = 1.0
"""Seconds; a smaller configured interval is raised to this (Buildkite rate-limits GraphQL)."""
DEFAULT_PAGINATION_DEPTH_LIMIT = 5
BACKLOG = 100
"""Jobs waiting for a worker (one page) from which a cycle reads only the first page."""

_log = logging.getLogger(__name__)


class ScheduledJobSource(Protocol):
    """What the monitor needs from the GraphQL client (``BuildkiteGraphQL`` satisfies it)."""

    def scheduled_job_pages(
        self,
        org: str,
        queue: str,
        cluster_uuid: str = "",
        *,
        after: str | None = None,
        max_pages: int | None = None,
    ) -> AsyncGenerator[JobPage, None]: ...


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
        org: str,
        tags: Sequence[str],
        cluster_uuid: str = "",
        poll_interval: float = MIN_POLL_INTERVAL,
        stale_job_data_timeout: float = 10.0,
        job_creation_concurrency: int = 5,
        pagination_depth_limit: int = DEFAULT_PAGINATION_DEPTH_LIMIT,
        holds: Holds | None = None,
        rng: random.Random | None = None,
        ignored_job_tags: Sequence[str] = (),
    ) -> None:
        self._source = source
        self._handler = handler
        self._metrics = metrics
        self._org = org
        self._tags, _ = parse_tags(tags)
        self._cluster_uuid = cluster_uuid
        self.poll_interval = max(poll_interval, MIN_POLL_INTERVAL)
        self.stale_job_data_timeout = stale_job_data_timeout if stale_job_data_timeout > 0 else 10.0
        self.job_creation_concurrency = job_creation_concurrency if job_creation_concurrency > 0 else 5
        self.pagination_depth_limit = (
            pagination_depth_limit if pagination_depth_limit > 0 else DEFAULT_PAGINATION_DEPTH_LIMIT
        )
        self._holds = holds
        self._rng = rng or random.Random()
        self._ignored_job_tags = tuple(ignored_job_tags)
        """Job tags not matched against the controller's (the upstream-v0.47 profile's resource_class)."""
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
        queue = self._tags.get("queue")
        if queue is None:
            raise MonitorStoppedError("missing required tag: queue")
        loop = asyncio.get_running_loop()
        workers = [
            asyncio.create_task(self._worker(), name=f"monitor-worker-{n}")
            for n in range(self.job_creation_concurrency)
        ]
        self._metrics.up.set(1)
        try:
            while True:
                started = loop.time()
                wait_at_least = await self.poll_once(queue)
                elapsed = loop.time() - started
                await asyncio.sleep(max(self.poll_interval - elapsed, wait_at_least, 0.0))
        finally:
            self._metrics.up.set(0)
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    # ---- polling ---------------------------------------------------------------------------------

    async def poll_once(self, queue: str) -> float:
        """One cycle: fetch pages and queue their jobs, within ``stale-job-data-timeout``. Returns extra
        seconds to wait before the next poll (a rate limit's ``Retry-After``), else 0."""
        self._drop_stale()
        self._metrics.job_queries.inc()
        try:
            with self._metrics.job_query_seconds.time():
                async with asyncio.timeout(self.stale_job_data_timeout) as deadline:
                    await self._walk(queue)
        except TimeoutError:
            if not deadline.expired():
                raise
            self._metrics.job_query_errors.inc()
            _log.warning(
                "polling Buildkite took longer than stale-job-data-timeout (%gs); "
                "the next poll goes on from the last page that arrived",
                self.stale_job_data_timeout,
            )
        except InvalidOrganizationError as exc:
            self._metrics.job_query_errors.inc()
            raise MonitorStoppedError(
                f"{exc}: the organization slug is wrong or the Buildkite API token cannot see it"
            ) from None
        except RateLimitedError as exc:
            self._metrics.job_query_errors.inc()
            _log.warning("polling Buildkite: %s; waiting before the next poll", exc)
            return exc.retry_after
        except Exception as exc:
            self._cursor = None
            self._metrics.job_query_errors.inc()
            _log.warning("polling Buildkite failed, retrying at the next poll: %s", _one_line(exc))
        return 0.0

    async def _walk(self, queue: str) -> None:
        """One cycle's pages, at most ``pagination-depth-limit`` of them:

        * the **front**: from the first page (the listing is newest first, so new jobs appear there),
          page after page while each brings jobs that are neither in flight nor already queued; the
          first page with nothing new ends it. When the front uses the whole budget and is still
          finding new jobs (a burst larger than a cycle), the walk's cursor moves to where it stopped,
          so the next cycle picks up the rest of the burst instead of re-reading it;
        * the **walk**: with the budget left, onwards from the saved cursor, so pages deep in a
          listing of thousands of jobs in flight are seen over several cycles, not every second.

        While the workers are a page or more behind, only the first page is read: new jobs are still
        seen at once, and nothing is fetched whose jobs would go stale in the queue."""
        if len(self._work) >= BACKLOG:
            await self._fetch(queue, after=None, pages=1, advance=False)
            return
        budget = self.pagination_depth_limit
        if self._cursor is None:
            await self._fetch(queue, after=None, pages=budget, advance=True)
            return
        read, end, finding_new = await self._fetch_front(queue, budget)
        if finding_new and read == budget and end is not None:
            self._cursor = end
            return
        if budget > read:
            await self._fetch(queue, after=self._cursor, pages=budget - read, advance=True)

    async def _fetch_front(self, queue: str, budget: int) -> tuple[int, str | None, bool]:
        """Pages from the first while they bring new jobs: (pages read, the last one's end cursor,
        whether the last one brought new jobs)."""
        loop = asyncio.get_running_loop()
        read, end, finding_new = 0, None, False
        walk = self._source.scheduled_job_pages(
            self._org, queue, self._cluster_uuid, after=None, max_pages=budget
        )
        async with contextlib.aclosing(walk):
            while True:
                requested_at = loop.time()
                try:
                    page = await anext(walk)
                except StopAsyncIteration:
                    break
                read, end = read + 1, page.end_cursor
                finding_new = self._queue_page(page.nodes, requested_at) > 0
                if not finding_new:
                    break
        return read, end, finding_new

    async def _fetch(self, queue: str, *, after: str | None, pages: int, advance: bool) -> None:
        """Fetch up to ``pages`` pages from ``after``, queueing each on arrival; with ``advance``,
        the walk's cursor moves with each page (so a cycle cut short keeps what it read)."""
        loop = asyncio.get_running_loop()
        walk = self._source.scheduled_job_pages(
            self._org, queue, self._cluster_uuid, after=after, max_pages=pages
        )
        async with contextlib.aclosing(walk):
            while True:
                requested_at = loop.time()
                try:
                    page = await anext(walk)
                except StopAsyncIteration:
                    return
                if advance:
                    self._cursor = page.end_cursor
                self._queue_page(page.nodes, requested_at)

    def _queue_page(self, nodes: list[JSONObject], queried_at: float) -> int:
        """Queue a page's jobs; returns how many were not queued before (new work)."""
        self._metrics.jobs_returned.inc(len(nodes))
        if not nodes:
            return 0
        _log.debug("a page of %d scheduled jobs", len(nodes))
        stale_at = queried_at + self.stale_job_data_timeout
        jobs = list(nodes)
        self._rng.shuffle(jobs)
        fresh = 0
        for node in jobs:
            job = self._pending_job(node, queried_at, stale_at)
            if job is None:
                continue
            if self._holds is not None and self._holds(job.uuid, queried_at):
                self._metrics.jobs_skipped_in_flight.inc()
                continue
            fresh += job.uuid not in self._work
            self._work[job.uuid] = job  # a job already waiting keeps its turn, with fresher data
        if self._work:
            self._work_ready.set()
        return fresh

    def _drop_stale(self) -> None:
        """Forget queued jobs whose data went stale (a later poll queues them again, fresh)."""
        now = asyncio.get_running_loop().time()
        stale = [uuid for uuid, job in self._work.items() if job.stale_at <= now]
        for uuid in stale:
            del self._work[uuid]
        if stale:
            self._metrics.stale_jobs.inc(len(stale))
            _log.info(
                "%d jobs not handled before their data went stale; the next poll retries them", len(stale)
            )

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
                continue
            self._metrics.jobs_reached_worker.inc()
            try:
                await self._handler(job)
            except DuplicateJobError:
                self._metrics.job_handler_errors.labels(reason="duplicate").inc()
            except StaleJobError:
                self._metrics.job_handler_errors.labels(reason="stale").inc()
                self._metrics.stale_jobs.inc()
            except Exception as exc:
                self._metrics.job_handler_errors.labels(reason="other").inc()
                _log.warning("job %s: %s", job.uuid, _one_line(exc))
            else:
                self._metrics.jobs_handled.inc()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
