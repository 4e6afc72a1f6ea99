"""Deduper: each Buildkite job UUID goes through once while its Kubernetes Job exists (spec §4.4)."""

from __future__ import annotations

import asyncio

import pytest

from engine.controller.deduper import Deduper
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
