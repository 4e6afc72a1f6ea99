"""What the watchers need from the rest of the controller, stated as small protocols.

The watchers are written against these rather than the concrete classes so that each one depends
only on the calls it makes (``KubeClient``, ``BuildkiteGraphQL`` and
``ControllerConfig`` satisfy them), and so unit tests can hand them plain fakes of collaborators.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from engine.model.jsonvalue import JSONObject

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime."""


def utc_now() -> datetime:
    return datetime.now(UTC)


_log = logging.getLogger(__name__)


StopOutcome = Literal["cancelled", "notified"]
"""What :meth:`BuildkiteJobs.stop_job` did: cancelled the job, or (an API that cannot cancel) told
the job's progress messages why it will fail."""


WAITING_FOR_AGENT = frozenset({"SCHEDULED", "RESERVED"})
"""No agent has the job yet (``RESERVED``: the Stacks API's reserved, by this stack)."""
AGENT_HAS_JOB = frozenset({"ACCEPTED", "ASSIGNED", "RUNNING"})
JOB_IS_OVER = frozenset({"CANCELING", "CANCELED", "FINISHED", "SKIPPED"})
CANCELLED = frozenset({"CANCELING", "CANCELED"})
"""Groups of the states :meth:`BuildkiteJobs.job_states` returns, as the watchers act on them."""


class BuildkiteJobs(Protocol):
    """What the pod watcher asks of Buildkite about jobs (``engine.controller.job_states`` has one per
    API)."""

    async def job_states(self, uuids: Sequence[str]) -> Mapping[str, str]:
        """Each job's state, upper-case (``SCHEDULED``, ``RESERVED``, ``RUNNING``, ``CANCELED``…); a job
        whose state is unknown is missing. Raises when nothing could be learnt."""
        ...

    async def stop_job(self, uuid: str, pod_name: str, reason: str) -> StopOutcome:
        """End a job an agent already has, whose pod cannot run (``reason`` says why); raises on failure."""
        ...


class JobDeadlines(Protocol):
    """The one Kubernetes call the completions watcher makes (``KubeClient``)."""

    async def set_job_active_deadline(
        self, name: str, seconds: int, namespace: str | None = None
    ) -> None: ...


class JobsAPI(JobDeadlines, Protocol):
    """The Kubernetes calls the job watcher makes (``KubeClient``)."""

    async def get_job(self, name: str, namespace: str | None = None) -> JSONObject | None: ...

    async def delete_job(
        self, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> None: ...

    async def events_table(self, kind: str, name: str, namespace: str | None = None) -> str: ...


class PodsAPI(Protocol):
    """The Kubernetes calls the pod watcher makes (``KubeClient``)."""

    async def evict_pod(self, pod: Mapping[str, Any]) -> None: ...

    async def delete_job(
        self, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> None: ...

    async def delete_pod(
        self, name: str, namespace: str | None = None, grace_period_seconds: int | None = 0
    ) -> None: ...

    async def events_table(self, kind: str, name: str, namespace: str | None = None) -> str: ...


class JobWatcherConfig(Protocol):
    """Settings the job watcher reads (``ControllerConfig``); durations in seconds."""

    @property
    def empty_job_grace_period(self) -> float: ...

    @property
    def job_cancel_checker_poll_interval(self) -> float: ...


class PodWatcherConfig(Protocol):
    """Settings the pod watcher reads (``ControllerConfig``); durations in seconds."""

    @property
    def image_pull_backoff_grace_period(self) -> float: ...

    @property
    def job_cancel_checker_poll_interval(self) -> float: ...

    @property
    def pod_pending_timeout(self) -> float: ...
