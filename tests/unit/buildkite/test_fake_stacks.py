"""The fake Stacks API refuses what the reference says Buildkite refuses (so a client bug shows up in
the tests, not in production), and keeps the state the controller's tests rely on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.fakes.buildkite import FakeBuildkite

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


async def call(
    fake: FakeBuildkite,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> tuple[int, Any]:
    sent = {**HEADERS, "Authorization": f"Token {token or fake.agent_token}", **(headers or {})}
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            URL(f"{fake.base_url}/v3/{path}", encoded=True),
            data=json.dumps(body).encode() if body is not None else b"",
            headers=sent,
        ) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def register(fake: FakeBuildkite, key: str = "stack") -> None:
    status, _ = await call(
        fake,
        "POST",
        "stacks/register",
        {"key": key, "type": "custom", "queue_key": "kubernetes", "metadata": {}},
    )
    assert status == 200


async def test_only_a_cluster_agent_token_is_accepted(fake: FakeBuildkite) -> None:
    assert (await call(fake, "GET", "token", token="bkua_graphql"))[0] == 401
    status, _ = await call(fake, "GET", "token", headers={"Authorization": f"Bearer {fake.agent_token}"})
    assert status == 401
    assert (await call(fake, "GET", "token"))[0] == 200


async def test_json_headers_are_required(fake: FakeBuildkite) -> None:
    assert (await call(fake, "GET", "token", headers={"Content-Type": "text/plain"}))[0] == 415
    assert (await call(fake, "GET", "token", headers={"Accept": "*/*"}))[0] == 406


async def test_a_dot_in_a_path_parameter_must_be_escaped(fake: FakeBuildkite) -> None:
    await register(fake, "bk.kube")
    status, body = await call(fake, "GET", "stacks/bk.kube/scheduled-jobs?queue_key=kubernetes")
    assert status == 404
    assert "%2E" in body["message"]
    assert (await call(fake, "GET", "stacks/bk%2Ekube/scheduled-jobs?queue_key=kubernetes"))[0] == 200


async def test_register_checks_every_field(fake: FakeBuildkite) -> None:
    status, body = await call(fake, "POST", "stacks/register", {"key": "s", "type": "custom"})
    assert status == 422
    assert body["message"] == "queue_key is required; metadata is required"
    status, body = await call(
        fake, "POST", "stacks/register", {"key": "s", "type": "serverless", "queue_key": "q", "metadata": {}}
    )
    assert (status, body["message"]) == (422, "type 'serverless' is not a stack type")


async def test_listing_and_reserving_check_their_arguments(fake: FakeBuildkite) -> None:
    await register(fake)
    assert (await call(fake, "GET", "stacks/stack/scheduled-jobs"))[0] == 400  # queue_key
    assert (await call(fake, "GET", "stacks/stack/scheduled-jobs?queue_key=kubernetes&limit=1001"))[0] == 422
    assert (await call(fake, "GET", "stacks/stack/scheduled-jobs?queue_key=kubernetes&after=nonsense"))[
        0
    ] == 422
    assert (await call(fake, "PUT", "stacks/stack/scheduled-jobs/batch-reserve", {"job_uuids": []}))[0] == 422
    status, _ = await call(
        fake,
        "PUT",
        "stacks/stack/scheduled-jobs/batch-reserve",
        {"job_uuids": ["a"], "reservation_expiry_seconds": 0},
    )
    assert status == 422
    status, _ = await call(
        fake, "PUT", "stacks/stack/scheduled-jobs/batch-reserve", {"job_uuids": ["a"] * 1001}
    )
    assert status == 422


async def test_the_default_queue_holds_jobs_without_a_queue_rule(fake: FakeBuildkite) -> None:
    await register(fake)
    default, named = fake.add_job(queue=None), fake.add_job(queue="gpu")
    _, listing = await call(fake, "GET", "stacks/stack/scheduled-jobs?queue_key=_default")
    assert [job["id"] for job in listing["jobs"]] == [default]
    _, listing = await call(fake, "GET", "stacks/stack/scheduled-jobs?queue_key=gpu")
    assert [job["id"] for job in listing["jobs"]] == [named]


async def test_a_job_acquisition_token_registers_an_agent_for_its_job_only(fake: FakeBuildkite) -> None:
    await register(fake)
    mine, other = fake.add_job(), fake.add_job()
    await call(fake, "PUT", "stacks/stack/scheduled-jobs/batch-reserve", {"job_uuids": [mine, other]})
    status, issued = await call(fake, "POST", "stacks/stack/job-acquisition-tokens", {"job_uuids": [mine]})
    assert status == 201
    token = issued["job_acquisition_tokens"][0]["job_acquisition_token"]
    agent_body = {"name": "a", "meta_data": ["queue=kubernetes"]}
    status, agent = await call(fake, "POST", "register", agent_body, token=token)
    assert status == 200
    access = agent["access_token"]
    assert (await call(fake, "POST", "connect", token=access))[0] == 200
    assert (await call(fake, "PUT", f"jobs/{other}/acquire", token=access))[0] == 422
    assert (await call(fake, "PUT", f"jobs/{mine}/acquire", token=access))[0] == 200
    assert fake.job(mine).reserved_by is None  # used up by the acquisition


async def test_a_token_expires_with_its_reservation(fake: FakeBuildkite) -> None:
    await register(fake)
    uuid = fake.add_job()
    await call(fake, "PUT", "stacks/stack/scheduled-jobs/batch-reserve", {"job_uuids": [uuid]})
    _, issued = await call(fake, "POST", "stacks/stack/job-acquisition-tokens", {"job_uuids": [uuid]})
    token = issued["job_acquisition_tokens"][0]["job_acquisition_token"]
    fake.stacks.expire_reservations()
    agent_body = {"name": "a", "meta_data": ["queue=kubernetes"]}
    assert (await call(fake, "POST", "register", agent_body, token=token))[0] == 401


async def test_notification_items_are_validated_one_by_one(fake: FakeBuildkite) -> None:
    await register(fake)
    uuid = fake.add_job()
    items = [{"job_uuid": uuid, "detail": "ok"}, {"job_uuid": uuid}, {"job_uuid": uuid, "detail": "x" * 257}]
    status, body = await call(fake, "POST", "stacks/stack/notifications", {"notifications": items})
    assert status == 200
    assert body["errors"] == [
        {"error": "detail is required", "indexes": [1]},
        {"error": "detail is too long (maximum is 256 characters)", "indexes": [2]},
    ]
    assert [n.detail for n in fake.stacks.notifications()] == ["ok"]


async def test_a_held_request_is_served_once_released(fake: FakeBuildkite) -> None:
    held = fake.faults.hold("stacks", count=1, only="token")
    answer = asyncio.create_task(call(fake, "GET", "token"))
    await asyncio.sleep(0.2)
    assert not answer.done()
    held.release()
    assert (await answer)[0] == 200
