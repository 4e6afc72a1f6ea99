"""The monitor: poll Buildkite for scheduled jobs and feed them into the pipeline (spec §4.3).

Each cycle lists *all* pages of scheduled jobs for the controller's queue, drops jobs whose tags this
controller does not serve, shuffles the rest (so one job that can never be scheduled cannot starve the
others when several controllers share a queue) and lets ``job-creation-concurrency`` workers hand them
to the deduper. The cycle ends when every job was handled or the poll's data went stale
(``stale-job-data-timeout``); only then does the next poll start, so a slow Kubernetes API slows
polling down instead of piling up work.

Upstream defects fixed here: the poll interval is at least 1 s (upstream clamped it the wrong way);
workers stop as soon as the jobs run out (upstream kept every cycle with jobs alive for the whole stale
timeout); all pages are fetched (upstream saw the first 100 jobs only). Like upstream's later
releases, a rate-limited poll (HTTP 429) waits for ``Retry-After`` before asking again.

Errors: an invalid organization is fatal (:class:`MonitorStoppedError` ends :meth:`Monitor.run`, and
with it the controller); any other query error is logged and the next poll retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator, Sequence
from typing import Protocol

from engine.buildkite.errors import InvalidOrganizationError, RateLimitedError
from engine.controller.metrics import MonitorMetrics
from engine.controller.pipeline import DuplicateJobError, JobHandler, PendingJob, StaleJobError
from engine.model.jsonvalue import JSONObject
from engine.model.tags import job_accepted_by_controller, parse_tags

MIN_POLL_INTERVAL = 1.0
"""Seconds; a smaller configured interval is raised to this (Buildkite rate-limits GraphQL)."""

_log = logging.getLogger(__name__)


class ScheduledJobSource(Protocol):
    """What the monitor needs from the GraphQL client (``BuildkiteGraphQL`` satisfies it)."""

    async def scheduled_jobs(self, org: str, queue: str, cluster_uuid: str = "") -> list[JSONObject]: ...


class MonitorStoppedError(Exception):
    """The monitor cannot go on (bad organization, missing queue tag); the controller must stop."""


class Monitor:
    """Poll loop plus per-poll workers. Construct, then ``await run()`` until cancelled or fatal."""

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
        self._rng = rng or random.Random()
        self._ignored_job_tags = tuple(ignored_job_tags)
        """Job tags not matched against the controller's (the upstream-v0.47 profile's resource_class)."""

    async def run(self) -> None:
        """Poll until cancelled; raise :class:`MonitorStoppedError` when polling cannot work."""
        queue = self._tags.get("queue")
        if queue is None:
            raise MonitorStoppedError("missing required tag: queue")
        loop = asyncio.get_running_loop()
        self._metrics.up.set(1)
        try:
            while True:
                started = loop.time()
                wait_at_least = await self.poll_once(queue)
                elapsed = loop.time() - started
                await asyncio.sleep(max(self.poll_interval - elapsed, wait_at_least, 0.0))
        finally:
            self._metrics.up.set(0)

    async def poll_once(self, queue: str) -> float:
        """One cycle: query, then hand the jobs on. Returns extra seconds to wait before the next poll
        (a rate limit's ``Retry-After``), else 0."""
        loop = asyncio.get_running_loop()
        queried_at = loop.time()
        self._metrics.job_queries.inc()
        try:
            with self._metrics.job_query_seconds.time():
                nodes = await self._source.scheduled_jobs(self._org, queue, self._cluster_uuid)
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
            self._metrics.job_query_errors.inc()
            _log.warning("polling Buildkite failed, retrying at the next poll: %s", _one_line(exc))
            return 0.0
        self._metrics.jobs_returned.inc(len(nodes))
        if nodes:
            _log.debug("poll returned %d scheduled jobs", len(nodes))
            await self._hand_on(nodes, queried_at)
        return 0.0

    async def _hand_on(self, nodes: list[JSONObject], queried_at: float) -> None:
        loop = asyncio.get_running_loop()
        stale_at = loop.time() + self.stale_job_data_timeout
        jobs = list(nodes)
        self._rng.shuffle(jobs)
        pending = iter(jobs)
        workers = [
            asyncio.create_task(self._worker(pending, queried_at, stale_at), name=f"monitor-worker-{n}")
            for n in range(min(self.job_creation_concurrency, len(jobs)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
        left = sum(1 for _ in pending)
        if left:
            self._metrics.stale_jobs.inc(left)
            _log.info("%d jobs not handled before their data went stale; the next poll retries them", left)

    async def _worker(self, pending: Iterator[JSONObject], queried_at: float, stale_at: float) -> None:
        loop = asyncio.get_running_loop()
        for node in pending:
            job = self._pending_job(node, queried_at, stale_at)
            if job is None:
                continue
            self._metrics.jobs_reached_worker.inc()
            try:
                await self._handler(job)
            except DuplicateJobError:
                self._metrics.job_handler_errors.labels(reason="duplicate").inc()
            except StaleJobError:
                self._metrics.job_handler_errors.labels(reason="stale").inc()
                self._metrics.stale_jobs.inc()
                return  # the poll's data is stale for every job: leave the rest to the next poll
            except Exception as exc:
                self._metrics.job_handler_errors.labels(reason="other").inc()
                _log.warning("job %s: %s", job.uuid, _one_line(exc))
            else:
                self._metrics.jobs_handled.inc()
            if loop.time() >= stale_at:
                return

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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
