"""The Stacks API client against the fake Stacks API: the wire format (paths, escaping, methods, bodies,
headers) the reference describes, and one clean error per kind of failure, never carrying the token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine.buildkite.errors import RateLimitedError, StacksAPIError
from engine.buildkite.stacks import (
    FINISH_DETAIL_LIMIT,
    NOTIFICATION_DETAIL_LIMIT,
    Notification,
    StacksAPI,
    crop_detail,
    escape_segment,
)
from tests.fakes.buildkite import FakeBuildkite

STACK = "bk.kubernetes"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
async def api(fake: FakeBuildkite) -> AsyncIterator[StacksAPI]:
    async with StacksAPI(fake.agent_url, fake.agent_token, STACK, timeout=0.5) as client:
        await client.register("kubernetes")
        yield client


def test_path_parameters_are_escaped_with_dots_as_percent_2e() -> None:
    assert escape_segment("bk.kubernetes") == "bk%2Ekubernetes"
    assert escape_segment("a/b c") == "a%2Fb%20c"
    assert escape_segment("0190f3a4-5b6c") == "0190f3a4-5b6c"


async def test_every_request_carries_the_agent_token_and_json_headers(
    fake: FakeBuildkite, api: StacksAPI
) -> None:
    await api.scheduled_jobs("kubernetes", limit=10)
    await api.deregister()
    for request in fake.stacks_requests():
        assert request.headers["Authorization"] == f"Token {fake.agent_token}"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["User-Agent"].startswith("agent-stack-policy/")
        assert request.status < 300
    [register] = fake.stacks_requests("register")
    assert register.body == {"key": STACK, "type": "custom", "queue_key": "kubernetes", "metadata": {}}
    [listing] = fake.stacks_requests("scheduled-jobs")
    assert listing.raw_path == "/v3/stacks/bk%2Ekubernetes/scheduled-jobs"
    assert listing.query == {"queue_key": "kubernetes", "limit": "10"}
    [deregister] = fake.stacks_requests("deregister")
    assert (deregister.method, deregister.status, deregister.body) == ("POST", 204, None)  # empty JSON body


async def test_listing_pages_follow_the_cursor_and_only_show_unreserved_jobs_of_the_queue(
    fake: FakeBuildkite, api: StacksAPI
) -> None:
    uuids = fake.add_jobs(5, step_key="build", priority=3)
    fake.add_job(queue="other")
    first = await api.scheduled_jobs("kubernetes", limit=2)
    assert [job["id"] for job in first.jobs] == uuids[:2]
    assert first.end_cursor is not None
    assert first.paused is False
    job = first.jobs[0]
    assert job["priority"] == 3
    assert job["agent_query_rules"] == ["queue=kubernetes"]
    assert job["pipeline"]["slug"] == "test-pipeline"
    assert job["step"] == {"key": "build"}
    assert set(job["build"]) == {"uuid", "number", "branch"}
    await api.reserve([uuids[2]], 60)
    second = await api.scheduled_jobs("kubernetes", limit=2, after=first.end_cursor)
    assert [job["id"] for job in second.jobs] == uuids[3:5]  # the reserved one is not listed
    assert second.end_cursor is None


async def test_reservations_are_exclusive_between_stacks_and_expire(
    fake: FakeBuildkite, api: StacksAPI
) -> None:
    a, b = fake.add_job(), fake.add_job()
    async with StacksAPI(fake.agent_url, fake.agent_token, "other") as other:
        await other.register("kubernetes")
        assert (await other.reserve([a], 60)).reserved == [a]
        reservation = await api.reserve([a, b, "00000000-0000-4000-8000-000000000000"], 300)
        assert reservation.reserved == [b]
        assert reservation.not_reserved == [a, "00000000-0000-4000-8000-000000000000"]
        assert await api.job_states([a, b]) == {a: "reserved", b: "reserved"}
        with pytest.raises(StacksAPIError, match="HTTP 403") as refused:
            await api.job(a)  # another stack's job: no details for us
        assert refused.value.permanent
        fake.stacks.expire_reservations()
        assert await api.job_states([a]) == {a: "scheduled"}
        assert (await api.reserve([a], 60)).reserved == [a]
    [body] = [r.body for r in fake.stacks_requests("batch-reserve") if r.body["job_uuids"] == [a]][-1:]
    assert body == {"job_uuids": [a], "reservation_expiry_seconds": 60}


async def test_a_stack_reserving_its_own_job_again_gets_it_again(fake: FakeBuildkite, api: StacksAPI) -> None:
    """The fake's model of the case the reference leaves open (see tests/fakes/stacks.py)."""
    uuid = fake.add_job()
    assert (await api.reserve([uuid], 60)).reserved == [uuid]
    assert (await api.reserve([uuid], 60)).reserved == [uuid]
    assert fake.stacks.times_reserved(uuid) == 2


async def test_an_expiry_of_zero_is_left_out_of_the_request(fake: FakeBuildkite, api: StacksAPI) -> None:
    uuid = fake.add_job()
    await api.reserve([uuid], 0)
    [request] = fake.stacks_requests("batch-reserve")
    assert request.body == {"job_uuids": [uuid]}


async def test_a_reserved_jobs_details_finish_and_states(fake: FakeBuildkite, api: StacksAPI) -> None:
    uuid = fake.add_job(command="make test", env={"FOO": "bar"})
    await api.reserve([uuid], 60)
    details = await api.job(uuid)
    assert details is not None
    assert (details.uuid, details.command, details.env["FOO"]) == (uuid, "make test", "bar")
    assert details.env["BUILDKITE_JOB_ID"] == uuid
    assert await api.job("00000000-0000-4000-8000-000000000000") is None  # 404
    await api.finish(uuid, "x" * 10_000)
    [finish] = fake.stacks.finishes(uuid)
    assert finish.exit_status == -1
    assert len(finish.detail.encode()) == FINISH_DETAIL_LIMIT
    assert finish.detail.endswith("(the message was cropped: it exceeded 4 KiB)")
    assert await api.job_states([uuid]) == {uuid: "finished"}
    with pytest.raises(StacksAPIError, match="HTTP 403") as again:
        await api.finish(uuid, "twice")
    assert again.value.permanent


async def test_notifications_are_cropped_and_per_item_errors_come_back(
    fake: FakeBuildkite, api: StacksAPI
) -> None:
    uuid = fake.add_job()
    now = datetime.now(UTC)
    problems = await api.notify(
        [
            Notification(uuid, "é" * 300, now),
            Notification("00000000-0000-4000-8000-000000000000", "for nobody", now),
        ]
    )
    assert problems == [("job not found", [1])]
    [kept] = fake.stacks.notifications(uuid)
    assert len(kept.detail.encode()) <= NOTIFICATION_DETAIL_LIMIT
    assert kept.detail.endswith("… (cropped)")
    assert kept.timestamp is not None
    assert kept.timestamp.endswith("Z")


async def test_job_acquisition_tokens_need_the_reservation(fake: FakeBuildkite, api: StacksAPI) -> None:
    reserved, free = fake.add_job(), fake.add_job()
    await api.reserve([reserved], 60)
    tokens, not_issued = await api.issue_acquisition_tokens([reserved, free], 120)
    assert [t.job_uuid for t in tokens] == [reserved]
    assert tokens[0].token.startswith("bkjat_")
    assert tokens[0].token not in repr(tokens[0])
    assert not_issued == [free]
    [request] = fake.stacks_requests("job-acquisition-tokens")
    assert request.body == {"job_uuids": [reserved, free], "token_lifetime_seconds": 120}
    assert request.status == 201


async def test_the_token_identity_says_which_cluster(fake: FakeBuildkite, api: StacksAPI) -> None:
    identity = await api.token_identity()
    assert identity.cluster_uuid
    assert identity.organization_slug == "test-org"
    fake.stacks.cluster_uuid = None
    assert (await api.token_identity()).cluster_uuid == ""


async def test_a_wrong_token_is_a_permanent_error_without_the_token(fake: FakeBuildkite) -> None:
    async with StacksAPI(fake.agent_url, "bkua_wrong_token_secret", STACK) as client:
        with pytest.raises(StacksAPIError) as failure:
            await client.register("kubernetes")
    assert failure.value.status == 401
    assert failure.value.permanent
    assert "check the agent token" in str(failure.value)
    assert "bkua_wrong_token_secret" not in str(failure.value)


async def test_an_unregistered_stack_is_refused(fake: FakeBuildkite) -> None:
    async with StacksAPI(fake.agent_url, fake.agent_token, "never-registered") as client:
        with pytest.raises(StacksAPIError, match="HTTP 404") as failure:
            await client.scheduled_jobs("kubernetes", limit=1)
    assert failure.value.permanent


async def test_throttling_and_server_errors_are_worth_retrying(fake: FakeBuildkite, api: StacksAPI) -> None:
    fake.faults.fail("stacks", 429, count=1, retry_after=7, only="scheduled-jobs")
    with pytest.raises(RateLimitedError) as throttled:
        await api.scheduled_jobs("kubernetes", limit=1)
    assert throttled.value.retry_after == 7
    fake.faults.fail("stacks", 503, count=1, retry_after=3, only="get-states")
    with pytest.raises(StacksAPIError) as unavailable:
        await api.job_states(["x"])
    assert (unavailable.value.status, unavailable.value.retry_after, unavailable.value.permanent) == (
        503,
        3,
        False,
    )


async def test_no_answer_in_time_is_counted_and_not_permanent(fake: FakeBuildkite) -> None:
    timeouts: list[str] = []
    async with StacksAPI(
        fake.agent_url, fake.agent_token, STACK, timeout=0.3, on_timeout=timeouts.append
    ) as client:
        await client.register("kubernetes")
        fake.faults.hang("stacks", count=1, only="batch-reserve")
        with pytest.raises(StacksAPIError, match=r"reserve jobs: no response within 0.3s") as hung:
            await client.reserve(["x"], 60)
    assert hung.value.status is None
    assert not hung.value.permanent
    assert timeouts == ["reserve jobs"]


def test_crop_detail_keeps_whole_characters() -> None:
    assert crop_detail("short", 10, "…") == "short"
    cropped = crop_detail("ééééé", 7, "!")
    assert cropped == "ééé!"
    assert len(cropped.encode()) <= 7
