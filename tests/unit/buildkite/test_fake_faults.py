"""The fake Buildkite's fault injection: 500s, 429 with Retry-After and hangs, per API, through the real
clients (so the fault tests of the controller rest on faults that look like the real thing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from engine.buildkite.agent_api import AgentAPI
from engine.buildkite.errors import AgentAPIError, BuildkiteAPIError, RateLimitedError
from engine.buildkite.graphql import BuildkiteGraphQL
from tests.fakes.buildkite import HANG_STATUS, FakeBuildkite

TAGS = ["queue=kubernetes"]


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


HANG_TIMEOUT = 2.0
"""The client's request timeout: long enough that an answered request never meets it on a loaded
machine, short enough that a hang test stays quick."""


@pytest.fixture
async def client(fake: FakeBuildkite) -> AsyncIterator[BuildkiteGraphQL]:
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token, timeout=HANG_TIMEOUT) as graphql:
        yield graphql


async def test_a_counted_failure_answers_that_many_requests_then_stops(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    uuid = fake.add_job()
    fake.faults.fail("graphql", 500, count=2)

    for _ in range(2):
        with pytest.raises(BuildkiteAPIError, match="HTTP 500"):
            await client.job_state(uuid)
    assert await client.job_state(uuid) == "SCHEDULED"
    assert fake.faults.hits("graphql") == 2
    assert [r.status for r in fake.graphql_requests()] == [500, 500, 200]


async def test_an_open_ended_outage_lasts_until_cleared(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    uuid = fake.add_job()
    fake.faults.fail("graphql", 503)
    for _ in range(5):
        with pytest.raises(BuildkiteAPIError, match="HTTP 503"):
            await client.job_state(uuid)

    fake.faults.clear("graphql")

    assert await client.job_state(uuid) == "SCHEDULED"


async def test_a_rate_limit_names_its_wait(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    fake.faults.fail("graphql", 429, count=1, retry_after=3)

    with pytest.raises(RateLimitedError) as raised:
        await client.scheduled_jobs("test-org", "kubernetes")

    assert raised.value.retry_after == 3
    (request,) = fake.graphql_requests()
    assert request.status == 429
    assert request.response["errors"][0]["message"] == "You have exceeded the API rate limit"


async def test_a_fault_can_target_one_operation(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    uuid = fake.add_job()
    fake.faults.fail("graphql", 500, only="GetScheduledJobs")

    assert await client.job_state(uuid) == "SCHEDULED"
    with pytest.raises(BuildkiteAPIError, match="HTTP 500"):
        await client.scheduled_jobs("test-org", "kubernetes")


async def test_a_hang_outlasts_the_client_timeout_and_clear_lets_it_go(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    uuid = fake.add_job()
    fake.faults.hang("graphql", count=1)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(BuildkiteAPIError, match=rf"no response within {HANG_TIMEOUT:g}s"):
        await client.job_state(uuid)

    assert HANG_TIMEOUT - 0.1 < loop.time() - started < HANG_TIMEOUT + 3
    assert await client.job_state(uuid) == "SCHEDULED"  # the next request is answered
    fake.faults.clear()  # the held request ends now, with a gateway timeout nobody waits for
    await _until(lambda: any(r.status == HANG_STATUS for r in fake.graphql_requests()))


async def test_a_hang_ends_by_itself_after_its_seconds(fake: FakeBuildkite) -> None:
    fake.faults.hang("graphql", 0.2, count=1)
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token, timeout=5) as patient:
        with pytest.raises(BuildkiteAPIError, match=f"HTTP {HANG_STATUS}"):
            await patient.job_state("00000000-0000-0000-0000-000000000000")


async def test_agent_faults_leave_the_state_untouched_and_can_target_a_step(fake: FakeBuildkite) -> None:
    uuid = fake.add_job()
    fake.faults.fail("agent", 500, count=3, only="register")
    api = AgentAPI(fake.agent_url, sleep=_no_sleep)

    await api.fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert [r.status for r in fake.agent_requests("register")] == [500, 500, 500, 200]
    assert len(fake.agents) == 1  # the three refused registrations created no agent
    assert fake.job(uuid).state == "FINISHED"


async def test_a_hung_agent_request_times_out_is_counted_and_retried(fake: FakeBuildkite) -> None:
    uuid = fake.add_job()
    fake.faults.hang("agent", count=1, only="acquire")
    timeouts: list[str] = []
    api = AgentAPI(fake.agent_url, sleep=_no_sleep, request_timeout=0.3, on_timeout=timeouts.append)

    await api.fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert timeouts == ["acquire"]
    assert fake.job(uuid).log == "boom"


async def test_an_agent_outage_exhausts_the_retries(fake: FakeBuildkite) -> None:
    uuid = fake.add_job()
    fake.faults.fail("agent", 502)
    api = AgentAPI(fake.agent_url, sleep=_no_sleep)

    with pytest.raises(AgentAPIError, match=r"register: HTTP 502: .* \(gave up after 30 attempts\)"):
        await api.fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert fake.faults.hits("agent") == 30
    assert fake.job(uuid).state == "SCHEDULED"


async def _until(probe: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
