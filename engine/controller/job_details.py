"""Completing a reserved job before it is decided (the Stacks API mode): its details, then a token.

The Stacks API lists a job without its env and command; they come from ``GET /stacks/{key}/jobs/{uuid}``
once the job is reserved. This stage sits after the limiter, so it runs only for a job that has a
max-in-flight token (capacity to run it now), and hands the scheduler the job document completed in
the GraphQL node shape (``engine.buildkite.stacks_jobs``). With ``job-acquisition-tokens`` it then asks
for the job's acquisition token, immediately before the pod is created, as Buildkite's guide says;
the token travels on the ``PendingJob`` (never in the document, never in a log).

Each call is tried up to :data:`ATTEMPTS` times (1 s, doubling, with jitter, or the ``Retry-After``
the server named), never past the job's ``stale_at``. Then:

* the job is gone (404) or Buildkite refuses the call (another 4xx), or no token was issued for it →
  :class:`~engine.controller.pipeline.JobUnavailableError`: it cannot be run by asking again, and its
  reservation is left to expire (the token guide: never fall back to the cluster token);
* still failing otherwise → the last error is raised: the monitor tries the job again later while
  its reservation lasts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol, TypeVar

from prometheus_client import Counter

from engine.buildkite.errors import BuildkiteAPIError, RateLimitedError, StacksAPIError
from engine.buildkite.stacks import AcquisitionToken, JobDetails
from engine.buildkite.stacks_jobs import with_details
from engine.controller.metrics import StacksMetrics
from engine.controller.pipeline import JobHandler, JobUnavailableError, PendingJob

ATTEMPTS = 5
FIRST_DELAY = 1.0
JITTER = 0.5

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


class JobDetailsAPI(Protocol):
    """The Stacks API calls this stage makes (``StacksAPI`` satisfies it)."""

    async def job(self, job_uuid: str) -> JobDetails | None: ...

    async def issue_acquisition_tokens(
        self, job_uuids: list[str], lifetime_seconds: int = 0
    ) -> tuple[list[AcquisitionToken], list[str]]: ...


class JobDetailsStage:
    """Fetch a reserved job's env and command (and, when asked, its acquisition token), then hand it on."""

    def __init__(
        self,
        stacks: JobDetailsAPI,
        next_handler: JobHandler,
        metrics: StacksMetrics,
        *,
        acquisition_tokens: bool = False,
        token_lifetime_seconds: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._stacks = stacks
        self._next = next_handler
        self._metrics = metrics
        self._acquisition_tokens = acquisition_tokens
        self._token_lifetime = token_lifetime_seconds
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def handle(self, job: PendingJob) -> None:
        details = await self._call(
            job, "get its details", lambda: self._stacks.job(job.uuid), self._metrics.job_details
        )
        if details is None:
            self._metrics.job_details.labels(result="missing").inc()
            raise JobUnavailableError(job.uuid, "Buildkite no longer has this job (404)")
        self._metrics.job_details.labels(result="fetched").inc()
        token = await self._acquisition_token(job) if self._acquisition_tokens else None
        node = with_details(job.node, details.env, details.command)
        await self._next(replace(job, node=node, acquisition_token=token))

    async def _acquisition_token(self, job: PendingJob) -> str:
        issued, not_issued = await self._call(
            job,
            "issue its job acquisition token",
            lambda: self._stacks.issue_acquisition_tokens([job.uuid], self._token_lifetime),
            self._metrics.acquisition_tokens,
        )
        tokens = [item for item in issued if item.job_uuid == job.uuid and item.token]
        if len(tokens) != 1 or job.uuid in not_issued:
            self._metrics.acquisition_tokens.labels(result="not_issued").inc()
            raise JobUnavailableError(
                job.uuid,
                "Buildkite issued no job acquisition token for it (its reservation may have lapsed); "
                "it is not started with the cluster agent token instead",
            )
        self._metrics.acquisition_tokens.labels(result="issued").inc()
        return tokens[0].token

    async def _call(
        self, job: PendingJob, what: str, call: Callable[[], Awaitable[_T]], results: Counter
    ) -> _T:
        """``call()``, tried again after transient errors; a failure that ends it counts as an
        ``error`` in ``results`` (the call's counter, by result)."""
        loop = asyncio.get_running_loop()
        delay = FIRST_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await call()
            except BuildkiteAPIError as error:
                if isinstance(error, StacksAPIError) and error.permanent:
                    results.labels(result="error").inc()
                    raise JobUnavailableError(job.uuid, f"cannot {what}: {error}") from None
                wait = _requested_wait(error)
                pause = wait if wait is not None else delay + self._rng.uniform(0.0, JITTER)
                if attempt == ATTEMPTS or loop.time() + pause >= job.stale_at:
                    results.labels(result="error").inc()
                    raise
                _log.info(
                    "job %s: could not %s (%s); attempt %d/%d, trying again in %.1fs",
                    job.uuid,
                    what,
                    error,
                    attempt,
                    ATTEMPTS,
                    pause,
                )
                await self._sleep(pause)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


def _requested_wait(error: BuildkiteAPIError) -> float | None:
    if isinstance(error, RateLimitedError):
        return error.retry_after
    if isinstance(error, StacksAPIError):
        return error.retry_after
    return None
