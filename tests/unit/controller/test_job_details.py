"""The job details stage (Stacks API mode): a reserved job is completed with its env and command (and
its acquisition token) before it is decided, through the real client against the fake Stacks API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.buildkite.errors import StacksAPIError
from engine.buildkite.stacks import AcquisitionToken, JobDetails, StacksAPI
from engine.buildkite.stacks_jobs import listed_job_node
from engine.controller.job_details import JobDetailsStage
from engine.controller.metrics import ControllerMetrics
from engine.controller.pipeline import JobUnavailableError, PendingJob
from engine.model.job import job_facts, parse_job
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample

STACK = "details-stack"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
async def stacks(fake: FakeBuildkite) -> AsyncIterator[StacksAPI]:
    async with StacksAPI(fake.agent_url, fake.agent_token, STACK) as client:
        await client.register("kubernetes")
        yield client


class Next:
    def __init__(self) -> None:
        self.jobs: list[PendingJob] = []

    async def __call__(self, job: PendingJob) -> None:
        self.jobs.append(job)


async def reserved_job(fake: FakeBuildkite, stacks: StacksAPI, **job: object) -> PendingJob:
    """A job as the monitor hands it on: reserved, its document built from the listing."""
    uuid = fake.add_job(**job)  # type: ignore[arg-type]
    [listed] = [j for j in (await stacks.scheduled_jobs("kubernetes", limit=100)).jobs if j["id"] == uuid]
    await stacks.reserve([uuid], 60)
    now = asyncio.get_running_loop().time()
    node = listed_job_node(listed)
    return PendingJob(uuid, node, ("queue=kubernetes",), now, now + 60, reserved=True)


async def no_sleep(_: float) -> None:
    return None


async def test_the_decided_document_has_the_listings_trusted_facts_and_the_jobs_details(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    job = await reserved_job(fake, stacks, command="make test", step_key="unit", branch="main", priority=2)
    after, metrics = Next(), ControllerMetrics()
    await JobDetailsStage(stacks, after, metrics.stacks).handle(job)

    [handed] = after.jobs
    assert handed.acquisition_token is None
    facts = job_facts(parse_job(handed.node))
    assert facts["pipeline"] == {"slug": "test-pipeline"}
    assert facts["build"] == {"number": fake.job(job.uuid).node["build"]["number"], "branch": "main"}
    assert facts["step"] == {"key": "unit"}
    assert facts["job"]["priority"] == 2
    assert facts["job"]["command"] == "make test"
    assert facts["job"]["env"]["BUILDKITE_JOB_ID"] == job.uuid
    assert [e.split("=", 1)[0] for e in handed.node["env"]] == [
        e.split("=", 1)[0] for e in fake.job(job.uuid).env
    ]
    assert sample(metrics, "buildkite_stacks_job_details_total", result="fetched") == 1


async def test_a_transient_failure_is_tried_again(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    job = await reserved_job(fake, stacks)
    fake.faults.fail("stacks", 502, count=2, only="get-job")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    after = Next()
    await JobDetailsStage(stacks, after, ControllerMetrics().stacks, sleep=sleep).handle(job)
    assert len(after.jobs) == 1
    assert len(waits) == 2
    assert 1.0 <= waits[0] <= 1.5
    assert 2.0 <= waits[1] <= 2.5


async def test_a_retry_after_is_what_is_waited(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    job = await reserved_job(fake, stacks)
    fake.faults.fail("stacks", 429, count=1, retry_after=4, only="get-job")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await JobDetailsStage(stacks, Next(), ControllerMetrics().stacks, sleep=sleep).handle(job)
    assert waits == [4.0]


async def test_still_failing_after_every_attempt_raises_for_a_later_try(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    job = await reserved_job(fake, stacks)
    fake.faults.fail("stacks", 500, only="get-job")
    metrics = ControllerMetrics()
    with pytest.raises(StacksAPIError, match="HTTP 500"):
        await JobDetailsStage(stacks, Next(), metrics.stacks, sleep=no_sleep).handle(job)
    assert len(fake.stacks_requests("get-job")) == 5
    assert sample(metrics, "buildkite_stacks_job_details_total", result="error") == 1


async def test_a_job_that_is_not_ours_or_gone_is_unavailable(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    job = await reserved_job(fake, stacks)
    fake.stacks.expire_reservations()
    with pytest.raises(JobUnavailableError, match=r"cannot get its details: .*HTTP 403"):
        await JobDetailsStage(stacks, Next(), ControllerMetrics().stacks, sleep=no_sleep).handle(job)
    assert len(fake.stacks_requests("get-job")) == 1  # a refusal is not asked again


async def test_with_acquisition_tokens_the_token_travels_with_the_job(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    job = await reserved_job(fake, stacks)
    after, metrics = Next(), ControllerMetrics()
    stage = JobDetailsStage(
        stacks, after, metrics.stacks, acquisition_tokens=True, token_lifetime_seconds=300
    )
    await stage.handle(job)
    [handed] = after.jobs
    [issued] = fake.stacks.issued_tokens(job.uuid)
    assert handed.acquisition_token == issued.token
    assert issued.token not in repr(handed)
    assert issued.token not in str(handed.node)
    [request] = fake.stacks_requests("job-acquisition-tokens")
    assert request.body == {"job_uuids": [job.uuid], "token_lifetime_seconds": 300}
    assert sample(metrics, "buildkite_stacks_acquisition_tokens_total", result="issued") == 1


async def test_no_token_issued_means_the_job_is_not_started(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    """The reservation lapsed between the details and the token: Buildkite issues none, and the job is
    not started with the cluster token instead."""
    job = await reserved_job(fake, stacks)
    after, metrics = Next(), ControllerMetrics()

    class LapsingStacks:
        async def job(self, job_uuid: str) -> JobDetails | None:
            details = await stacks.job(job_uuid)
            fake.stacks.expire_reservations()
            return details

        async def issue_acquisition_tokens(
            self, job_uuids: list[str], lifetime_seconds: int = 0
        ) -> tuple[list[AcquisitionToken], list[str]]:
            return await stacks.issue_acquisition_tokens(job_uuids, lifetime_seconds)

    stage = JobDetailsStage(LapsingStacks(), after, metrics.stacks, acquisition_tokens=True)
    with pytest.raises(JobUnavailableError, match="no job acquisition token"):
        await stage.handle(job)
    assert after.jobs == []
    assert sample(metrics, "buildkite_stacks_acquisition_tokens_total", result="not_issued") == 1
