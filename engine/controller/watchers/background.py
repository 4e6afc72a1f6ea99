"""Background work started from informer handlers.

Informer handlers are synchronous and must return quickly (they run on the event loop, one event at a
time), but reacting to an event means API calls that can take seconds (failing a Buildkite job retries
for minutes). Handlers therefore start a task and return; this keeps a reference to every task (the
loop only keeps weak ones), logs a task's unexpected failure instead of losing it, and lets the owner
wait for or cancel whatever is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from engine.controller.failer import one_line

_log = logging.getLogger(__name__)


class BackgroundTasks:
    """The tasks one watcher started and that have not finished yet."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``work`` on the current event loop; failures are logged, never raised."""
        task = asyncio.get_running_loop().create_task(work, name=f"{self._owner}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            _log.error(
                "%s failed: %s",
                task.get_name(),
                one_line(error),
                exc_info=error,
            )

    def __len__(self) -> int:
        return len(self._tasks)

    def snapshot(self) -> list[asyncio.Task[Any]]:
        """The tasks running now."""
        return list(self._tasks)

    async def wait_idle(self) -> None:
        """Return once no task is running, including tasks started by the tasks awaited here."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel every running task and wait until they have stopped."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
