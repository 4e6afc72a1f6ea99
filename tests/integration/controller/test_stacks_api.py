"""End to end in the Stacks API mode: the agent token alone, jobs reserved before their Kubernetes Jobs
are created, bad jobs finished with a detail, cancellation cleaned up, notifications sent.

The controller runs on the real control plane against the fake Buildkite's Stacks API
(``tests/fakes/stacks.py``), configured as an upstream v0.28+ user would: a ``queue`` and the agent
token's Secret, no GraphQL token and no organization.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from typing import Any

import aiohttp
from kubernetes import client as k8s_client

from engine.buildkite.stacks import StacksAPI
from engine.controller.scheduler import CREATED_NOTIFICATION, PARSE_FAILURE_PREFIX
from engine.core.evaluate import evaluate
from engine.model.acquisition_token import acquisition_token_secret_name
from engine.model.config import DEFAULT_STACK_KEY
from engine.model.job import parse_job
from engine.policy.loader import load_policies
from tests.fakes.buildkite import FakeBuildkite
from tests.harness import kubelet
from tests.integration.controller.conftest import QUEUE, Controllers, wait_for


def reserve_elsewhere(
    buildkite: FakeBuildkite, uuids: Sequence[str], stack_key: str = "another-stack"
) -> list[str]:
    """Another stack registers on the queue and reserves ``uuids`` (through the wire, as it would)."""

    async def reserve() -> list[str]:
        async with StacksAPI(buildkite.agent_url, buildkite.agent_token, stack_key) as other:
            await other.register(QUEUE)
            return (await other.reserve(uuids, 600)).reserved

    return asyncio.run(reserve())


def env_of(container: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """A container's env as the API server stores it (an empty value is left out there)."""
    return [(e["name"], e.get("value", ""), e.get("valueFrom")) for e in container.get("env", [])]


def test_a_queue_and_the_agent_token_alone_schedule_jobs_reserved_first(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuids = buildkite.add_jobs(3, command="make test", step_key="test", branch="release", priority=4)
    controller = controllers.start(mode="stacks")

    wait_for("three Kubernetes Jobs", lambda: len(controllers.jobs_by_uuid()) == 3)
    by_uuid = controllers.jobs_by_uuid()
    assert set(by_uuid) == set(uuids)
    assert controller.runtime.mode == "stacks"
    stack = buildkite.stacks.stacks[DEFAULT_STACK_KEY]
    assert (stack.queue_key, stack.type, stack.state) == (QUEUE, "custom", "connected")
    assert buildkite.graphql_requests() == []  # no GraphQL token, no GraphQL
    reserved_at = min(r.received_at for r in buildkite.stacks_requests("batch-reserve"))
    for uuid in uuids:
        assert buildkite.job(uuid).reserved_by == DEFAULT_STACK_KEY  # held until an agent acquires it
        assert buildkite.stacks.times_reserved(uuid) == 1
        [described] = [r for r in buildkite.stacks_requests("get-job") if r.path.endswith(uuid)]
        assert described.received_at >= reserved_at  # reserved, then described, then created

    # The Job is the one the engine builds from the listing's trusted facts and the job's details.
    job = buildkite.job(uuids[0])
    document = {
        "uuid": uuids[0],
        "agentQueryRules": [f"queue={QUEUE}"],
        "priority": {"number": 4},
        "pipeline": {"slug": "test-pipeline"},
        "build": {"number": job.node["build"]["number"], "branch": "release"},
        "step": {"key": "test"},
        "env": list(job.env),
        "command": "make test",
    }
    config = controllers.config(mode="stacks")
    expected = evaluate(load_policies([]), parse_job(document), config.expression_view()).manifest
    [created] = by_uuid[uuids[0]]
    assert created["metadata"]["labels"] == expected["metadata"]["labels"]
    template, wanted = created["spec"]["template"]["spec"], expected["spec"]["template"]["spec"]
    assert [c["name"] for c in template["containers"]] == [c["name"] for c in wanted["containers"]]
    assert env_of(template["containers"][0]) == env_of(wanted["containers"][0])  # the step's container
    wait_for("the created notifications", lambda: len(buildkite.stacks.notifications()) == 3)
    assert {n.detail for n in buildkite.stacks.notifications()} == {CREATED_NOTIFICATION}
    assert {n.job_uuid for n in buildkite.stacks.notifications()} == set(uuids)
    assert controller.metric("buildkite_stacks_reservations_total", result="reserved") == 3
    assert controller.metric("buildkite_stacks_notifications_total", result="sent") == 3

    controller.stop()
    assert buildkite.stacks.stacks[DEFAULT_STACK_KEY].state == "disconnected"  # deregistered


def test_a_job_another_stack_holds_is_left_alone(controllers: Controllers, buildkite: FakeBuildkite) -> None:
    held, free = buildkite.add_job(), buildkite.add_job()
    assert reserve_elsewhere(buildkite, [held]) == [held]
    controller = controllers.start(mode="stacks")
    wait_for("the free job's Kubernetes Job", lambda: free in controllers.jobs_by_uuid())
    wait_for("a few more polls", lambda: controller.metric("buildkite_monitor_job_queries_total") >= 3)
    assert held not in controllers.jobs_by_uuid()
    assert buildkite.job(held).reserved_by == "another-stack"
    assert buildkite.stacks.finishes(held) == []

    # Once that reservation runs out, the job is offered again, and taken.
    buildkite.stacks.expire_reservations()
    wait_for("the released job's Kubernetes Job", lambda: held in controllers.jobs_by_uuid())
    assert len(controllers.jobs()) == 2


def test_an_unparseable_job_is_finished_with_the_reason_as_its_detail(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    bad = buildkite.add_job(plugins='[{"docker#v5.0.0": {"image": ')
    good = buildkite.add_job()
    controller = controllers.start(mode="stacks")
    wait_for("the bad job to be finished", lambda: buildkite.job(bad).state == "FINISHED")
    [finish] = buildkite.stacks.finishes(bad)
    assert finish.detail.startswith(PARSE_FAILURE_PREFIX + "failed parsing plugins: ")
    assert finish.exit_status == -1
    assert buildkite.job(bad).reserved_by is None  # finishing released the reservation
    wait_for("the good job's Kubernetes Job", lambda: good in controllers.jobs_by_uuid())
    assert bad not in controllers.jobs_by_uuid()
    wait_for(
        "the failure among the job's messages",
        lambda: any(
            n.detail.startswith("agent-stack-policy failed this job:")
            for n in buildkite.stacks.notifications(bad)
        ),
    )
    assert controller.metric("buildkite_scheduler_jobs_failed_on_buildkite_total") == 1
    assert buildkite.agent_requests() == []  # no throw-away agent: the stack finishes its own jobs


def test_a_cancelled_job_with_a_pending_pod_loses_its_job_and_pod(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    cancelled, kept = buildkite.add_job(), buildkite.add_job()
    controller = controllers.start(mode="stacks", job_cancel_checker_poll_interval="1s")
    controllers.pod_of(cancelled)
    controllers.pod_of(kept)
    wait_for("a states check of both", lambda: _asked_together(buildkite, {cancelled, kept}))
    buildkite.cancel_job(cancelled)

    wait_for("the cancelled job's Kubernetes Job to go", lambda: cancelled not in controllers.jobs_by_uuid())
    wait_for("its pod to go", lambda: not controllers.pods(f"buildkite.com/job-uuid={cancelled}"))
    assert kept in controllers.jobs_by_uuid()
    assert controllers.pods(f"buildkite.com/job-uuid={kept}")
    deleted = {"delete_reason": "bk_job_cancelled"}
    assert controller.metric("buildkite_pod_watcher_jobs_deleted_total", **deleted) == 1


def _asked_together(buildkite: FakeBuildkite, uuids: set[str]) -> bool:
    """Whether one get-states request asked about all of ``uuids`` (the pending pods' jobs)."""
    return any(uuids <= set(r.body["job_uuids"]) for r in buildkite.stacks_requests("get-states") if r.body)


def agent_acquires(buildkite: FakeBuildkite, token: str, job_uuid: str) -> int:
    """An agent registers with ``token`` and tries to acquire the job: the HTTP status of the acquire."""

    async def run() -> int:
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Token {token}"}
            body = {"name": "agent-in-the-pod", "meta_data": [f"queue={QUEUE}"]}
            async with http.post(f"{buildkite.agent_url}/register", json=body, headers=auth) as response:
                if response.status != 200:
                    return response.status
                access = {"Authorization": f"Token {(await response.json())['access_token']}"}
            async with http.post(f"{buildkite.agent_url}/connect", headers=access) as response:
                assert response.status == 200
            async with http.put(f"{buildkite.agent_url}/jobs/{job_uuid}/acquire", headers=access) as response:
                return response.status

    return asyncio.run(run())


def test_with_job_acquisition_tokens_the_agent_gets_a_token_for_its_one_job(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuid, other = buildkite.add_job(), buildkite.add_job()
    controller = controllers.start(
        mode="stacks", job_acquisition_tokens=True, job_acquisition_token_lifetime_seconds=600
    )
    wait_for("both Kubernetes Jobs", lambda: len(controllers.jobs_by_uuid()) == 2)
    [job] = controllers.jobs_by_uuid()[uuid]
    name = acquisition_token_secret_name(uuid)
    secret = wait_for("the token Secret", lambda: _secret(controllers, name))
    [issued] = buildkite.stacks.issued_tokens(uuid)
    assert issued.token.startswith("bkjat_")
    assert base64.b64decode(secret["data"]["BUILDKITE_AGENT_TOKEN"]).decode() == issued.token
    assert secret["immutable"] is True
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Job",
        job["metadata"]["name"],
        job["metadata"]["uid"],
    )
    [request] = [
        r for r in buildkite.stacks_requests("job-acquisition-tokens") if uuid in r.body["job_uuids"]
    ]
    assert request.body == {"job_uuids": [uuid], "token_lifetime_seconds": 600}

    # Only the agent container has a credential, and it is this job's token, never the cluster token.
    pod_spec = job["spec"]["template"]["spec"]
    references = [
        (container["name"], entry["valueFrom"]["secretKeyRef"]["name"])
        for container in pod_spec.get("initContainers", []) + pod_spec["containers"]
        for entry in container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    ]
    assert references == [("agent", name)]
    assert issued.token not in json.dumps(job)

    # The token registers an agent that may acquire its own job, and no other.
    assert agent_acquires(buildkite, issued.token, other) == 422
    assert agent_acquires(buildkite, issued.token, uuid) == 200
    assert buildkite.job(uuid).reserved_by is None  # the acquisition used the reservation up

    # Once the Job has finished, the token's Secret is gone.
    kubelet.set_pod_succeeded(
        controllers.core, controllers.namespace, controllers.pod_of(uuid)["metadata"]["name"]
    )
    wait_for("the token Secret to go", lambda: _secret(controllers, name) is None)
    assert controller.metric("buildkite_stacks_acquisition_tokens_total", result="issued") == 2
    assert controller.metric("buildkite_stacks_acquisition_token_secrets_total", result="deleted") >= 1


def _secret(controllers: Controllers, name: str) -> dict[str, Any] | None:
    try:
        response: Any = controllers.core.read_namespaced_secret(
            name, controllers.namespace, _preload_content=False
        )
    except k8s_client.ApiException as error:
        if error.status == 404:
            return None
        raise
    secret: dict[str, Any] = json.loads(response.data)
    return secret


def test_only_jobs_there_is_room_for_are_reserved(controllers: Controllers, buildkite: FakeBuildkite) -> None:
    """With max-in-flight 2, two jobs are reserved and created; the others stay free for another
    controller until a Job finishes."""
    uuids = buildkite.add_jobs(5)
    controller = controllers.start(mode="stacks", max_in_flight=2)
    wait_for("two Kubernetes Jobs", lambda: len(controllers.jobs_by_uuid()) == 2)
    wait_for("a few more polls", lambda: controller.metric("buildkite_monitor_job_queries_total") >= 4)
    created = set(controllers.jobs_by_uuid())
    assert {uuid for uuid in uuids if buildkite.job(uuid).reserved_by} == created
    first = next(iter(created))
    kubelet.set_pod_succeeded(
        controllers.core, controllers.namespace, controllers.pod_of(first)["metadata"]["name"]
    )
    wait_for("a third Kubernetes Job", lambda: len(controllers.jobs_by_uuid()) == 3)
    assert (
        len({uuid for uuid in uuids if buildkite.job(uuid).reserved_by} - set(controllers.jobs_by_uuid()))
        == 0
    )
