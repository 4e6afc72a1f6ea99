"""AgentAPI.fail_job ("acquire and fail") against the fake Buildkite's Agent REST API."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest

import engine
from engine.buildkite.agent_api import AgentAPI, AgentAPIError, JobAcquisitionRejected
from tests.fakes.buildkite import FakeBuildkite

TAGS = ["queue=kubernetes"]


class RecordedSleep:
    """Stands in for ``asyncio.sleep``: remembers each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def api(fake: FakeBuildkite, sleep: RecordedSleep) -> AgentAPI:
    return AgentAPI(fake.agent_url, sleep=sleep)


async def test_fail_job_runs_the_whole_protocol(fake: FakeBuildkite, api: AgentAPI) -> None:
    uuid = fake.add_job(queue="kubernetes")
    message = "agent-stack-policy failed to build a podSpec for the job:\n  ünïcode ✓\n"

    await api.fail_job(fake.agent_token, uuid, TAGS, message)

    job = fake.job(uuid)
    assert (job.state, job.exit_status, job.log) == ("FINISHED", "1", message)
    assert job.agent_name == f"buildkite-{uuid}"
    assert job.chunks_failed_count == 0
    (agent,) = fake.agents
    assert agent.meta_data == tuple(TAGS)
    assert agent.disconnected
    steps = [request.path.rsplit("/", 1)[-1] for request in fake.agent_requests()]
    assert steps == ["register", "connect", "acquire", "start", "chunks", "finish", "disconnect"]


async def test_registration_describes_a_throwaway_agent(fake: FakeBuildkite, api: AgentAPI) -> None:
    uuid = fake.add_job()

    await api.fail_job(fake.agent_token, uuid, ["queue=kubernetes", "size=large"], "boom")

    (agent,) = fake.agents
    registration = agent.registration
    assert registration["name"] == f"buildkite-{uuid}"
    assert registration["meta_data"] == ["queue=kubernetes", "size=large"]
    assert registration["ignore_in_dispatches"] is True
    assert registration["script_eval_enabled"] is True
    assert registration["features"] == ["agent-core"]
    assert registration["version"] == engine.__version__
    assert all(registration[key] for key in ("hostname", "os", "arch"))


async def test_tokens_and_headers_on_each_call(fake: FakeBuildkite, api: AgentAPI) -> None:
    uuid = fake.add_job()

    await api.fail_job(fake.agent_token, uuid, TAGS, "boom")

    register, *rest = fake.agent_requests()
    assert register.headers["Authorization"] == f"Token {fake.agent_token}"
    access_token = register.response["access_token"]
    assert all(r.headers["Authorization"] == f"Token {access_token}" for r in rest)
    assert all(r.headers["X-Buildkite-Fake-Agent"] == register.response["id"] for r in rest)
    assert all(
        r.headers["User-Agent"] == f"agent-stack-policy/{engine.__version__}" for r in fake.agent_requests()
    )
    (acquire,) = fake.agent_requests("acquire")
    assert acquire.headers["X-Buildkite-Lock-Acquire-Job"] == "1"
    assert acquire.headers["X-Buildkite-Backoff-Sequence"] == "0"


async def test_the_log_is_one_gzip_chunk_sized_in_uncompressed_bytes(
    fake: FakeBuildkite, api: AgentAPI
) -> None:
    uuid = fake.add_job()
    message = "naïve ☃ message"

    await api.fail_job(fake.agent_token, uuid, TAGS, message)

    (chunk,) = fake.agent_requests("chunks")
    assert chunk.query == {"sequence": "0", "offset": "0", "size": str(len(message.encode()))}
    assert chunk.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(chunk.body) == message.encode()


async def test_a_log_larger_than_the_chunk_limit_is_split() -> None:
    async with FakeBuildkite(chunks_max_size_bytes=16) as fake:
        uuid = fake.add_job()
        message = "0123456789" * 5

        await AgentAPI(fake.agent_url, sleep=RecordedSleep()).fail_job(fake.agent_token, uuid, TAGS, message)

        assert fake.job(uuid).log == message
        chunks = fake.agent_requests("chunks")
        assert [c.query["sequence"] for c in chunks] == ["0", "1", "2", "3"]
        assert [c.query["offset"] for c in chunks] == ["0", "16", "32", "48"]


@pytest.mark.parametrize("state", ["CANCELED", "RUNNING", "FINISHED"])
async def test_a_job_no_longer_scheduled_is_rejected(fake: FakeBuildkite, api: AgentAPI, state: str) -> None:
    uuid = fake.add_job(state=state)

    with pytest.raises(JobAcquisitionRejected, match="rejected"):
        await api.fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert fake.job(uuid).state == state
    assert len(fake.agent_requests("acquire")) == 1  # 422 is final
    assert fake.agent_requests("start") == []
    (agent,) = fake.agents
    assert agent.disconnected


async def test_tags_that_do_not_satisfy_the_job_are_rejected(fake: FakeBuildkite, api: AgentAPI) -> None:
    uuid = fake.add_job(agent_query_rules=["queue=kubernetes", "os=linux"])

    with pytest.raises(JobAcquisitionRejected):
        await api.fail_job(fake.agent_token, uuid, ["queue=kubernetes"], "boom")


@pytest.mark.parametrize(("retry_after", "low", "high"), [(4, 4.0, 4.0), (None, 1.0, 2.0)])
async def test_a_locked_job_is_retried(
    fake: FakeBuildkite, sleep: RecordedSleep, retry_after: int | None, low: float, high: float
) -> None:
    uuid = fake.add_job()
    fake.inject_acquire_locked(2, retry_after=retry_after)

    await AgentAPI(fake.agent_url, sleep=sleep).fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert fake.job(uuid).state == "FINISHED"
    assert len(sleep.waits) == 2
    assert all(low <= wait <= high for wait in sleep.waits)
    sequences = [r.headers["X-Buildkite-Backoff-Sequence"] for r in fake.agent_requests("acquire")]
    assert sequences == ["0", "1", "2"]


async def test_retry_scale_shrinks_every_wait(fake: FakeBuildkite, sleep: RecordedSleep) -> None:
    uuid = fake.add_job()
    fake.inject_acquire_locked(1, retry_after=4)
    fake.inject_agent_failure("start", 502, 2)

    await AgentAPI(fake.agent_url, sleep=sleep, retry_scale=0.01).fail_job(fake.agent_token, uuid, TAGS, "x")

    assert sleep.waits == pytest.approx([0.04, 0.02, 0.04])  # 4 s Retry-After, then start's 2 s, 4 s


async def test_acquisition_gives_up_after_its_time_budget(fake: FakeBuildkite, sleep: RecordedSleep) -> None:
    uuid = fake.add_job()
    fake.inject_acquire_locked(10, retry_after=100)

    with pytest.raises(AgentAPIError, match=r"acquire: .*423.*gave up after 270s"):
        await AgentAPI(fake.agent_url, sleep=sleep).fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert sleep.waits == [100, 100]
    assert fake.job(uuid).state == "SCHEDULED"
    assert fake.agents[0].disconnected


async def test_server_errors_are_retried_until_the_attempts_run_out(
    fake: FakeBuildkite, api: AgentAPI, sleep: RecordedSleep
) -> None:
    uuid = fake.add_job()
    fake.inject_agent_failure("connect", 503, 10)

    with pytest.raises(AgentAPIError, match=r"connect: HTTP 503.*gave up after 10 attempts"):
        await api.fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert sleep.waits == [5.0] * 9
    assert fake.agents[0].disconnected  # registered, so always disconnected


async def test_a_rejected_agent_token_is_not_retried_or_revealed(fake: FakeBuildkite, api: AgentAPI) -> None:
    uuid = fake.add_job()
    secret = "wrong-agent-token-value"

    with pytest.raises(AgentAPIError) as raised:
        await api.fail_job(secret, uuid, TAGS, "boom")

    assert "HTTP 401" in str(raised.value)
    assert secret not in str(raised.value)
    assert len(fake.agent_requests("register")) == 1
    assert fake.agent_requests("disconnect") == []  # never registered, nothing to disconnect


async def test_an_empty_agent_token_is_refused_up_front(fake: FakeBuildkite, api: AgentAPI) -> None:
    with pytest.raises(AgentAPIError, match=r"^agent token is empty$"):
        await api.fail_job("", fake.add_job(), TAGS, "boom")
    assert fake.requests == []


async def test_a_failing_disconnect_does_not_undo_the_failure(
    fake: FakeBuildkite, api: AgentAPI, sleep: RecordedSleep
) -> None:
    uuid = fake.add_job()
    fake.inject_agent_failure("disconnect", 500, 4)

    await api.fail_job(fake.agent_token, uuid, TAGS, "boom")

    assert fake.job(uuid).state == "FINISHED"
    assert len(fake.agent_requests("disconnect")) == 4
    assert sleep.waits == [1.0] * 3


async def test_an_unreachable_endpoint_is_an_agent_api_error(sleep: RecordedSleep) -> None:
    async with FakeBuildkite() as fake:
        url = fake.agent_url
    api = AgentAPI(url, sleep=sleep, retry_scale=0)

    with pytest.raises(AgentAPIError, match=r"^register: .*gave up after 30 attempts"):
        await api.fail_job("token", "11111111-1111-1111-1111-111111111111", TAGS, "boom")

    assert len(sleep.waits) == 29
