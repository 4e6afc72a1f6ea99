"""FailQueue: failing Buildkite jobs in the background, de-duplicated, bounded, retried with back-off.

Most tests fail jobs for real (``JobFailer`` → ``AgentAPI`` → the fake Buildkite, with its fault
injection); a scripted backend is used where a test needs exact outcomes in a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from engine.buildkite.agent_api import AgentAPI
from engine.controller.fail_queue import FailQueue, retry_delay
from engine.controller.failer import FailOutcome, JobFailer
from engine.controller.metrics import ControllerMetrics
from engine.model.config import parse_config
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample
from tests.unit.controller.fakes import SecretStore

NAMESPACE = "buildkite"
TAGS = ("queue=kubernetes",)


class ScriptedBackend:
    """Answers ``fail`` with the scripted outcomes in order (then ``"failed"``), recording calls."""

    def __init__(self, *outcomes: FailOutcome | Exception, delay: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, float]] = []
        self.delay = delay
        self.running = 0
        self.max_running = 0

    async def fail(
        self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
    ) -> FailOutcome:
        self.calls.append((uuid, asyncio.get_running_loop().time()))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        outcome = self.outcomes.pop(0) if self.outcomes else "failed"
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
def metrics() -> ControllerMetrics:
    return ControllerMetrics()


def real_backend(fake: FakeBuildkite) -> JobFailer:
    config = parse_config({"namespace": NAMESPACE, "agent-config": {"endpoint": fake.agent_url}}, "t")
    secrets = SecretStore({(NAMESPACE, config.agent_token_secret): fake.agent_token})
    return JobFailer(secrets, AgentAPI(fake.agent_url, retry_scale=0.001, request_timeout=1.0), config)


async def running(queue: FailQueue) -> asyncio.Task[None]:
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def until(what: str, probe: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_enqueue_returns_at_once_even_while_the_agent_api_hangs(
    fake: FakeBuildkite, metrics: ControllerMetrics
) -> None:
    uuid = fake.add_job()
    fake.faults.hang("agent")
    queue = FailQueue(real_backend(fake), metrics.fail_queue, metrics.scheduler)
    task = await running(queue)
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert queue.enqueue(uuid, TAGS, "denied by policy")

    assert loop.time() - started < 0.05
    assert uuid in queue
    await until("the register call to hang", lambda: fake.faults.hits("agent") >= 1)
    fake.faults.clear()
    await until("the job to be failed", lambda: fake.job(uuid).state == "FINISHED")
    assert fake.job(uuid).log == "denied by policy"
    await until("the queue to empty", lambda: len(queue) == 0)
    assert sample(metrics, "buildkite_fail_queue_outcomes_total", outcome="failed") == 1
    assert sample(metrics, "buildkite_scheduler_jobs_failed_on_buildkite_total") == 1
    await stop(task)


async def test_a_job_is_queued_once_however_often_it_is_offered(
    fake: FakeBuildkite, metrics: ControllerMetrics
) -> None:
    uuid = fake.add_job()
    queue = FailQueue(real_backend(fake), metrics.fail_queue)
    assert queue.enqueue(uuid, TAGS, "first")
    assert queue.enqueue(uuid, TAGS, "second")
    task = await running(queue)

    await until("the job to be failed", lambda: fake.job(uuid).state == "FINISHED")
    await until("the queue to empty", lambda: len(queue) == 0)

    assert fake.job(uuid).log == "first"
    assert len(fake.agent_requests("finish")) == 1
    assert sample(metrics, "buildkite_fail_queue_enqueued_total", result="queued") == 1
    assert sample(metrics, "buildkite_fail_queue_enqueued_total", result="already_queued") == 1
    await stop(task)


async def test_a_full_queue_refuses_more_and_says_so(metrics: ControllerMetrics) -> None:
    queue = FailQueue(ScriptedBackend(), metrics.fail_queue, capacity=2)
    assert queue.enqueue("a", TAGS, "m")
    assert queue.enqueue("b", TAGS, "m")
    assert not queue.enqueue("c", TAGS, "m")
    assert "c" not in queue
    assert sample(metrics, "buildkite_fail_queue_enqueued_total", result="full") == 1
    assert sample(metrics, "buildkite_fail_queue_size") == 2


async def test_a_job_is_held_while_waiting_and_against_polls_older_than_its_failure(
    metrics: ControllerMetrics,
) -> None:
    backend = ScriptedBackend(delay=0.1)
    queue = FailQueue(backend, metrics.fail_queue, remember_for=0.3)
    loop = asyncio.get_running_loop()
    seen_before = loop.time()
    queue.enqueue("job", TAGS, "m")
    assert queue.holds("job", seen_before)
    task = await running(queue)

    await until("the job to be failed", lambda: "job" not in queue)
    failed_at = loop.time()
    assert queue.holds("job", seen_before)  # a poll from before the failure still lists it
    await asyncio.sleep(0.01)
    assert not queue.holds("job", loop.time())  # a poll after the failure does not
    await asyncio.sleep(0.35)
    queue.enqueue("other", TAGS, "m")  # finishing another job forgets the old ones
    await until("the other job to be failed", lambda: "other" not in queue)
    assert not queue.holds("job", seen_before)
    assert failed_at > seen_before
    await stop(task)


async def test_errors_are_retried_with_back_off_then_given_up(metrics: ControllerMetrics) -> None:
    backend = ScriptedBackend("error", RuntimeError("surprise"), "error")
    queue = FailQueue(
        backend,
        metrics.fail_queue,
        metrics.scheduler,
        max_attempts=3,
        first_retry_seconds=0.1,
        max_retry_seconds=0.15,
    )
    queue.enqueue("job", TAGS, "m")
    task = await running(queue)

    await until("the queue to give up", lambda: "job" not in queue)

    times = [moment for _, moment in backend.calls]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.1
    assert times[2] - times[1] >= 0.15  # doubled, then capped
    assert sample(metrics, "buildkite_fail_queue_outcomes_total", outcome="retried") == 2
    assert sample(metrics, "buildkite_fail_queue_outcomes_total", outcome="gave_up") == 1
    assert sample(metrics, "buildkite_scheduler_job_fail_on_buildkite_errors_total") == 3
    assert not queue.holds("job", 0.0)  # let go: a later poll decides it again
    await stop(task)


async def test_an_error_then_success_fails_the_job_once(
    fake: FakeBuildkite, metrics: ControllerMetrics
) -> None:
    uuid = fake.add_job()
    fake.faults.fail("agent", 500, only="register")  # the agent API is down...
    queue = FailQueue(real_backend(fake), metrics.fail_queue, first_retry_seconds=0.05)
    queue.enqueue(uuid, TAGS, "no pod for you")
    task = await running(queue)

    await until(
        "a retry", lambda: sample(metrics, "buildkite_fail_queue_outcomes_total", outcome="retried") >= 1
    )
    fake.faults.clear()  # ...and back
    await until("the job to be failed", lambda: fake.job(uuid).state == "FINISHED")

    assert fake.job(uuid).log == "no pod for you"
    assert [r.status for r in fake.agent_requests("finish")] == [200]
    await stop(task)


async def test_a_job_someone_else_has_is_not_retried(fake: FakeBuildkite, metrics: ControllerMetrics) -> None:
    uuid = fake.add_job(state="RUNNING")
    queue = FailQueue(real_backend(fake), metrics.fail_queue)
    queue.enqueue(uuid, TAGS, "m")
    task = await running(queue)

    await until("the queue to empty", lambda: len(queue) == 0)

    assert sample(metrics, "buildkite_fail_queue_outcomes_total", outcome="rejected") == 1
    assert len(fake.agent_requests("acquire")) == 1
    await stop(task)


async def test_one_hung_job_does_not_hold_up_the_others(metrics: ControllerMetrics) -> None:
    backend = ScriptedBackend(delay=0.05)
    slow = ScriptedBackend(delay=3600)

    class Router:
        async def fail(
            self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
        ) -> FailOutcome:
            target = slow if uuid == "stuck" else backend
            return await target.fail(uuid, tags, message)

    queue = FailQueue(Router(), metrics.fail_queue, concurrency=2)
    queue.enqueue("stuck", TAGS, "m")
    for n in range(5):
        queue.enqueue(f"job-{n}", TAGS, "m")
    task = await running(queue)

    await until("the other jobs to be failed", lambda: len(queue) == 1)

    assert [uuid for uuid, _ in backend.calls] == [f"job-{n}" for n in range(5)]
    assert backend.max_running == 1  # the second worker is busy with the stuck job
    assert "stuck" in queue
    await stop(task)


async def test_size_and_oldest_age_are_published(metrics: ControllerMetrics) -> None:
    queue = FailQueue(ScriptedBackend(), metrics.fail_queue)
    assert sample(metrics, "buildkite_fail_queue_size") == 0
    assert sample(metrics, "buildkite_fail_queue_oldest_seconds") == 0
    queue.enqueue("a", TAGS, "m")
    await asyncio.sleep(0.2)
    queue.enqueue("b", TAGS, "m")

    assert sample(metrics, "buildkite_fail_queue_size") == 2
    assert 0.2 <= sample(metrics, "buildkite_fail_queue_oldest_seconds") < 5


def test_retry_delays_double_up_to_a_minute() -> None:
    assert [retry_delay(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
