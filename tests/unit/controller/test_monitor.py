"""Monitor: polling the fake Buildkite through the real GraphQL client (spec §4.3, bugs 1/21 fixed)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

import pytest

from engine.buildkite.graphql import BuildkiteGraphQL
from engine.controller.metrics import ControllerMetrics
from engine.controller.monitor import MIN_POLL_INTERVAL, Monitor, MonitorStoppedError
from engine.controller.pipeline import DuplicateJobError, PendingJob, StaleJobError
from engine.model.jsonvalue import JSONObject
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample


class TimedSource:
    """The real GraphQL client, noting when each poll was made (loop time)."""

    def __init__(self, client: BuildkiteGraphQL) -> None:
        self.client = client
        self.times: list[float] = []

    async def scheduled_jobs(self, org: str, queue: str, cluster_uuid: str = "") -> list[JSONObject]:
        self.times.append(asyncio.get_running_loop().time())
        return await self.client.scheduled_jobs(org, queue, cluster_uuid)


class Handler:
    """Records handed-on jobs; per-job errors and delays are scriptable."""

    def __init__(self) -> None:
        self.jobs: list[PendingJob] = []
        self.errors: dict[str, Exception] = {}
        self.delay = 0.0
        self.running = 0
        self.max_running = 0

    @property
    def uuids(self) -> list[str]:
        return [job.uuid for job in self.jobs]

    async def __call__(self, job: PendingJob) -> None:
        self.jobs.append(job)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
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
    **options: float,
) -> Monitor:
    return Monitor(
        source,
        handler,
        metrics.monitor,
        org=org,
        tags=tags,
        poll_interval=options.get("poll_interval", 1.0),
        stale_job_data_timeout=options.get("stale", 10.0),
        job_creation_concurrency=int(options.get("concurrency", 5)),
        rng=random.Random(int(options.get("seed", 1))),
    )


async def run_for(target: Monitor, seconds: float) -> None:
    task = asyncio.create_task(target.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


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

    await target.poll_once("kubernetes")

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
    await target.poll_once("kubernetes")
    assert handler.jobs == []


async def test_the_poll_interval_is_at_least_one_second(
    source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    target = monitor(source, handler, metrics, poll_interval=0.05)
    assert target.poll_interval == MIN_POLL_INTERVAL
    await run_for(target, 1.5)
    assert len(source.times) == 2  # at 0 s and 1 s, not every 50 ms
    assert source.times[1] - source.times[0] == pytest.approx(1.0, abs=0.15)


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
        await run_for(target, 2.6)
    assert len(source.times) == 2
    assert source.times[1] - source.times[0] >= 2.0
    assert handler.uuids == [uuid]
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
        await run_for(target, 1.5)
    assert handler.uuids == [uuid]
    assert len(source.times) == 2
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


async def test_a_controller_without_a_queue_tag_cannot_poll(
    source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    target = monitor(source, handler, metrics, tags=("os=linux",))
    with pytest.raises(MonitorStoppedError, match="missing required tag: queue"):
        await target.run()
    assert source.times == []


async def test_jobs_are_shuffled_before_they_are_handed_on(
    fake: FakeBuildkite, source: TimedSource, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(30)
    listed = [node["uuid"] for node in await source.client.scheduled_jobs("test-org", "kubernetes")]
    orders = []
    for seed in (1, 2):
        handler = Handler()
        await monitor(source, handler, metrics, concurrency=1, seed=seed).poll_once("kubernetes")
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
    await monitor(source, handler, metrics, concurrency=3).poll_once("kubernetes")
    assert len(handler.jobs) == 12
    assert handler.max_running == 3


async def test_a_poll_ends_when_its_jobs_are_handled_not_at_the_stale_deadline(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(3)
    target = monitor(source, handler, metrics, stale=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await target.poll_once("kubernetes")
    assert loop.time() - started < 2
    assert len(handler.jobs) == 3


async def test_jobs_left_when_the_data_goes_stale_wait_for_the_next_poll(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    fake.add_jobs(6)
    handler.delay = 0.2
    target = monitor(source, handler, metrics, stale=0.3, concurrency=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await target.poll_once("kubernetes")
    assert loop.time() - started < 1.0
    assert len(handler.jobs) == 2
    assert sample(metrics, "buildkite_monitor_stale_jobs_total") == 4
    assert all(job.stale_at - job.queried_at == pytest.approx(0.3, abs=0.1) for job in handler.jobs)


async def test_a_stale_job_stops_its_worker_and_duplicates_do_not(
    fake: FakeBuildkite, source: TimedSource, handler: Handler, metrics: ControllerMetrics
) -> None:
    uuids = fake.add_jobs(4)
    target = monitor(source, handler, metrics, concurrency=1, seed=3)
    for uuid in uuids:
        handler.errors[uuid] = DuplicateJobError(uuid, "already in flight")
    await target.poll_once("kubernetes")
    assert len(handler.jobs) == 4  # duplicates: the worker goes on
    assert sample(metrics, "buildkite_monitor_job_handler_errors_total", reason="duplicate") == 4

    handler.jobs.clear()
    for uuid in uuids:
        handler.errors[uuid] = StaleJobError(uuid)
    await target.poll_once("kubernetes")
    assert len(handler.jobs) == 1  # stale: this worker (the only one) stops
    assert sample(metrics, "buildkite_monitor_job_handler_errors_total", reason="stale") == 1
    assert sample(metrics, "buildkite_monitor_stale_jobs_total") == 4


async def test_other_handler_errors_are_logged_and_the_worker_goes_on(
    fake: FakeBuildkite,
    source: TimedSource,
    handler: Handler,
    metrics: ControllerMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    uuids = fake.add_jobs(3)
    handler.errors[uuids[0]] = RuntimeError("the API server said\nno")
    with caplog.at_level(logging.WARNING):
        await monitor(source, handler, metrics, concurrency=1).poll_once("kubernetes")
    assert len(handler.jobs) == 3
    assert f"job {uuids[0]}: the API server said no" in caplog.text
    assert sample(metrics, "buildkite_monitor_job_handler_errors_total", reason="other") == 1
