"""Failing a Buildkite job from the controller ("acquire and fail", spec §4.7).

When no agent in a pod will ever run a job (a policy denied it, it cannot be parsed, Kubernetes
rejected its Job, its pod never starts) the controller itself poses as a throw-away agent, acquires the
job and finishes it with exit status 1 and the reason as its log, so the person who pushed the build
reads why instead of watching a job stay scheduled forever.

The agent registration token is read from the ``agent-token-secret`` Secret *at the time of failing*
(not cached), so rotating the Secret needs no controller restart. The outcome is returned rather than
raised, because every caller does the same thing with an error (log it, count it, move on):

* ``"failed"``: the job now shows the message and failed;
* ``"rejected"``: Buildkite refused the acquisition (HTTP 422): someone else already has the job, or it
  finished or was cancelled; the caller may fall back to cancelling it;
* ``"error"``: anything else (Secret unreadable, agent API down); the caller may retry later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Literal, Protocol

from engine.buildkite.errors import JobAcquisitionRejected
from engine.model.config import ControllerConfig

FailOutcome = Literal["failed", "rejected", "error"]

_log = logging.getLogger(__name__)


class FailBackend(Protocol):
    """Fails one Buildkite job: :class:`JobFailer` (Agent REST API) or the Stacks API's failer."""

    async def fail(
        self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
    ) -> FailOutcome: ...


async def fail_safely(
    backend: FailBackend, uuid: str, tags: Sequence[str], message: str, namespace: str | None = None
) -> FailOutcome:
    """``backend.fail``, with an unexpected exception turned into ``"error"`` (and logged), so every
    caller (the fail queue, the watchers) always gets an outcome to count."""
    try:
        return await backend.fail(uuid, tags, message, namespace=namespace)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        _log.error("failing Buildkite job %s raised: %s", uuid, one_line(error))
        return "error"


class AgentTokenSource(Protocol):
    """Reads the agent token from a Secret (``KubeClient`` satisfies it)."""

    async def read_agent_token(self, secret_name: str, namespace: str | None = None) -> str: ...


class JobFailingAgent(Protocol):
    """The throw-away agent (``AgentAPI`` satisfies it)."""

    async def fail_job(self, agent_token: str, job_uuid: str, tags: list[str], message: str) -> None: ...


class FailCounters(Protocol):
    """The two counters every component that fails jobs has (scheduler, job watcher, pod watcher)."""

    @property
    def jobs_failed_on_buildkite(self) -> _Counter: ...

    @property
    def job_fail_on_buildkite_errors(self) -> _Counter: ...


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class JobFailer:
    """Acquire-and-fail, with the token read fresh from the Secret each time."""

    def __init__(
        self,
        kube: AgentTokenSource,
        agent_api: JobFailingAgent,
        config: ControllerConfig,
        metrics: FailCounters | None = None,
    ) -> None:
        """``metrics``: the calling component's counters to count into, or None when the caller counts."""
        self._kube = kube
        self._agent_api = agent_api
        self._secret_name = config.agent_token_secret
        self._namespace = config.namespace
        self._metrics = metrics

    async def fail(
        self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
    ) -> FailOutcome:
        """Fail job ``uuid`` with ``message`` as its log, as an agent with ``tags``.

        ``namespace`` is where the agent token Secret is read (the object's namespace for watchers);
        the configured namespace by default.
        """
        outcome = await self._fail(uuid, list(tags), message, namespace or self._namespace)
        if self._metrics is not None:
            if outcome == "failed":
                self._metrics.jobs_failed_on_buildkite.inc()
            else:
                self._metrics.job_fail_on_buildkite_errors.inc()
        return outcome

    async def _fail(self, uuid: str, tags: list[str], message: str, namespace: str) -> FailOutcome:
        try:
            token = await self._kube.read_agent_token(self._secret_name, namespace)
        except Exception as exc:  # (cancellation is not an Exception: it propagates)
            _log.error(
                "cannot fail Buildkite job %s: reading the agent token from Secret %s/%s: %s",
                uuid,
                namespace,
                self._secret_name,
                one_line(exc),
            )
            return "error"
        try:
            await self._agent_api.fail_job(token, uuid, tags, message)
        except JobAcquisitionRejected as exc:
            _log.info("Buildkite job %s was not failed: %s", uuid, one_line(exc))
            return "rejected"
        except Exception as exc:
            reason = one_line(exc).replace(token, "[redacted]") if token else one_line(exc)
            _log.error("cannot fail Buildkite job %s: %s", uuid, reason)
            return "error"
        _log.info("failed Buildkite job %s: %s", uuid, first_line(message))
        return "failed"


def one_line(exc: BaseException) -> str:
    """An exception as one log line: its text with whitespace folded, else its type's name."""
    return " ".join(str(exc).split()) or type(exc).__name__


def first_line(text: str) -> str:
    """The first line of a failure message, at most 200 characters, for the log."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 200 else line[:197] + "..."
