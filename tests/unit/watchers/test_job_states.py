"""Batched job-state lookups: concurrent lookups share one request, through the real GraphQL client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.buildkite.graphql import BuildkiteAPIError, BuildkiteGraphQL
from engine.controller.watchers.job_states import BatchedJobStates
from tests.fakes.buildkite import FakeBuildkite


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
async def client(fake: FakeBuildkite) -> AsyncIterator[BuildkiteGraphQL]:
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token) as graphql:
        yield graphql


def state_requests(fake: FakeBuildkite) -> int:
    return len(fake.graphql_requests("GetCommandJobStates")) + len(fake.graphql_requests("GetCommandJob"))


async def test_lookups_within_a_window_share_one_request(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    scheduled = fake.add_jobs(30)
    cancelled = fake.add_job(state="CANCELED")
    states = BatchedJobStates(client, window=0.2)
    lookups = [*scheduled, cancelled, cancelled, "00000000-0000-4000-8000-000000000000"]
    answers = await asyncio.gather(*(states.job_state(uuid) for uuid in lookups))
    assert answers == [*(["SCHEDULED"] * 30), "CANCELED", "CANCELED", None]
    assert state_requests(fake) == 1


async def test_lookups_in_later_windows_are_asked_again(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    uuid = fake.add_job()
    states = BatchedJobStates(client, window=0.05)
    assert await states.job_state(uuid) == "SCHEDULED"
    assert await states.job_state(uuid) == "SCHEDULED"
    assert state_requests(fake) == 2


async def test_a_failed_request_fails_every_lookup_of_its_window(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    first, second = fake.add_job(), fake.add_job()
    fake.faults.fail("graphql", 500, count=1)
    states = BatchedJobStates(client, window=0.05)
    results = await asyncio.gather(states.job_state(first), states.job_state(second), return_exceptions=True)
    assert all(isinstance(result, BuildkiteAPIError) for result in results)
    assert await states.job_state(first) == "SCHEDULED"  # the next window asks again


async def test_a_cancelled_lookup_does_not_disturb_the_others(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    first, second = fake.add_job(), fake.add_job()
    states = BatchedJobStates(client, window=0.1)
    abandoned = asyncio.create_task(states.job_state(first))
    kept = asyncio.create_task(states.job_state(second))
    await asyncio.sleep(0.01)
    abandoned.cancel()
    assert await kept == "SCHEDULED"
    assert abandoned.cancelled()
