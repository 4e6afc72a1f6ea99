"""What flows through the job pipeline (monitor → deduper → limiter → scheduler), and how it says no.

Each stage is an async ``handle(job)`` that either succeeds (a Kubernetes Job now exists for the
Buildkite job) or raises. The exception *kind* is the protocol between stages, as upstream's sentinel
errors were:

* :class:`DuplicateJobError`: the job is already being handled or its Kubernetes Job already exists.
  The deduper keeps the UUID marked; the monitor counts it and moves on.
* :class:`StaleJobError`: the job waited for a max-in-flight token longer than its poll data stays
  fresh. No token was taken; the deduper unmarks it so a later poll (with fresh data) retries it.
* :class:`JobNotCreatedError`: the scheduler decided no Kubernetes Job will be created (policy denial,
  unparseable job, Kubernetes said Invalid) and has already tried to fail the Buildkite job. Raising
  instead of returning is the fix for upstream's token leak (behaviour spec §3.2, bug 2): the limiter
  gives the token back and the deduper unmarks the UUID, exactly as for any other error.
* :class:`JobUnavailableError`: the job cannot be had any more (Buildkite no longer knows it, or
  refuses its details or an acquisition token for it). Nothing was created and nothing can be done;
  a job this controller reserved is left to its reservation's expiry.
* anything else: a transient failure (Kubernetes unreachable, forbidden, quota). Same clean-up; the
  job is retried on a later poll (a job this controller reserved is not listed any more, so the
  monitor tries it again itself while its reservation lasts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from engine.model.jsonvalue import JSONObject


@dataclass(frozen=True)
class PendingJob:
    """A scheduled Buildkite job as one poll saw it, on its way to becoming a Kubernetes Job.

    ``node`` is the job document in the GraphQL ``JobTypeCommand`` shape (untouched as GraphQL sent it;
    built from the Stacks API's listing and, once reserved, its details). ``queried_at`` is when the
    poll started and ``stale_at`` when its data stops being trusted (both ``loop.time()`` seconds):
    for a job this controller ``reserved`` (Stacks API), shortly before the reservation expires.
    ``acquisition_token`` is the job acquisition token the agent in the pod registers with, when the
    controller issued one (a secret: never logged).
    """

    uuid: str
    node: JSONObject
    agent_query_rules: tuple[str, ...]
    queried_at: float
    stale_at: float
    reserved: bool = False
    acquisition_token: str | None = field(default=None, repr=False, compare=False)


JobHandler = Callable[[PendingJob], Awaitable[None]]
"""One pipeline stage: returns when the Kubernetes Job exists, raises otherwise (see module doc)."""


class DuplicateJobError(Exception):
    """The job is already in flight, or its Kubernetes Job already exists."""

    def __init__(self, uuid: str, reason: str) -> None:
        super().__init__(f"job {uuid}: {reason}")
        self.uuid = uuid


class StaleJobError(Exception):
    """The job's poll data went stale before a max-in-flight token became free."""

    def __init__(self, uuid: str) -> None:
        super().__init__(f"job {uuid}: no max-in-flight token before the job data went stale")
        self.uuid = uuid


class JobNotCreatedError(Exception):
    """The scheduler created no Kubernetes Job on purpose and handled the Buildkite side itself.

    ``reason`` is a short metric label (``denied``, ``parse_error``, ``invalid``).
    """

    def __init__(self, uuid: str, reason: str, detail: str) -> None:
        super().__init__(f"job {uuid}: not scheduled ({reason}): {detail}")
        self.uuid = uuid
        self.reason = reason


class JobUnavailableError(Exception):
    """The job cannot be scheduled by anyone asking again (see the module doc)."""

    def __init__(self, uuid: str, reason: str) -> None:
        super().__init__(f"job {uuid}: {reason}")
        self.uuid = uuid
