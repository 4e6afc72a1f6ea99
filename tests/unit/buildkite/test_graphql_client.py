"""BuildkiteGraphQL against the fake Buildkite: what it sends, what it returns, how it fails."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

import engine
from engine.buildkite.documents import ALL_DOCUMENTS
from engine.buildkite.graphql import (
    BuildkiteAPIError,
    BuildkiteGraphQL,
    InvalidOrganizationError,
    JobPage,
    RateLimitedError,
    ScheduledJob,
)
from engine.buildkite.schema import checked_document
from tests.fakes.buildkite import FakeBuildkite

CLUSTER = "beefcafe-abbe-baba-abba-deedcedecade"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
async def client(fake: FakeBuildkite) -> AsyncIterator[BuildkiteGraphQL]:
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token) as graphql:
        yield graphql


async def test_scheduled_jobs_follows_every_page(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    wanted = set(fake.add_jobs(250, queue="kubernetes"))
    fake.add_jobs(3, queue="other")
    fake.add_job(queue="kubernetes", state="RUNNING")
    fake.add_job(queue="kubernetes", cluster_uuid=CLUSTER)  # clustered jobs are not ours here

    nodes = await client.scheduled_jobs("test-org", "kubernetes")

    uuids = [node["uuid"] for node in nodes]
    assert len(uuids) == len(set(uuids)) == 250
    assert set(uuids) == wanted
    pages = fake.graphql_requests("GetScheduledJobs")
    assert len(pages) == 3
    assert pages[0].variables is not None
    assert "after" not in pages[0].variables
    for previous, page in itertools.pairwise(pages):
        end_cursor = previous.response["data"]["organization"]["jobs"]["pageInfo"]["endCursor"]
        assert page.variables is not None
        assert page.variables["after"] == end_cursor
    assert [len(p.response["data"]["organization"]["jobs"]["edges"]) for p in pages] == [100, 100, 50]
    assert all(p.variables and p.variables["agentQueryRules"] == ["queue=kubernetes"] for p in pages)


async def test_pages_arrive_one_at_a_time_and_a_walk_resumes_at_a_cursor(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    wanted = fake.add_jobs(250)

    first: list[JobPage] = []
    async with contextlib.aclosing(
        client.scheduled_job_pages("test-org", "kubernetes", max_pages=2)
    ) as pages:
        async for page in pages:
            first.append(page)
            # the page is in the caller's hands before the next one is even asked for
            assert len(fake.graphql_requests("GetScheduledJobs")) == len(first)
    assert [len(page.nodes) for page in first] == [100, 100]
    assert first[1].end_cursor is not None

    rest = [
        page async for page in client.scheduled_job_pages("test-org", "kubernetes", after=first[1].end_cursor)
    ]
    assert [len(page.nodes) for page in rest] == [50]
    assert rest[0].end_cursor is None
    uuids = [node["uuid"] for page in first + rest for node in page.nodes]
    assert sorted(uuids) == sorted(wanted)
    assert fake.graphql_requests("GetScheduledJobs")[-1].variables == {
        "slug": "test-org",
        "agentQueryRules": ["queue=kubernetes"],
        "after": first[1].end_cursor,
    }


async def test_scheduled_jobs_returns_wire_shape_nodes(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    uuid = fake.add_job(
        queue="kubernetes",
        command="make test",
        priority=3,
        plugins=[{"docker#v5": {}}],
        pipeline="payments-api",
        branch="main",
        source="webhook",
        step_key="deploy",
    )

    (node,) = await client.scheduled_jobs("test-org", "kubernetes")

    assert node == fake.job(uuid).node
    assert set(node) == {
        "uuid", "env", "scheduledAt", "agentQueryRules", "command", "priority", "pipeline", "build", "step"
    }  # fmt: skip
    assert node["priority"] == {"number": 3}
    assert node["pipeline"] == {
        "slug": "payments-api",
        "name": "payments-api",
        "repository": {"url": "https://github.com/example/payments-api.git"},
    }
    assert node["build"] == {
        "number": 1,
        "branch": "main",
        "commit": "HEAD",
        "source": {"name": "webhook"},
        "message": "Test build",
    }
    assert node["step"] == {"key": "deploy"}
    assert 'BUILDKITE_PLUGINS=[{"docker#v5":{}}]' in node["env"]
    assert ScheduledJob.from_node(node).uuid == uuid


async def test_unclustered_query_sends_the_queue_rule_and_excludes_clustered_jobs(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    plain = fake.add_job(queue="kubernetes")
    fake.add_job(queue="kubernetes", cluster_uuid=CLUSTER)

    nodes = await client.scheduled_jobs("test-org", "kubernetes")

    assert [n["uuid"] for n in nodes] == [plain]
    (request,) = fake.graphql_requests("GetScheduledJobs")
    assert "clustered: false" in request.body["query"]


async def test_clustered_query_filters_by_the_cluster_graphql_id(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    inside = fake.add_job(queue="kubernetes", cluster_uuid=CLUSTER)
    fake.add_job(queue="kubernetes")
    fake.add_job(queue="kubernetes", cluster_uuid="00000000-0000-0000-0000-000000000001")

    nodes = await client.scheduled_jobs("test-org", "kubernetes", cluster_uuid=CLUSTER)

    assert [n["uuid"] for n in nodes] == [inside]
    (request,) = fake.graphql_requests("GetScheduledJobsClustered")
    assert request.variables is not None
    assert base64.b64decode(request.variables["cluster"]).decode() == f"Cluster---{CLUSTER}"
    assert request.variables["agentQueryRules"] == ["queue=kubernetes"]


async def test_clustered_query_without_a_queue_sends_no_rules(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    uuids = {fake.add_job(queue=q, cluster_uuid=CLUSTER) for q in ("a", "b")}

    nodes = await client.scheduled_jobs("test-org", "", cluster_uuid=CLUSTER)

    assert {n["uuid"] for n in nodes} == uuids
    (request,) = fake.graphql_requests("GetScheduledJobsClustered")
    assert request.variables is not None
    assert request.variables["agentQueryRules"] is None


async def test_unknown_organization_is_reported(client: BuildkiteGraphQL) -> None:
    with pytest.raises(InvalidOrganizationError, match=r'^invalid organization: "no-such-org"$'):
        await client.scheduled_jobs("no-such-org", "kubernetes")


@pytest.mark.parametrize(("retry_after", "expected"), [(7, 7.0), (None, 5.0)])
async def test_rate_limit_surfaces_the_wait(
    fake: FakeBuildkite, client: BuildkiteGraphQL, retry_after: int | None, expected: float
) -> None:
    fake.add_job()
    fake.inject_rate_limit(1, retry_after=retry_after)

    with pytest.raises(RateLimitedError) as raised:
        await client.scheduled_jobs("test-org", "kubernetes")

    assert raised.value.retry_after == expected
    assert len(await client.scheduled_jobs("test-org", "kubernetes")) == 1  # only one request was limited


async def test_rate_limit_wait_given_as_an_http_date(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    fake.inject_rate_limit(1, retry_after=email.utils.format_datetime(later, usegmt=True))

    with pytest.raises(RateLimitedError) as raised:
        await client.job_state("00000000-0000-0000-0000-000000000000")

    assert 100 < raised.value.retry_after <= 120


async def test_wrong_token_fails_without_revealing_it(fake: FakeBuildkite) -> None:
    secret = "bkua_this_is_not_the_right_token"
    async with BuildkiteGraphQL(fake.graphql_url, secret) as client:
        with pytest.raises(BuildkiteAPIError) as raised:
            await client.scheduled_jobs("test-org", "kubernetes")
    assert "HTTP 401" in str(raised.value)
    assert secret not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


async def test_requests_carry_bearer_token_and_user_agent(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    await client.job_state("00000000-0000-0000-0000-000000000000")

    (request,) = fake.graphql_requests("GetCommandJob")
    assert request.headers["Authorization"] == f"Bearer {fake.graphql_token}"
    assert request.headers["User-Agent"] == f"agent-stack-policy/{engine.__version__}"


async def test_job_state_reads_the_current_state(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    uuid = fake.add_job()
    assert await client.job_state(uuid) == "SCHEDULED"

    fake.set_job_state(uuid, "RUNNING")

    assert await client.job_state(uuid) == "RUNNING"
    assert await client.job_state("00000000-0000-0000-0000-000000000000") is None


async def test_cancel_by_uuid_looks_up_the_node_id(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    uuid = fake.add_job()
    other = fake.add_job()

    await client.cancel_job(uuid, "pod-abc")

    assert fake.job(uuid).state == "CANCELED"
    assert fake.job(other).state == "SCHEDULED"
    (request,) = fake.graphql_requests("CancelCommandJob")
    assert request.variables == {"input": {"clientMutationId": "pod-abc", "id": fake.job(uuid).id}}


async def test_cancel_by_node_id(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    uuid = fake.add_job(state="RUNNING")

    await client.cancel_job(fake.job(uuid).id, "pod-xyz")

    assert fake.job(uuid).state == "CANCELED"
    assert fake.graphql_requests("GetCommandJob") == []


async def test_cancel_errors_are_reported(fake: FakeBuildkite, client: BuildkiteGraphQL) -> None:
    finished = fake.add_job(state="FINISHED")

    with pytest.raises(BuildkiteAPIError, match="finished"):
        await client.cancel_job(finished, "pod")
    with pytest.raises(BuildkiteAPIError, match="no command job"):
        await client.cancel_job("00000000-0000-0000-0000-000000000000", "pod")


async def test_a_cursor_that_does_not_advance_ends_the_walk() -> None:
    """A misbehaving server that always claims another page must not make the client loop forever."""
    calls = 0

    async def always_more(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        node: dict[str, object] = {"uuid": "11111111-1111-1111-1111-111111111111", "env": []}
        page = {"hasNextPage": True, "endCursor": "stuck"}
        jobs = {"count": 1, "edges": [{"node": node}], "pageInfo": page}
        return web.json_response({"data": {"organization": {"id": "org", "jobs": jobs}}})

    async with _serve(always_more) as url, BuildkiteGraphQL(url, "token") as client:
        nodes = await client.scheduled_jobs("org", "kubernetes")

    assert calls == 2
    assert [n["uuid"] for n in nodes] == ["11111111-1111-1111-1111-111111111111"]


async def test_a_slow_server_times_out() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({"data": {}})

    timed_out: list[str] = []
    async with (
        _serve(slow) as url,
        BuildkiteGraphQL(url, "token", timeout=0.2, on_timeout=timed_out.append) as client,
    ):
        with pytest.raises(BuildkiteAPIError, match=r"no response within 0\.2s"):
            await client.job_state("11111111-1111-1111-1111-111111111111")
    assert timed_out == ["GetCommandJob"]


async def test_an_unreachable_endpoint_is_an_api_error() -> None:
    async with _serve(None) as url:
        pass  # the port is free again once the server stops
    async with BuildkiteGraphQL(url, "token") as client:
        with pytest.raises(BuildkiteAPIError, match=r"^GetCommandJob: "):
            await client.job_state("11111111-1111-1111-1111-111111111111")


def test_the_fake_also_serves_synchronous_callers() -> None:
    with FakeBuildkite() as fake:
        uuid = fake.add_job()

        async def state() -> str | None:
            async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token) as client:
                return await client.job_state(uuid)

        assert asyncio.run(state()) == "SCHEDULED"


class _serve:  # noqa: N801 - reads as a function: ``async with _serve(handler) as url``
    """Serve one handler at ``/v1`` on a free port, for server misbehaviour the fake does not model."""

    def __init__(self, handler: Handler | None) -> None:
        self._handler = handler
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        app = web.Application()
        if self._handler is not None:
            app.router.add_post("/v1", self._handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_a_document_that_does_not_match_the_schema_is_refused_before_any_request(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    before = len(fake.requests)
    bad = "query GetCommandJob($uuid: ID!) { job(uuid: $uuid) { ... on JobTypeCommand { nosuchfield } } }"
    with pytest.raises(BuildkiteAPIError, match="nosuchfield"):
        await client._execute("GetCommandJob", bad, {"uuid": "x"})
    assert len(fake.requests) == before


def test_each_document_is_parsed_and_validated_once() -> None:
    document = ALL_DOCUMENTS["GetCommandJob"]
    assert checked_document(document) is checked_document(document)


async def test_job_states_asks_about_many_jobs_in_few_requests(
    fake: FakeBuildkite, client: BuildkiteGraphQL
) -> None:
    scheduled = fake.add_jobs(60)
    running = fake.add_job(state="RUNNING")
    missing = "00000000-0000-4000-8000-000000000000"
    before = len(fake.graphql_requests("GetCommandJobStates"))
    states = await client.job_states([*scheduled, running, missing, running])
    assert states == {**dict.fromkeys(scheduled, "SCHEDULED"), running: "RUNNING", missing: None}
    assert len(fake.graphql_requests("GetCommandJobStates")) - before == 2  # 62 jobs, 50 per request
