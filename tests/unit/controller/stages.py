"""A scriptable next pipeline stage for testing the stage in front of it (deduper, limiter)."""

from __future__ import annotations

import asyncio

from engine.controller.pipeline import PendingJob


class RecordingStage:
    """Records the jobs handed to it; raises ``fail_with`` (once per job, if set) or waits for ``gate``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_with: dict[str, BaseException] = {}
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.max_running = 0

    async def __call__(self, job: PendingJob) -> None:
        self.calls.append(job.uuid)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            error = self.fail_with.pop(job.uuid, None)
            if error is not None:
                raise error
        finally:
            self.running -= 1
