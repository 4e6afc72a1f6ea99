"""Deduper: each Buildkite job UUID goes through once while its Kubernetes Job exists (spec §4.4)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from engine.controller.deduper import Deduper
from engine.controller.fail_queue import FailQueue
from engine.controller.failer import FailOutcome
from engine.controller.metrics import ControllerMetrics
from engine.controller.pipeline import DuplicateJobError, JobNotCreatedError, StaleJobError
from tests.unit.controller.builders import event, new_uuid, pending, sample
from tests.unit.controller.stages import RecordingStage


@pytest.fixture
def stage() -> RecordingStage:
    return RecordingStage()


@pytest.fixture
def metrics() -> ControllerMetrics:
    return ControllerMetrics()


@pytest.fixture
def deduper(stage: RecordingStage, metrics: ControllerMetrics) -> Deduper:
    return Deduper(stage, metrics.deduper)


async def test_a_job_goes_through_once_and_stays_in_flight(deduper: Deduper, stage: RecordingStage) -> None:
    job = pending()
    await deduper.handle(job)
    with pytest.raises(DuplicateJobError):
        await deduper.handle(pending(job.uuid))
    assert stage.calls == [job.uuid]
    assert deduper.in_flight == {job.uuid}


async def test_concurrent_copies_of_one_job_pass_once(deduper: Deduper, stage: RecordingStage) -> None:
    stage.gate = asyncio.Event()
    uuid = new_uuid()
    first = asyncio.create_task(deduper.handle(pending(uuid)))
    await asyncio.sleep(0)
    with pytest.raises(DuplicateJobError):
        await deduper.handle(pending(uuid))
    stage.gate.set()
    await first
    assert stage.calls == [uuid]


@pytest.mark.parametrize(
    "error",
    [
        JobNotCreatedError("u", "denied", "no"),
        StaleJobError("u"),
        RuntimeError("kubernetes unreachable"),
    ],
    ids=["not-created", "stale", "transient"],
)
async def test_a_job_whose_next_stage_failed_is_retried_later(
    deduper: Deduper, stage: RecordingStage, error: Exception
) -> None:
    job = pending()
    stage.fail_with[job.uuid] = error
    with pytest.raises(type(error)):
        await deduper.handle(job)
    assert deduper.in_flight == frozenset()
    await deduper.handle(pending(job.uuid))  # a later poll: goes through again
    assert stage.calls == [job.uuid, job.uuid]


async def test_an_existing_kubernetes_job_keeps_the_uuid_marked(
    deduper: Deduper, stage: RecordingStage
) -> None:
    job = pending()
    stage.fail_with[job.uuid] = DuplicateJobError(job.uuid, "its Kubernetes Job already exists")
    with pytest.raises(DuplicateJobError):
        await deduper.handle(job)
    assert deduper.in_flight == {job.uuid}
    with pytest.raises(DuplicateJobError):
        await deduper.handle(pending(job.uuid))
    assert stage.calls == [job.uuid]


async def test_jobs_listed_at_start_up_are_in_flight(deduper: Deduper, stage: RecordingStage) -> None:
    running, finished = new_uuid(), new_uuid()
    deduper.on_job_event(event("added", running, initial=True))
    deduper.on_job_event(event("added", finished, finished="Complete", initial=True))
    for uuid in (running, finished):
        with pytest.raises(DuplicateJobError):
            await deduper.handle(pending(uuid))
    assert stage.calls == []


async def test_finishing_does_not_unmark_but_deletion_does(deduper: Deduper, stage: RecordingStage) -> None:
    job = pending()
    await deduper.handle(job)
    deduper.on_job_event(event("added", job.uuid))
    deduper.on_job_event(event("modified", job.uuid, finished="Complete"))
    with pytest.raises(DuplicateJobError):
        await deduper.handle(pending(job.uuid))
    deduper.on_job_event(event("deleted", job.uuid, finished="Complete"))
    await deduper.handle(pending(job.uuid))
    assert stage.calls == [job.uuid, job.uuid]


async def test_objects_without_a_job_uuid_label_are_ignored(
    deduper: Deduper, metrics: ControllerMetrics
) -> None:
    deduper.on_job_event(event("added", None, initial=True))
    deduper.on_job_event(event("added", "not-a-uuid", initial=True))
    assert deduper.in_flight == frozenset()
    assert sample(metrics, "buildkite_deduper_onadd_events_total") == 2


async def test_the_running_gauge_follows_the_set(deduper: Deduper, metrics: ControllerMetrics) -> None:
    uuids = [new_uuid() for _ in range(3)]
    for uuid in uuids:
        deduper.on_job_event(event("added", uuid, initial=True))
    deduper.on_job_event(event("deleted", uuids[0]))
    deduper.on_job_event(event("deleted", uuids[0]))  # a second delete of the same UUID is harmless
    assert sample(metrics, "buildkite_deduper_jobs_running") == 2
    assert sample(metrics, "buildkite_deduper_jobs_already_not_running_total", source="informer") == 1


async def test_a_job_waiting_in_the_fail_queue_is_held_until_polls_are_newer_than_its_failure(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    """The scheduler queued the job's failure and let go of it; polls until the failure must not hand
    it to the scheduler again (it would be decided and failed twice)."""
    backend = _SlowBackend()
    failures = FailQueue(backend, metrics.fail_queue, remember_for=60)
    deduper = Deduper(stage, metrics.deduper, held=failures.holds)
    denied = pending()
    stage.fail_with[denied.uuid] = JobNotCreatedError(denied.uuid, "denied", "no")
    with pytest.raises(JobNotCreatedError):
        await deduper.handle(denied)
    failures.enqueue(denied.uuid, (), "no")  # what the scheduler did before raising
    assert denied.uuid not in deduper.in_flight

    loop = asyncio.get_running_loop()
    for seen_at in (denied.queried_at, loop.time()):
        assert deduper.holds(denied.uuid, seen_at)
        with pytest.raises(DuplicateJobError, match="being failed"):
            await deduper.handle(replace(pending(denied.uuid), queried_at=seen_at))
    assert sample(metrics, "buildkite_deduper_jobs_already_running_total", source="fail_queue") == 2

    worker = asyncio.create_task(failures.run())
    await backend.called.wait()
    backend.release.set()
    while len(failures):
        await asyncio.sleep(0.01)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker

    assert deduper.holds(denied.uuid, denied.queried_at)  # that poll predates the failure
    after = loop.time()
    assert not deduper.holds(denied.uuid, after)  # a poll after it: the job is whatever it is now
    await deduper.handle(replace(pending(denied.uuid), queried_at=after))
    assert stage.calls == [denied.uuid, denied.uuid]


class _SlowBackend:
    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def fail(
        self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
    ) -> FailOutcome:
        self.called.set()
        await self.release.wait()
        return "failed"
