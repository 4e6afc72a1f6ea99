"""The fake Buildkite behaves like the real APIs where tests depend on it."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.fakes.buildkite import FakeBuildkite

JOBS_QUERY = """
query Jobs($slug: ID!, $rules: [String!], $first: Int, $after: String, $states: [JobStates!]) {
  organization(slug: $slug) {
    jobs(first: $first, after: $after, agentQueryRules: $rules, state: $states, order: RECENTLY_ASSIGNED) {
      count
      edges { cursor node { ... on JobTypeCommand { uuid scheduledAt } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


async def _post_graphql(
    fake: FakeBuildkite, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token or fake.graphql_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            fake.graphql_url, json={"query": query, "variables": variables}, headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def _jobs(fake: FakeBuildkite, **variables: Any) -> Any:
    status, body = await _post_graphql(fake, JOBS_QUERY, {"slug": "test-org", "first": 100, **variables})
    assert status == 200
    return body


async def test_an_invalid_document_gets_graphql_errors(fake: FakeBuildkite) -> None:
    status, body = await _post_graphql(fake, '{ organization(slug: "test-org") { nonsense } }')

    assert status == 200
    assert "data" not in body
    assert "nonsense" in body["errors"][0]["message"]


async def test_the_bearer_token_is_checked(fake: FakeBuildkite) -> None:
    status, body = await _post_graphql(fake, '{ organization(slug: "test-org") { id } }', token="wrong")

    assert status == 401
    assert body["errors"]


async def test_rules_match_when_the_job_has_every_queried_rule(fake: FakeBuildkite) -> None:
    both = fake.add_job(agent_query_rules=["queue=k", "os=linux"])
    queue_only = fake.add_job(agent_query_rules=["queue=k"])

    body = await _jobs(fake, rules=["queue=k"])
    assert {e["node"]["uuid"] for e in body["data"]["organization"]["jobs"]["edges"]} == {both, queue_only}

    body = await _jobs(fake, rules=["queue=k", "os=linux"])
    assert [e["node"]["uuid"] for e in body["data"]["organization"]["jobs"]["edges"]] == [both]


async def test_jobs_are_newest_scheduled_first_and_filtered_by_state(fake: FakeBuildkite) -> None:
    old = fake.add_job(scheduled_at=datetime(2024, 1, 1, tzinfo=UTC))
    new = fake.add_job(scheduled_at=datetime(2024, 6, 1, tzinfo=UTC))
    fake.add_job(state="RUNNING")

    body = await _jobs(fake, states=["SCHEDULED"])

    jobs = body["data"]["organization"]["jobs"]
    assert [e["node"]["uuid"] for e in jobs["edges"]] == [new, old]
    assert jobs["edges"][0]["node"]["scheduledAt"] == "2024-06-01T00:00:00.000Z"
    assert jobs["count"] == 2


async def test_pagination_is_stable_when_jobs_leave_the_list(fake: FakeBuildkite) -> None:
    uuids = fake.add_jobs(5)
    first_page = (await _jobs(fake, first=2, states=["SCHEDULED"]))["data"]["organization"]["jobs"]
    assert first_page["pageInfo"]["hasNextPage"] is True
    for edge in first_page["edges"]:
        fake.set_job_state(edge["node"]["uuid"], "ACCEPTED")  # taken by agents meanwhile

    rest = await _jobs(fake, first=10, after=first_page["pageInfo"]["endCursor"], states=["SCHEDULED"])
    rest_jobs = rest["data"]["organization"]["jobs"]

    seen = [e["node"]["uuid"] for e in first_page["edges"] + rest_jobs["edges"]]
    assert sorted(seen) == sorted(uuids)
    assert rest_jobs["pageInfo"] == {"hasNextPage": False, "endCursor": rest_jobs["edges"][-1]["cursor"]}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": None}, "must provide a `first`"),
        ({"first": 501}, "between 0 and 500"),
        ({"after": "xyz"}, "Invalid cursor"),
    ],
)
async def test_bad_pagination_arguments_are_errors(
    fake: FakeBuildkite, variables: dict[str, Any], message: str
) -> None:
    status, body = await _post_graphql(fake, JOBS_QUERY, {"slug": "test-org", "first": 10, **variables})

    assert status == 200
    assert message in body["errors"][0]["message"]


async def test_job_env_is_realistic(fake: FakeBuildkite) -> None:
    uuid = fake.add_job(
        pipeline="web",
        branch="feature/x",
        step_key="build",
        label=":docker: Build",
        plugins=[{"kubernetes": {"podSpec": {}}}],
        env={"EXTRA": "1", "BUILDKITE_BRANCH": "override"},
    )

    env = dict(entry.split("=", 1) for entry in fake.job(uuid).env)

    assert env["BUILDKITE_JOB_ID"] == uuid
    assert env["BUILDKITE_BUILD_URL"] == "https://buildkite.com/test-org/web/builds/1"
    assert env["BUILDKITE_BUILD_URL"] == fake.job(uuid).build_url
    assert env["BUILDKITE_BUILD_NUMBER"] == "1"
    assert env["BUILDKITE_PIPELINE_SLUG"] == "web"
    assert env["BUILDKITE_STEP_KEY"] == "build"
    assert env["BUILDKITE_LABEL"] == ":docker: Build"
    assert env["BUILDKITE_SOURCE"] == "api"
    assert json.loads(env["BUILDKITE_PLUGINS"]) == [{"kubernetes": {"podSpec": {}}}]
    assert env["EXTRA"] == "1"
    assert env["BUILDKITE_BRANCH"] == "override"


async def test_cancel_build_cancels_only_that_builds_open_jobs(fake: FakeBuildkite) -> None:
    first = fake.add_job()
    build = fake.job(first).build_uuid
    running = fake.add_job(build_uuid=build, state="RUNNING")
    done = fake.add_job(build_uuid=build, state="FINISHED")
    elsewhere = fake.add_job()

    assert sorted(fake.cancel_build(build)) == sorted([first, running])

    assert [fake.job(u).state for u in (first, running, done, elsewhere)] == [
        "CANCELED",
        "CANCELED",
        "FINISHED",
        "SCHEDULED",
    ]
    with pytest.raises(ValueError, match="finished"):
        fake.cancel_job(done)


async def _acquired(fake: FakeBuildkite, http: aiohttp.ClientSession) -> tuple[str, dict[str, str]]:
    """Register, connect, acquire and start a job by hand; returns the job UUID and auth headers."""
    uuid = fake.add_job()
    register = {"name": "hand", "meta_data": ["queue=kubernetes"]}
    auth = {"Authorization": f"Token {fake.agent_token}"}
    async with http.post(f"{fake.agent_url}/register", json=register, headers=auth) as response:
        headers = {"Authorization": f"Token {(await response.json())['access_token']}"}
    for method, path in (("POST", "connect"), ("PUT", f"jobs/{uuid}/acquire"), ("PUT", f"jobs/{uuid}/start")):
        async with http.request(method, f"{fake.agent_url}/{path}", json={}, headers=headers) as response:
            assert response.status == 200, path
    return uuid, headers


async def test_agent_api_checks_log_chunks(fake: FakeBuildkite) -> None:
    async with aiohttp.ClientSession() as http:
        uuid, headers = await _acquired(fake, http)
        url = f"{fake.agent_url}/jobs/{uuid}/chunks"
        gzip_headers = {**headers, "Content-Encoding": "gzip"}

        async with http.post(
            f"{url}?sequence=0&offset=0&size=99", data=gzip.compress(b"hi"), headers=gzip_headers
        ) as r:
            assert r.status == 422  # size is of the uncompressed bytes
        async with http.post(
            f"{url}?sequence=0&offset=0&size=2", data=b"not gzip", headers=gzip_headers
        ) as r:
            assert r.status == 400
        async with http.post(
            f"{url}?sequence=0&offset=0&size=2", data=gzip.compress(b"hi"), headers=gzip_headers
        ) as r:
            assert r.status == 201

    assert fake.job(uuid).log == "hi"
    assert fake.job(uuid).state == "RUNNING"


async def test_agent_api_requires_a_known_access_token(fake: FakeBuildkite) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.agent_url}/connect", headers={"Authorization": "Token made-up"}) as response,
    ):
        assert response.status == 401


def test_synchronous_use_from_another_thread() -> None:
    fake = FakeBuildkite().start()
    try:
        uuid = fake.add_job()
        fake.cancel_job(uuid)
        assert fake.job(uuid).state == "CANCELED"
        assert fake.graphql_url.startswith("http://127.0.0.1:")
    finally:
        fake.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.graphql_url
