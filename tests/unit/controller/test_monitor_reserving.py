"""The monitor in the Stacks API mode: jobs are reserved before they are queued, no more than there is
room for and highest priority first; a reserved job waits for a worker however long its reservation
lasts, is tried again after a transient failure, and is let go (counted) only when that runs out.

Everything goes through the real Stacks API client and reserver against the fake Stacks API.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import pytest

from engine.buildkite.pages import JobPage
from engine.buildkite.stacks import StacksAPI
from engine.controller.metrics import ControllerMetrics
from engine.controller.monitor import Monitor, MonitorStoppedError, ScheduledJobSource
from engine.controller.pipeline import JobUnavailableError, PendingJob
from engine.controller.reserver import StacksReserver
from engine.controller.sources import StacksJobSource
from engine.model.jsonvalue import JSONObject
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample

STACK = "test-stack"


class Handler:
    """The stages after the monitor: records jobs, ``running`` while one is handled (a max-in-flight
    token held); per-job errors and a gate are scriptable."""

    def __init__(self) -> None:
        self.jobs: list[PendingJob] = []
        self.errors: dict[str, list[Exception]] = {}
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.done: set[str] = set()

    @property
    def uuids(self) -> list[str]:
        return [job.uuid for job in self.jobs]

    async def __call__(self, job: PendingJob) -> None:
        self.jobs.append(job)
        self.running += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            pending = self.errors.get(job.uuid)
            if pending:
                raise pending.pop(0)
            self.done.add(job.uuid)
        finally:
            self.running -= 1

    def holds(self, uuid: str, _seen_at: float) -> bool:
        """As the deduper does: a job whose Kubernetes Job exists (handled) is not queued again."""
        return uuid in self.done


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
async def stacks(fake: FakeBuildkite) -> AsyncIterator[StacksAPI]:
    async with StacksAPI(fake.agent_url, fake.agent_token, STACK) as client:
        await client.register("kubernetes")
        yield client


def reserving_monitor(
    stacks: StacksAPI,
    handler: Handler,
    metrics: ControllerMetrics,
    *,
    capacity: Callable[[], int | None] | None = None,
    ttl: float = 600.0,
    stale: float = 10.0,
    source: ScheduledJobSource | None = None,
    concurrency: int = 2,
) -> Monitor:
    return Monitor(
        source or StacksJobSource(stacks, "kubernetes", 100),
        handler,
        metrics.monitor,
        tags=("queue=kubernetes",),
        stale_job_data_timeout=stale,
        job_creation_concurrency=concurrency,
        reserver=StacksReserver(stacks, 60, metrics.stacks),
        reservation_ttl=ttl,
        capacity=capacity,
        holds=handler.holds,
        stacks_metrics=metrics.stacks,
        ignored_job_tags=("queue",),
        rng=random.Random(3),
    )


@contextlib.asynccontextmanager
async def running(target: Monitor) -> AsyncIterator[None]:
    task = asyncio.create_task(target.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(what: str, probe: Callable[[], object], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_only_as_many_as_there_is_room_for_are_reserved_highest_priority_first(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    metrics, handler = ControllerMetrics(), Handler()
    uuids = {priority: fake.add_job(priority=priority) for priority in (1, 5, 3, 4, 2)}
    handler.gate = asyncio.Event()
    room = {"tokens": 2}
    capacity = lambda: room["tokens"] - handler.running  # noqa: E731 - as the limiter counts
    async with running(reserving_monitor(stacks, handler, metrics, capacity=capacity)):
        await until("two jobs taken", lambda: len(handler.jobs) == 2)
        await asyncio.sleep(1.5)  # another poll: the two queued jobs fill the room
        assert sorted(handler.uuids) == sorted([uuids[5], uuids[4]])
        assert {fake.job(uuid).reserved_by for uuid in uuids.values()} == {STACK, None}
        assert [p for p, uuid in uuids.items() if fake.job(uuid).reserved_by] == [5, 4]
        room["tokens"] = 0
        handler.gate.set()
        await asyncio.sleep(1.5)
        assert len(handler.jobs) == 2  # no room: nothing more reserved
    assert sample(metrics, "buildkite_stacks_reservations_total", result="reserved") == 2


async def test_a_job_another_stack_holds_is_left_alone(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    """Listed before another stack reserved it (a listing is a snapshot): the reservation says no."""
    metrics, handler = ControllerMetrics(), Handler()
    held, free = fake.add_job(), fake.add_job()
    async with StacksAPI(fake.agent_url, fake.agent_token, "other") as other:
        await other.register("kubernetes")
        await other.reserve([held], 60)

    class ListedEarlier:
        async def scheduled_job_pages(
            self, *, after: str | None = None, max_pages: int | None = None
        ) -> AsyncGenerator[JobPage, None]:
            nodes: list[JSONObject] = [{"uuid": uuid, "agentQueryRules": []} for uuid in (held, free)]
            yield JobPage(nodes=nodes, end_cursor=None)

    async with running(reserving_monitor(stacks, handler, metrics, source=ListedEarlier())):
        await until("the free job", lambda: handler.uuids == [free])
        await asyncio.sleep(1.2)
    assert handler.uuids == [free]
    assert fake.job(held).reserved_by == "other"
    assert sample(metrics, "buildkite_stacks_reservations_total", result="not_reserved") >= 1


async def test_a_reserved_job_outlasts_stale_job_data_timeout(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    metrics, handler = ControllerMetrics(), Handler()
    first, second = fake.add_job(), fake.add_job()
    handler.gate = asyncio.Event()
    target = reserving_monitor(stacks, handler, metrics, stale=0.3, concurrency=1)
    async with running(target):
        await until("one job taken", lambda: len(handler.jobs) == 1)
        await asyncio.sleep(1.0)  # far past the stale timeout of poll data
        assert len(target.queued) == 1  # the reserved one still waits: it is not listed any more
        handler.gate.set()
        await until("the other job", lambda: len(handler.jobs) == 2)
    assert sorted(handler.uuids) == sorted([first, second])
    assert sample(metrics, "buildkite_stacks_reservations_expired_total", reason="stale") == 0


async def test_a_transient_failure_is_tried_again_while_the_reservation_lasts(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    metrics, handler = ControllerMetrics(), Handler()
    uuid = fake.add_job()
    handler.errors[uuid] = [RuntimeError("the API server is restarting")]
    async with running(reserving_monitor(stacks, handler, metrics)):
        await until("a second try", lambda: handler.uuids == [uuid, uuid], timeout=5)
    assert sample(metrics, "buildkite_stacks_reserved_job_retries_total") == 1
    assert fake.stacks.times_reserved(uuid) == 1  # not listed again: retried from the queue


async def test_an_unavailable_job_is_not_tried_again(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    metrics, handler = ControllerMetrics(), Handler()
    uuid = fake.add_job()
    handler.errors[uuid] = [JobUnavailableError(uuid, "gone")]
    async with running(reserving_monitor(stacks, handler, metrics)):
        await until("the job", lambda: handler.uuids == [uuid])
        await asyncio.sleep(1.5)
    assert handler.uuids == [uuid]
    assert sample(metrics, "buildkite_stacks_reservations_expired_total", reason="unavailable") == 1


async def test_a_reserved_job_is_let_go_when_its_reservation_runs_out(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    metrics, handler = ControllerMetrics(), Handler()
    fake.add_jobs(2)
    handler.gate = asyncio.Event()
    target = reserving_monitor(stacks, handler, metrics, ttl=0.5, concurrency=1)
    async with running(target):
        await until("one job taken", lambda: len(handler.jobs) == 1)
        await until(
            "the other to be let go",
            lambda: sample(metrics, "buildkite_stacks_reservations_expired_total", reason="stale") == 1,
            timeout=5,
        )
        handler.gate.set()
    assert len(handler.jobs) == 1


async def test_a_retry_after_on_a_listing_delays_the_next_poll(stacks: StacksAPI) -> None:
    metrics, handler = ControllerMetrics(), Handler()
    asked: list[float] = []

    class AsksForAPause:
        async def scheduled_job_pages(
            self, *, after: str | None = None, max_pages: int | None = None
        ) -> AsyncGenerator[JobPage, None]:
            asked.append(asyncio.get_running_loop().time())
            yield JobPage(nodes=[], end_cursor="more", retry_after=2.5)
            raise AssertionError("no further page after a Retry-After")  # pragma: no cover

    async with running(reserving_monitor(stacks, handler, metrics, source=AsksForAPause())):
        await until("three polls", lambda: len(asked) >= 3, timeout=10)
    assert asked[1] - asked[0] >= 2.5
    assert asked[2] - asked[1] >= 2.5


async def test_a_listing_buildkite_refuses_stops_the_monitor(fake: FakeBuildkite) -> None:
    metrics = ControllerMetrics()
    async with StacksAPI(fake.agent_url, fake.agent_token, "not-registered") as unregistered:
        target = reserving_monitor(unregistered, Handler(), metrics)
        with pytest.raises(MonitorStoppedError, match=r"the Stacks API refused to list .* HTTP 404"):
            await asyncio.wait_for(target.run(), 5)
