"""Failing a Buildkite job through the Stacks API (``finish``), with the reason as its detail.

In the Stacks API mode the controller holds the job's reservation, so it ends a job no agent will
ever run (denied, unparseable, refused by Kubernetes, a pod that cannot start) with ``POST
/stacks/{key}/jobs/{uuid}/finish`` (``exit_status: -1``), which also releases the reservation at once.
Buildkite shows ``detail`` on the job (cropped to 4 KiB); a stack notification repeats the first line
among the job's progress messages. Same outcomes as the acquire-and-fail failer, so the fail queue and
the watchers treat both alike:

* ``"failed"``: finished;
* ``"rejected"``: Buildkite refused it (a 4xx: the job is no longer this stack's to finish, e.g. an agent
  acquired it, or it was cancelled or finished meanwhile): nothing left to do;
* ``"error"``: no answer, 429 or 5xx: worth another try later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from engine.buildkite.errors import StacksAPIError
from engine.controller.failer import FailOutcome, first_line, one_line

_log = logging.getLogger(__name__)


class FinishingAPI(Protocol):
    """``StacksAPI`` satisfies it."""

    async def finish(self, job_uuid: str, detail: str, exit_status: int = -1) -> None: ...


class StacksJobFailer:
    """``fail(uuid, tags, message)`` through ``finish``; ``notify(uuid, text)`` (optional) is told the
    first line of each failure, for the job's progress messages."""

    def __init__(self, stacks: FinishingAPI, notify: Callable[[str, str], None] | None = None) -> None:
        self._stacks = stacks
        self._notify = notify

    async def fail(
        self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
    ) -> FailOutcome:
        """Finish job ``uuid`` as failed with ``message`` (``tags`` and ``namespace`` are not needed:
        the stack's agent token, not a per-job agent, does it)."""
        try:
            await self._stacks.finish(uuid, message)
        except StacksAPIError as error:
            if error.permanent:
                _log.info("Buildkite job %s was not failed: %s", uuid, one_line(error))
                return "rejected"
            _log.error("cannot fail Buildkite job %s: %s", uuid, one_line(error))
            return "error"
        except Exception as error:
            _log.error("cannot fail Buildkite job %s: %s", uuid, one_line(error))
            return "error"
        _log.info("failed Buildkite job %s: %s", uuid, first_line(message))
        if self._notify is not None:
            self._notify(uuid, "agent-stack-policy failed this job: " + first_line(message))
        return "failed"
