"""Monitor: polling the fake Buildkite through the real GraphQL client (spec §4.3, §13.2; bugs 1/21 fixed).

Polling and the workers are separate loops: these tests run the whole monitor and watch what reaches
the next stage, what was asked of Buildkite and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import pytest

from engine.buildkite.graphql import BuildkiteGraphQL
from engine.buildkite.pages import JobPage
from engine.controller.metrics import ControllerMetrics
from engine.controller.monitor import MIN_POLL_INTERVAL, Monitor, MonitorStoppedError
from engine.controller.pipeline import DuplicateJobError, PendingJob, StaleJobError
from engine.controller.sources import GraphQLJobSource
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample


class TimedSource:
    """The real GraphQL client (through the controller's GraphQL source), noting when each walk started
    (loop time); later pages can be slowed. ``org`` is the organization polled."""

    def __init__(self, client: BuildkiteGraphQL, org: str = "test-org") -> None:
        self.client = client
        self.org = org
        self.times: list[float] = []
        self.page_times: list[float] = []
        self.later_page_delay = 0.0

    async def scheduled_job_pages(
        self, *, after: str | None = None, max_pages: int | None = None
    ) -> AsyncGenerator[JobPage, None]:
        self.times.append(asyncio.get_running_loop().time())
        source = GraphQLJobSource(self.client, self.org, "kubernetes")
        walk = source.scheduled_job_pages(after=after, max_pages=max_pages)
        async with contextlib.aclosing(walk):
            first = True
            async for page in walk:
                if not first:
                    await asyncio.sleep(self.later_page_delay)
                first = False
                self.page_times.append(asyncio.get_running_loop().time())
                yield page


class Handler:
    """Records handed-on jobs; per-job errors, delays and a gate are scriptable."""

    def __init__(self) -> None:
        self.jobs: list[PendingJob] = []
        self.errors: dict[str, Exception] = {}
        self.delay = 0.0
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.max_running = 0
        self.times: list[float] = []

    @property
    def uuids(self) -> list[str]:
        return [job.uuid for job in self.jobs]

    async def __call__(self, job: PendingJob) -> None:
        self.jobs.append(job)
        self.times.append(asyncio.get_running_loop().time())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if job.uuid in self.errors:
                raise self.errors[job.uuid]
        finally:
            self.running -= 1


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
async def source(fake: FakeBuildkite) -> AsyncIterator[TimedSource]:
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token) as client:
        yield TimedSource(client)


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def metrics() -> ControllerMetrics:
    return ControllerMetrics()


def monitor(
    source: TimedSource,
    handler: Handler,
    metrics: ControllerMetrics,
    *,
    org: str = "test-org",
    tags: tuple[str, ...] = ("queue=kubernetes",),
    holds: Callable[[str, float], bool] | None = None,
    **options: float,
) -> Monitor:
    source.org = org
    return Monitor(
        source,
        handler,
        metrics.monitor,
        tags=tags,
        poll_interval=options.get("poll_interval", 1.0),
        stale_job_data_timeout=options.get("stale", 10.0),
        job_creation_concurrency=int(options.get("concurrency", 5)),
        pagination_depth_limit=int(options.get("depth", 5)),
        query_reset_interval=options.get("reset", 60.0),
        holds=holds,
        rng=random.Random(int(options.get("seed", 1))),
    )


@contextlib.asynccontextmanager
async def running(target: Monitor) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(target.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_for(target: Monitor, seconds: float) -> None:
    async with running(target):
        await asyncio.sleep(seconds)


async def until(what: str, probe: Callable[[], object], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def page_requests(fake: FakeBuildkite) -> list[str | None]:
    """The ``after`` cursor of each scheduled-jobs request (``None`` for a first page)."""
    return [(request.variables or {}).get("after") for request in fake.graphql_requests("GetScheduledJobs")]


async def test_jobs_whose_tags_are_a_subset_of_the_controllers_pass(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    accepted = [
        fake.add_job(agent_query_rules=["queue=kubernetes"]),
        fake.add_job(agent_query_rules=["queue=kubernetes", "os=linux"]),
        fake.add_job(agent_query_rules=["queue=kubernetes", "os=*"]),
    ]
    fake.add_job(agent_query_rules=["queue=kubernetes", "os=macos"])
    fake.add_job(agent_query_rules=["queue=kubernetes", "gpu=true"])
    fake.add_job(agent_query_rules=["queue=other"])  # not even returned: the query filters by queue
    target = monitor(source, handler, metrics, tags=("queue=kubernetes", "os=linux", "arch=amd64"))

    async with running(target):
        await until("three jobs", lambda: len(handler.jobs) == 3)

    assert sorted(handler.uuids) == sorted(accepted)
    assert sample(metrics, "buildkite_monitor_jobs_returned_total") == 5
    assert sample(metrics, "buildkite_monitor_jobs_filtered_out_total") == 2
    assert sample(metrics, "buildkite_monitor_jobs_handled_total") == 3
    job = next(job for job in handler.jobs if job.uuid == accepted[1])
    assert job.agent_query_rules == ("queue=kubernetes", "os=linux")
    assert job.node == fake.job(job.uuid).node


async def test_a_wildcard_controller_tag_is_not_a_wildcard(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_job(agent_query_rules=["queue=kubernetes", "os=linux"])
    target = monitor(source, handler, metrics, tags=("queue=kubernetes", "os=*"))
    async with running(target):
        await until(
            "the job to be filtered out", lambda: sample(metrics, "buildkite_monitor_jobs_filtered_out_total")
        )
        await asyncio.sleep(0.1)
    assert handler.jobs == []


async def test_the_poll_interval_is_at_least_one_second(
    source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    target = monitor(source, handler, metrics, poll_interval=0.05)
    assert target.poll_interval == MIN_POLL_INTERVAL
    async with running(target):
        await until("three polls", lambda: len(source.times) >= 3)
    gaps = [later - earlier for earlier, later in itertools.pairwise(source.times)]
    assert all(gap >= 0.95 for gap in gaps)  # every second, not every 50 ms
    assert all(gap < 3.0 for gap in gaps)  # and not much later either, even on a loaded machine


async def test_a_longer_poll_interval_is_kept(
    source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    target = monitor(source, handler, metrics, poll_interval=30)
    await run_for(target, 1.3)
    assert target.poll_interval == 30
    assert len(source.times) == 1


async def test_rate_limited_polls_wait_for_retry_after_then_recover(
    fake: FakeBuildkite,
    source: TimedSource,
    handler: Handler,
    metrics: ControllerMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    uuid = fake.add_job()
    fake.inject_rate_limit(1, retry_after=2)
    target = monitor(source, handler, metrics)
    with caplog.at_level(logging.WARNING):
        async with running(target):
            await until("the job", lambda: handler.uuids == [uuid])
    assert source.times[1] - source.times[0] >= 2.0
    assert "rate limited" in caplog.text
    assert sample(metrics, "buildkite_monitor_job_query_errors_total") == 1


async def test_query_errors_are_logged_and_the_next_poll_retries(
    fake: FakeBuildkite,
    source: TimedSource,
    handler: Handler,
    metrics: ControllerMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    uuid = fake.add_job()
    fake.inject_graphql_failure(502, 1)
    target = monitor(source, handler, metrics)
    with caplog.at_level(logging.WARNING):
        async with running(target):
            await until("the job", lambda: handler.uuids == [uuid])
    assert len(source.times) >= 2
    assert "polling Buildkite failed, retrying at the next poll" in caplog.text
    assert "HTTP 502" in caplog.text
    assert fake.graphql_token not in caplog.text


async def test_an_invalid_organization_stops_the_monitor(
    source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    target = monitor(source, handler, metrics, org="no-such-org")
    with pytest.raises(MonitorStoppedError, match='invalid organization: "no-such-org"'):
        await asyncio.wait_for(target.run(), 5)
    assert len(source.times) == 1
    assert sample(metrics, "buildkite_monitor_monitor_up") == 0


async def test_a_walk_starts_again_from_the_first_page_after_the_query_reset_interval(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    """A walk that has gone on from earlier cycles' cursors for ``query-reset-interval`` starts over, so
    it never stays on late pages for long (a job a cursor moved past is seen again soon)."""
    fake.add_jobs(700)  # 7 pages: with a depth of 2, a walk takes six cycles to reach the end
    target = monitor(
        source, handler, metrics, depth=2, reset=1.5, holds=lambda uuid, _: uuid in handler.uuids
    )
    async with running(target):
        await until("five cycles", lambda: len(source.times) >= 5, timeout=15)
    cursors = page_requests(fake)
    walk_pages = [cursor for index, cursor in enumerate(cursors) if index % 2 == 1]
    # cycle 1 walks pages 1-2; cycle 2 goes on (page 3); by cycle 3 or 4 the 1.5 s are up and the
    # walk starts again at page 2 (page 1 of every cycle is asked for anyway)
    assert walk_pages[0] != walk_pages[1]
    assert walk_pages[0] in walk_pages[2:]


async def test_jobs_are_shuffled_before_they_are_handed_on(
    fake: FakeBuildkite, source: TimedSource, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(30)
    listed = [node["uuid"] for node in await source.client.scheduled_jobs("test-org", "kubernetes")]
    orders = []
    for seed in (1, 2):
        handler = Handler()
        async with running(monitor(source, handler, metrics, concurrency=1, seed=seed)):
            await until("every job", lambda handler=handler: len(handler.jobs) == 30)  # type: ignore[misc]
        assert sorted(handler.uuids) == sorted(listed)
        orders.append(handler.uuids)
    assert orders[0] != listed
    assert orders[1] != listed
    assert orders[0] != orders[1]


async def test_at_most_job_creation_concurrency_jobs_are_handled_at_once(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(12)
    handler.delay = 0.02
    async with running(monitor(source, handler, metrics, concurrency=3)):
        await until("every job", lambda: len(handler.jobs) == 12)
    assert handler.max_running == 3


async def test_the_first_page_is_handed_on_before_later_pages_arrive(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(350)
    source.later_page_delay = 1.0  # every page after the first takes a second longer
    async with running(monitor(source, handler, metrics, concurrency=5)):
        await until("every job", lambda: len(handler.jobs) == 350, timeout=15)
    edges = fake.graphql_requests("GetScheduledJobs")[0].response["data"]["organization"]["jobs"]["edges"]
    assert set(handler.uuids[:100]) == {edge["node"]["uuid"] for edge in edges}
    assert len(set(handler.uuids)) == 350
    assert handler.times[99] < source.page_times[1]  # the first 100 were handed on before page 2 came


async def test_a_cycle_fetches_at_most_the_depth_limit_and_the_walk_continues_next_cycle(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    """Thousands of jobs in flight: each cycle reads the first page (new jobs) and a few more from
    where the last cycle stopped, instead of every page every second."""
    fake.add_jobs(700)  # 7 pages
    handed: set[str] = set()

    def in_flight(uuid: str, seen_at: float) -> bool:
        return uuid in handed

    async def hand(job: PendingJob) -> None:
        handed.add(job.uuid)
        await handler(job)

    target = Monitor(
        source,
        hand,
        metrics.monitor,
        tags=("queue=kubernetes",),
        pagination_depth_limit=3,
        query_reset_interval=60.0,
        holds=in_flight,
    )
    async with running(target):
        await until("a fourth cycle", lambda: len(page_requests(fake)) >= 12, timeout=10)

    cursors = page_requests(fake)[:12]
    # cycle 1: pages 1-3; cycle 2: page 1, then 4-5; cycle 3: page 1, then 6-7 (the end); cycle 4: 1-3
    assert [index for index, cursor in enumerate(cursors) if cursor is None] == [0, 3, 6, 9]
    page = {cursor: number for number, cursor in enumerate(cursors[:3], start=1)}
    assert cursors[10:12] == cursors[1:3]  # the fourth cycle starts the walk again
    assert len(set(cursors[1:3] + cursors[4:6] + cursors[7:9])) == 6  # pages 2-7, each once
    assert page[None] == 1
    assert len(set(handler.uuids)) == 700 == len(handler.uuids)  # each job once, in-flight ones skipped
    assert sample(metrics, "buildkite_monitor_jobs_skipped_in_flight_total") > 0


async def test_a_new_burst_in_front_of_jobs_in_flight_is_read_in_one_cycle(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    """A listing of jobs already in flight, then a burst of new ones (newest first, so in front): the
    next cycle reads from the first page on while pages bring new jobs, not one page and then the old
    jobs deep in the walk."""
    in_flight = set(fake.add_jobs(400))
    target = monitor(source, handler, metrics, depth=3, holds=lambda uuid, _: uuid in in_flight)
    await target.poll_once()  # the walk is now deep among the jobs in flight
    assert target.queued == []
    burst = fake.add_jobs(300)
    before = len(page_requests(fake))
    await target.poll_once()
    assert sorted(target.queued) == sorted(burst)
    assert page_requests(fake)[before:][0] is None  # from the first page
    assert len(page_requests(fake)) - before == 3  # within the depth limit
    in_flight.update(burst)
    await target.poll_once()  # nothing new in front: one page, then the walk goes on
    assert page_requests(fake)[before + 3 :][0] is None
    assert all(cursor is not None for cursor in page_requests(fake)[before + 4 :])


async def test_while_the_workers_are_a_page_behind_a_cycle_reads_the_first_page_only(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(350)
    handler.gate = asyncio.Event()  # the workers fall behind
    target = monitor(source, handler, metrics, concurrency=1, holds=lambda uuid, _: uuid in handler.uuids)
    async with running(target):
        await until("three cycles", lambda: len(source.times) >= 3, timeout=5)
        cursors = page_requests(fake)
        waiting = len(target.queued)
        handler.gate.set()
    assert cursors[0] is None
    assert all(cursor is not None for cursor in cursors[1:4])  # cycle 1: all four pages
    assert cursors[4:] == [None] * len(cursors[4:])  # then the first page only, for new jobs
    assert waiting >= 100


async def test_a_cycle_cut_short_keeps_the_pages_it_read(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(300)
    # pages after the first of a walk come 2 s late; a cycle may last 3 s: page 2 arrives, page 3 is
    # cut short (a second either way of slack for a loaded machine)
    source.later_page_delay = 2.0
    target = monitor(source, handler, metrics, stale=3.0, holds=lambda uuid, _: uuid in handler.uuids)
    async with running(target):
        await until("every job", lambda: len(set(handler.uuids)) == 300, timeout=30)
    cursors = page_requests(fake)
    # cycle 1: page 1, page 2 later, then cut short while page 3 was late; cycle 2: the first
    # page, then on from page 2's cursor (page 3) instead of starting the walk again
    assert cursors[:3] == [None, cursors[1], cursors[2]]
    assert cursors[3] is None
    assert cursors[4] == cursors[2]
    assert sample(metrics, "buildkite_monitor_job_query_errors_total") >= 1


async def test_a_cycle_never_outlives_the_stale_timeout(
    fake: FakeBuildkite, handler: Handler, metrics: ControllerMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    uuid = fake.add_job()
    fake.faults.hang("graphql", count=1)
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token, timeout=60) as patient:
        target = monitor(TimedSource(patient), handler, metrics, stale=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with caplog.at_level(logging.WARNING):
            assert await target.poll_once() == 0.0
        assert loop.time() - started < 1.5
        assert "longer than stale-job-data-timeout (0.5s)" in caplog.text
        async with running(target):
            await until("the job", lambda: handler.uuids == [uuid], timeout=5)


async def test_a_hung_request_costs_one_cycle(
    fake: FakeBuildkite, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.faults.hang("graphql", count=1)
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token, timeout=0.5) as client:
        source = TimedSource(client)
        target = monitor(source, handler, metrics)
        loop = asyncio.get_running_loop()
        async with running(target):
            await until("the hung poll", lambda: fake.faults.hits("graphql") == 1)
            added_at = loop.time()
            uuid = fake.add_job()
            await until("the job", lambda: handler.uuids == [uuid], timeout=5)
            waited = handler.times[0] - added_at
    assert waited < 0.5 + MIN_POLL_INTERVAL + 1.5  # the timeout, the next poll, a loaded machine
    assert sample(metrics, "buildkite_monitor_job_query_errors_total") == 1


async def test_polling_goes_on_while_workers_are_busy(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    stuck = fake.add_job()
    handler.gate = asyncio.Event()  # every job hangs in the next stage until released
    in_flight = monitor(source, handler, metrics, concurrency=2, holds=lambda uuid, _: uuid in handler.uuids)
    async with running(in_flight):
        await until("the stuck job", lambda: handler.uuids == [stuck])
        other = fake.add_job()
        await until("the next job, by the other worker", lambda: other in handler.uuids, timeout=3)
        await until("polls to go on", lambda: len(source.times) >= 3, timeout=4)
        handler.gate.set()


async def test_a_queued_job_seen_again_is_refreshed_not_queued_twice(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    first, second = fake.add_job(), fake.add_job()
    handler.gate = asyncio.Event()
    target = monitor(
        source, handler, metrics, concurrency=1, seed=4, holds=lambda uuid, _: uuid in handler.uuids
    )
    async with running(target):
        await until("one job taken", lambda: len(handler.jobs) == 1)
        waiting = target.queued
        await until("two more polls", lambda: len(source.times) >= 3, timeout=4)
        assert len(waiting) == 1
        assert target.queued == waiting
        handler.gate.set()
        await until("the other job", lambda: len(handler.jobs) == 2)
    assert sorted(handler.uuids) == sorted([first, second])
    refreshed = handler.jobs[1]
    assert refreshed.queried_at > source.times[0] + 0.5  # the data of a later poll, not the first


async def test_jobs_left_when_their_data_goes_stale_wait_for_the_next_poll(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(6)
    handler.gate = asyncio.Event()
    target = monitor(source, handler, metrics, stale=1.0, concurrency=1, poll_interval=30)
    loop = asyncio.get_running_loop()
    async with running(target):
        await until("the first job", lambda: len(handler.jobs) == 1)
        (first,) = handler.jobs
        await asyncio.sleep(max(0.0, first.stale_at - loop.time()) + 0.05)
        handler.gate.set()  # the worker comes back after the others' data went stale
        await until("the rest to be dropped", lambda: not target.queued)
    assert len(handler.jobs) == 1
    assert sample(metrics, "buildkite_monitor_stale_jobs_total") == 5
    assert first.stale_at - first.queried_at == pytest.approx(1.0)


async def test_handler_errors_never_stop_a_worker(
    fake: FakeBuildkite,
    source: TimedSource,
    handler: Handler,
    metrics: ControllerMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    uuids = fake.add_jobs(6)
    handler.errors[uuids[0]] = RuntimeError("the API server said\nno")
    handler.errors[uuids[1]] = DuplicateJobError(uuids[1], "already in flight")
    handler.errors[uuids[2]] = StaleJobError(uuids[2])
    with caplog.at_level(logging.WARNING):
        async with running(monitor(source, handler, metrics, concurrency=1)):
            await until("every job", lambda: len(handler.jobs) == 6)
    assert f"job {uuids[0]}: the API server said no" in caplog.text
    assert sample(metrics, "buildkite_monitor_job_handler_errors_total", reason="other") == 1
    assert sample(metrics, "buildkite_monitor_job_handler_errors_total", reason="duplicate") == 1
    assert sample(metrics, "buildkite_monitor_job_handler_errors_total", reason="stale") == 1
    assert sample(metrics, "buildkite_monitor_jobs_handled_total") == 3


async def test_jobs_the_deduper_holds_are_not_queued(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    held, free = fake.add_job(), fake.add_job()
    seen: list[tuple[str, float]] = []

    def holds(uuid: str, seen_at: float) -> bool:
        seen.append((uuid, seen_at))
        return uuid == held

    async with running(monitor(source, handler, metrics, holds=holds)):
        await until("the free job", lambda: handler.uuids == [free])
    assert sample(metrics, "buildkite_monitor_jobs_skipped_in_flight_total") >= 1
    assert {uuid for uuid, _ in seen} == {held, free}
