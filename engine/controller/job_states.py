"""What the watchers ask of Buildkite about jobs, one adapter per API (``BuildkiteJobs``).

* :class:`GraphQLJobs`: states through ``GetCommandJobStates`` (50 jobs a request, one aliased field
  each), and a job an agent already has is cancelled with ``jobTypeCommandCancel``;
* :class:`StacksJobs`: states through the Stacks API's ``get-states``, up to 1000 jobs a request, as
  upstream asks them; the Stacks API cannot cancel a job, so a job an agent already has but whose pod
  cannot pull its images is told so with a notification (the agent fails it when its container-start
  timeout runs out), once.

States come out upper-case either way (``reserved`` becomes ``RESERVED``), so the watchers compare
against one set of names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from engine.controller.metrics import StacksMetrics
from engine.controller.watchers.collaborators import StopOutcome

STATES_BATCH = 1000
IMAGE_PULL_NOTICE = "Image pull failure; the job will fail once the agent times out. "


class JobStateQueries(Protocol):
    """``BuildkiteGraphQL`` satisfies it."""

    async def job_states(self, uuids: Sequence[str]) -> dict[str, str | None]: ...

    async def cancel_job(self, job_id: str, client_mutation_id: str) -> None: ...


class StatesAPI(Protocol):
    """``StacksAPI`` satisfies it."""

    async def job_states(self, job_uuids: Sequence[str]) -> dict[str, str]: ...


class GraphQLJobs:
    """``BuildkiteJobs`` over GraphQL."""

    def __init__(self, graphql: JobStateQueries) -> None:
        self._graphql = graphql

    async def job_states(self, uuids: Sequence[str]) -> Mapping[str, str]:
        states = await self._graphql.job_states(uuids)
        return {uuid: state for uuid, state in states.items() if state is not None}

    async def stop_job(self, uuid: str, pod_name: str, reason: str) -> StopOutcome:
        await self._graphql.cancel_job(uuid, pod_name)
        return "cancelled"


class StacksJobs:
    """``BuildkiteJobs`` over the Stacks API; ``notify(uuid, text)`` sends a stack notification."""

    def __init__(self, stacks: StatesAPI, metrics: StacksMetrics, notify: Callable[[str, str], None]) -> None:
        self._stacks = stacks
        self._metrics = metrics
        self._notify = notify

    async def job_states(self, uuids: Sequence[str]) -> Mapping[str, str]:
        wanted = list(dict.fromkeys(uuids))
        batches = [wanted[start : start + STATES_BATCH] for start in range(0, len(wanted), STATES_BATCH)]

        async def one(batch: list[str]) -> dict[str, str]:
            self._metrics.job_state_requests.inc()
            try:
                return await self._stacks.job_states(batch)
            except Exception:
                self._metrics.job_state_errors.inc()
                raise

        answers = await asyncio.gather(*(one(batch) for batch in batches))
        return {uuid: state.upper() for answer in answers for uuid, state in answer.items()}

    async def stop_job(self, uuid: str, pod_name: str, reason: str) -> StopOutcome:
        self._notify(uuid, IMAGE_PULL_NOTICE + reason)
        return "notified"
