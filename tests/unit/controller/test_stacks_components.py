"""The smaller Stacks API mode components: the failer (``finish``), the batched job states, the
notifier and the acquisition token Secrets, each against the fake Stacks API (or, for the Secrets, a
recording Kubernetes double: the real apiserver path is in the integration tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from engine.buildkite.graphql import BuildkiteGraphQL
from engine.buildkite.stacks import StacksAPI
from engine.controller.job_states import IMAGE_PULL_NOTICE, GraphQLJobs, StacksJobs
from engine.controller.metrics import ControllerMetrics
from engine.controller.notifier import Notifier
from engine.controller.stacks_failer import StacksJobFailer
from engine.controller.token_secrets import AcquisitionTokenSecrets, TokenSecretCreationError
from engine.kube.errors import AlreadyExistsError, KubeAPIError
from engine.model.acquisition_token import acquisition_token_secret_name
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample

STACK = "components"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
async def stacks(fake: FakeBuildkite) -> AsyncIterator[StacksAPI]:
    async with StacksAPI(fake.agent_url, fake.agent_token, STACK, timeout=0.5) as client:
        await client.register("kubernetes")
        yield client


# ---- failing through finish ----------------------------------------------------------------------


async def test_the_failer_finishes_a_reserved_job_and_notifies(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    uuid, foreign = fake.add_job(), fake.add_job()
    await stacks.reserve([uuid], 60)
    told: list[tuple[str, str]] = []
    failer = StacksJobFailer(stacks, lambda job, text: told.append((job, text)))

    assert await failer.fail(uuid, ["queue=kubernetes"], "denied\nsecond line") == "failed"
    assert fake.job(uuid).state == "FINISHED"
    assert told == [(uuid, "agent-stack-policy failed this job: denied")]
    assert await failer.fail(foreign, [], "not ours") == "rejected"  # a 4xx: nothing to retry
    fake.faults.fail("stacks", 503, count=1, only="finish")
    await stacks.reserve([foreign], 60)
    assert await failer.fail(foreign, [], "later") == "error"  # worth another try
    assert await failer.fail(foreign, [], "later") == "failed"


# ---- job states ------------------------------------------------------------------------------------


async def test_states_are_asked_for_in_batches_of_1000_and_come_out_upper_case(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    uuids = fake.add_jobs(3)
    await stacks.reserve(uuids[:1], 60)
    fake.cancel_job(uuids[1])
    metrics = ControllerMetrics()
    jobs = StacksJobs(stacks, metrics.stacks, lambda _job, _text: None)
    unknown = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1500)]
    states = await jobs.job_states([*uuids, *unknown])
    assert states == {uuids[0]: "RESERVED", uuids[1]: "CANCELED", uuids[2]: "SCHEDULED"}
    sizes = sorted(len(r.body["job_uuids"]) for r in fake.stacks_requests("get-states"))
    assert sizes == [503, 1000]
    assert sample(metrics, "buildkite_stacks_job_state_requests_total") == 2


async def test_a_job_the_stacks_api_cannot_cancel_is_told_why_it_will_fail(stacks: StacksAPI) -> None:
    told: list[tuple[str, str]] = []
    jobs = StacksJobs(stacks, ControllerMetrics().stacks, lambda job, text: told.append((job, text)))
    assert await jobs.stop_job("u", "pod", 'agent: ImagePullBackOff ("x:1")') == "notified"
    assert told == [("u", IMAGE_PULL_NOTICE + 'agent: ImagePullBackOff ("x:1")')]


async def test_graphql_states_are_asked_for_fifty_jobs_a_request(fake: FakeBuildkite) -> None:
    """A thousand pending pods cost one request per 50 jobs per check, not one per pod."""
    scheduled = fake.add_jobs(120)
    cancelled = fake.add_job(state="CANCELED")
    async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token) as graphql:
        jobs = GraphQLJobs(graphql)
        states = await jobs.job_states([*scheduled, cancelled, "00000000-0000-4000-8000-000000000000"])
        assert states == {**dict.fromkeys(scheduled, "SCHEDULED"), cancelled: "CANCELED"}
        assert len(fake.graphql_requests("GetCommandJobStates")) == 3
        assert await jobs.stop_job(scheduled[0], "pod", "why") == "cancelled"
    assert fake.job(scheduled[0]).state == "CANCELED"


# ---- notifications ---------------------------------------------------------------------------------


async def test_notifications_are_sent_in_batches_and_counted(fake: FakeBuildkite, stacks: StacksAPI) -> None:
    uuid = fake.add_job()
    metrics = ControllerMetrics()
    notifier = Notifier(stacks, metrics.stacks, interval=0.01)
    for n in range(1001):
        notifier.notify(uuid, f"message {n}")
    notifier.notify("00000000-0000-4000-8000-000000000000", "for a job Buildkite does not know")
    notifier.notify(uuid, "   ")  # nothing to say: not queued
    assert sample(metrics, "buildkite_stacks_notification_queue_length") == 1002
    task = asyncio.create_task(notifier.run())
    try:
        while sample(metrics, "buildkite_stacks_notifications_total", result="sent") < 1001:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert sorted(len(r.body["notifications"]) for r in fake.stacks_requests("notifications")) == [2, 1000]
    assert sample(metrics, "buildkite_stacks_notifications_total", result="rejected") == 1
    assert len(fake.stacks.notifications(uuid)) == 1001


async def test_a_full_queue_drops_and_a_failed_batch_is_not_retried(
    fake: FakeBuildkite, stacks: StacksAPI
) -> None:
    uuid = fake.add_job()
    metrics = ControllerMetrics()
    notifier = Notifier(stacks, metrics.stacks, capacity=2)
    for text in ("one", "two", "three"):
        notifier.notify(uuid, text)
    fake.faults.fail("stacks", 500, count=1, only="notifications")
    await notifier.flush()
    await notifier.flush()
    assert sample(metrics, "buildkite_stacks_notifications_total", result="dropped") == 1
    assert sample(metrics, "buildkite_stacks_notifications_total", result="failed") == 2
    assert fake.stacks.notifications() == []


# ---- the acquisition token Secret ------------------------------------------------------------------


class RecordingKube:
    """Answers the four calls; ``errors`` (call → exceptions in turn) makes one fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.errors: dict[str, list[Exception]] = {}

    def _maybe_fail(self, call: str) -> None:
        pending = self.errors.get(call)
        if pending:
            raise pending.pop(0)

    async def create_job(self, manifest: Mapping[str, Any], *, want_uid: bool = False) -> str | None:
        self.calls.append(("create_job", manifest["metadata"]["name"]))
        self._maybe_fail("create_job")
        return "job-uid" if want_uid else None

    async def delete_job(self, name: str, namespace: str | None = None, *, uid: str | None = None) -> None:
        self.calls.append(("delete_job", (name, uid)))

    async def create_secret(self, manifest: Mapping[str, Any]) -> None:
        self.calls.append(("create_secret", manifest))
        self._maybe_fail("create_secret")

    async def delete_secret(self, name: str, namespace: str | None = None) -> None:
        self.calls.append(("delete_secret", name))


MANIFEST: dict[str, Any] = {"metadata": {"name": "buildkite-u1", "namespace": "ns"}}


async def test_the_secret_follows_the_job_owned_by_it() -> None:
    kube, metrics = RecordingKube(), ControllerMetrics()
    await AcquisitionTokenSecrets(kube, "ctrl", metrics.stacks).create_job_with_token(
        MANIFEST, "u1", "bkjat_x"
    )
    (_, job), (_, secret) = kube.calls
    assert job == "buildkite-u1"
    assert secret["metadata"]["name"] == acquisition_token_secret_name("u1")
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "buildkite-u1",
            "uid": "job-uid",
            "controller": True,
        }
    ]
    assert secret["metadata"]["labels"] == {
        "buildkite.com/job-uuid": "u1",
        "buildkite.com/controller-id": "ctrl",
    }
    assert secret["immutable"] is True
    assert secret["data"] == {"BUILDKITE_AGENT_TOKEN": "YmtqYXRfeA=="}


async def test_a_job_that_exists_already_gets_no_secret() -> None:
    kube = RecordingKube()
    kube.errors["create_job"] = [AlreadyExistsError("exists", status=409, reason="AlreadyExists")]
    with pytest.raises(AlreadyExistsError):
        await AcquisitionTokenSecrets(kube, "c", ControllerMetrics().stacks).create_job_with_token(
            MANIFEST, "u1", "t"
        )
    assert [call for call, _ in kube.calls] == ["create_job"]


async def test_a_secret_that_cannot_be_written_takes_its_new_job_away_again() -> None:
    kube, metrics = RecordingKube(), ControllerMetrics()
    kube.errors["create_secret"] = [KubeAPIError("forbidden", status=403)] * 3
    secrets = AcquisitionTokenSecrets(kube, "c", metrics.stacks, first_delay=0.0)
    with pytest.raises(TokenSecretCreationError, match="forbidden"):
        await secrets.create_job_with_token(MANIFEST, "u1", "bkjat_secret")
    assert [call for call, _ in kube.calls] == ["create_job", *["create_secret"] * 3, "delete_job"]
    assert kube.calls[-1] == ("delete_job", ("buildkite-u1", "job-uid"))
    assert sample(metrics, "buildkite_stacks_acquisition_token_secrets_total", result="error") == 1


async def test_a_leftover_secret_of_the_same_name_is_replaced() -> None:
    kube = RecordingKube()
    kube.errors["create_secret"] = [AlreadyExistsError("exists", status=409, reason="AlreadyExists")]
    secrets = AcquisitionTokenSecrets(kube, "c", ControllerMetrics().stacks, first_delay=0.0)
    await secrets.create_job_with_token(MANIFEST, "u1", "t")
    assert [call for call, _ in kube.calls] == [
        "create_job",
        "create_secret",
        "delete_secret",
        "create_secret",
    ]
