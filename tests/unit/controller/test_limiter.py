"""Limiter: at most max-in-flight unfinished Jobs; every token comes back (spec §4.5, bug 2 fixed)."""

from __future__ import annotations

import asyncio

import pytest

from engine.controller.limiter import Limiter
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


def make(stage: RecordingStage, metrics: ControllerMetrics, capacity: int) -> Limiter:
    return Limiter(stage, capacity, metrics.limiter)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_zero_means_no_limiter(stage: RecordingStage, metrics: ControllerMetrics) -> None:
    with pytest.raises(ValueError, match="max-in-flight > 0"):
        make(stage, metrics, 0)


async def test_the_limit_holds_until_a_job_finishes(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 2)
    first, second, third = pending(), pending(), pending()
    await limiter.handle(first)
    await limiter.handle(second)
    assert limiter.available == 0
    waiting = asyncio.create_task(limiter.handle(third))
    await settle()
    assert stage.calls == [first.uuid, second.uuid]
    limiter.on_job_event(event("added", first.uuid))
    limiter.on_job_event(event("modified", first.uuid, finished="Complete"))
    await waiting
    assert stage.calls == [first.uuid, second.uuid, third.uuid]
    assert limiter.available == 0
    assert sample(metrics, "buildkite_limiter_tokens_available") == 0
    assert sample(metrics, "buildkite_limiter_max_in_flight") == 2


@pytest.mark.parametrize("condition", ["Complete", "Failed"])
async def test_a_finished_job_returns_its_token_once(
    stage: RecordingStage, metrics: ControllerMetrics, condition: str
) -> None:
    limiter = make(stage, metrics, 1)
    job = pending()
    await limiter.handle(job)
    limiter.on_job_event(event("added", job.uuid))
    limiter.on_job_event(event("modified", job.uuid, finished=condition))
    limiter.on_job_event(event("modified", job.uuid, finished=condition))
    limiter.on_job_event(event("deleted", job.uuid, finished=condition))
    assert limiter.available == 1


async def test_deleting_an_unfinished_job_returns_its_token(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 1)
    job = pending()
    await limiter.handle(job)
    limiter.on_job_event(event("added", job.uuid))
    assert limiter.available == 0
    limiter.on_job_event(event("deleted", job.uuid))
    assert limiter.available == 1


@pytest.mark.parametrize(
    "error",
    [
        JobNotCreatedError("u", "denied", "a policy said no"),
        JobNotCreatedError("u", "parse_error", "bad plugins"),
        JobNotCreatedError("u", "invalid", "Kubernetes rejected it"),
        DuplicateJobError("u", "its Kubernetes Job already exists"),
        RuntimeError("forbidden"),
    ],
    ids=["denied", "parse-error", "invalid", "already-exists", "other-error"],
)
async def test_no_job_created_means_the_token_comes_back(
    stage: RecordingStage, metrics: ControllerMetrics, error: Exception
) -> None:
    limiter = make(stage, metrics, 1)
    job = pending()
    stage.fail_with[job.uuid] = error
    with pytest.raises(type(error)):
        await limiter.handle(job)
    assert limiter.available == 1
    await limiter.handle(pending())  # the returned token is usable
    assert len(stage.calls) == 2
    assert sample(metrics, "buildkite_limiter_job_handler_errors_total") == 1


async def test_a_token_returned_by_a_failure_wakes_a_waiter(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 1)
    stage.gate = asyncio.Event()
    failing, waiting = pending(), pending()
    stage.fail_with[failing.uuid] = JobNotCreatedError(failing.uuid, "denied", "no")
    first = asyncio.create_task(limiter.handle(failing))
    second = asyncio.create_task(limiter.handle(waiting))
    await settle()
    assert stage.calls == [failing.uuid]
    stage.gate.set()
    with pytest.raises(JobNotCreatedError):
        await first
    await second
    assert stage.calls == [failing.uuid, waiting.uuid]


async def test_a_job_that_goes_stale_waiting_takes_no_token(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 1)
    await limiter.handle(pending())
    with pytest.raises(StaleJobError):
        await limiter.handle(pending(stale_in=0.05))
    with pytest.raises(StaleJobError):
        await limiter.handle(pending(stale_in=-1))  # already stale: no wait at all
    assert len(stage.calls) == 1
    assert limiter.available == 0
    assert sample(metrics, "buildkite_limiter_job_handler_errors_total") == 2


async def test_a_stale_waiter_does_not_swallow_a_wake_up(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 1)
    holder = pending()
    await limiter.handle(holder)
    doomed = asyncio.create_task(limiter.handle(pending(stale_in=0.05)))
    patient_job = pending()
    patient = asyncio.create_task(limiter.handle(patient_job))
    with pytest.raises(StaleJobError):
        await doomed
    limiter.on_job_event(event("deleted", holder.uuid))
    await asyncio.wait_for(patient, 1)
    assert stage.calls == [holder.uuid, patient_job.uuid]


async def test_waiters_are_served_in_arrival_order(stage: RecordingStage, metrics: ControllerMetrics) -> None:
    limiter = make(stage, metrics, 1)
    holder = pending()
    await limiter.handle(holder)
    queued = [pending() for _ in range(4)]
    tasks = []
    for job in queued:
        tasks.append(asyncio.create_task(limiter.handle(job)))
        await settle()
    previous = holder.uuid
    for job, task in zip(queued, tasks, strict=True):
        limiter.on_job_event(event("deleted", previous))
        await asyncio.wait_for(task, 1)
        previous = job.uuid
    assert stage.calls == [holder.uuid, *(job.uuid for job in queued)]


async def test_start_up_seeds_tokens_from_unfinished_jobs(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 3)
    running = [new_uuid(), new_uuid()]
    for uuid in running:
        limiter.on_job_event(event("added", uuid, initial=True))
    limiter.on_job_event(event("added", new_uuid(), finished="Complete", initial=True))
    limiter.on_job_event(event("added", None, initial=True))  # no job-uuid label: not ours to count
    assert limiter.available == 1
    assert sample(metrics, "buildkite_limiter_token_underflows_total", source="informer") == 0


async def test_more_unfinished_jobs_than_the_limit_is_an_underflow(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 2)
    running = [new_uuid() for _ in range(4)]
    for uuid in running:
        limiter.on_job_event(event("added", uuid, initial=True))
    assert limiter.available == -2
    assert sample(metrics, "buildkite_limiter_token_underflows_total", source="informer") == 2
    waiting = asyncio.create_task(limiter.handle(pending()))
    for uuid in running[:2]:
        limiter.on_job_event(event("modified", uuid, finished="Complete"))
    await settle()
    assert stage.calls == []  # still at the limit: 2 unfinished Jobs
    limiter.on_job_event(event("modified", running[2], finished="Failed"))
    await asyncio.wait_for(waiting, 1)
    assert len(stage.calls) == 1


async def test_an_informer_event_during_creation_does_not_count_the_job_twice(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 2)
    stage.gate = asyncio.Event()
    job = pending()
    creating = asyncio.create_task(limiter.handle(job))
    await settle()
    limiter.on_job_event(event("added", job.uuid))  # the watch saw the Job before create returned
    assert limiter.available == 1
    stage.gate.set()
    await creating
    assert limiter.available == 1
    assert sample(metrics, "buildkite_limiter_token_underflows_total", source="informer") == 0
    limiter.on_job_event(event("modified", job.uuid, finished="Complete"))
    assert limiter.available == 2


async def test_a_job_that_finished_before_create_returned_holds_no_token(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 1)
    stage.gate = asyncio.Event()
    job = pending()
    creating = asyncio.create_task(limiter.handle(job))
    await settle()
    limiter.on_job_event(event("added", job.uuid, finished="Complete"))
    stage.gate.set()
    await creating
    assert limiter.available == 1


async def test_a_cancelled_wait_returns_nothing_it_did_not_take(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 1)
    await limiter.handle(pending())
    waiting = asyncio.create_task(limiter.handle(pending()))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.available == 0


async def test_a_newcomer_behind_a_woken_waiter_gets_a_spare_token(
    stage: RecordingStage, metrics: ControllerMetrics
) -> None:
    limiter = make(stage, metrics, 2)
    holders = [pending(), pending()]
    for job in holders:
        await limiter.handle(job)
    stage.gate = asyncio.Event()  # creations from now on take a while
    woken = asyncio.create_task(limiter.handle(pending()))
    await settle()
    limiter.on_job_event(event("deleted", holders[0].uuid))  # wakes the waiter...
    limiter.on_job_event(event("deleted", holders[1].uuid))  # ...and frees a second token
    newcomer = asyncio.create_task(limiter.handle(pending(stale_in=0.5)))
    await asyncio.sleep(0.1)
    assert len(stage.calls) == 4  # both are creating: the spare token did not wait for the first
    stage.gate.set()
    await asyncio.wait_for(asyncio.gather(woken, newcomer), 1)
