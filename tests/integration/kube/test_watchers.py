"""The three watchers on the real control plane: kube-apiserver with the job controller, the fake kubelet
playing the node, FakeBuildkite behind the real GraphQL and Agent API clients, and the real JobFailer.

Each test creates a Kubernetes Job the way the scheduler would (labelled with the job UUID, the
controller ID and the job's tags), drives its pod through the states a kubelet would report, and
checks what Buildkite and Kubernetes end up with. Grace periods are a second or two so the whole
module stays fast.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid as uuid_module
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from engine.buildkite.agent_api import AgentAPI
from engine.buildkite.graphql import BuildkiteGraphQL
from engine.controller.failer import JobFailer
from engine.controller.job_states import GraphQLJobs
from engine.controller.metrics import ControllerMetrics
from engine.controller.watchers import CompletionsWatcher, JobWatcher, PodWatcher
from engine.kube.client import KubeClient
from engine.kube.informer import Informer
from engine.kube.transforms import lean_job, lean_pod
from engine.model.config import ControllerConfig
from tests.fakes.buildkite import FakeBuildkite
from tests.harness import kubelet
from tests.integration.kube import WAIT_SECONDS, block_pod_creation

CONTROLLER_ID = "watchers-test"
SECRET = "buildkite-agent-token"
QUEUE = "kubernetes"
SCAN_SECONDS = 0.2
SLOW = 600.0
"""A grace period long enough never to be reached in a test."""

BUSYBOX = "busybox:1.36"
AGENT_IMAGE = "ghcr.io/buildkite/agent:3.87.1"


async def until(what: str, condition: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    """Poll a cheap synchronous ``condition`` until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


class Stack:
    """Kubernetes and Buildkite for one test, plus the watchers once :meth:`start` is called."""

    def __init__(self, api: k8s_client.ApiClient, namespace: str, buildkite: FakeBuildkite) -> None:
        self.api: Any = api
        self.namespace = namespace
        self.buildkite = buildkite
        self.core_v1: Any = k8s_client.CoreV1Api(api)
        self.batch_v1: Any = k8s_client.BatchV1Api(api)
        self.kube = KubeClient(api, namespace)
        self.metrics = ControllerMetrics()
        self.graphql = BuildkiteGraphQL(buildkite.graphql_url, buildkite.graphql_token)
        self._tasks: list[asyncio.Task[None]] = []

    def create_token_secret(self) -> None:
        token = base64.b64encode(self.buildkite.agent_token.encode()).decode()
        self.core_v1.create_namespaced_secret(
            self.namespace, {"metadata": {"name": SECRET}, "data": {"BUILDKITE_AGENT_TOKEN": token}}
        )

    async def start(self, **settings: Any) -> None:
        """Run the pod and Job informers and the three watchers with these config keys."""
        config = ControllerConfig.model_validate(
            {
                "namespace": self.namespace,
                "agent-token-secret": SECRET,
                "empty-job-grace-period": SLOW,
                "image-pull-backoff-grace-period": SLOW,
                "job-cancel-checker-poll-interval": SCAN_SECONDS,
                "pod-pending-timeout": SLOW,
                **settings,
            }
        )
        failer = JobFailer(self.kube, AgentAPI(self.buildkite.agent_url, retry_scale=0.01), config)
        selector = f"buildkite.com/controller-id={CONTROLLER_ID}"
        # Transformed as the controller's informers transform them (engine.controller.runtime).
        jobs = Informer(self.api, "jobs", self.namespace, selector, name="jobs", transform=lean_job)
        pods = Informer(self.api, "pods", self.namespace, selector, name="pods", transform=lean_pod)
        completions = CompletionsWatcher(self.kube, self.metrics)
        job_watcher = JobWatcher(self.kube, failer, config, self.metrics, check_interval=SCAN_SECONDS)
        pod_watcher = PodWatcher(
            self.kube, failer, GraphQLJobs(self.graphql), config, self.metrics, check_interval=SCAN_SECONDS
        )
        jobs.subscribe(job_watcher.on_event)
        pods.subscribe(completions.on_event)
        pods.subscribe(pod_watcher.on_event)
        for runnable in (jobs.run(), pods.run(), completions.run(), job_watcher.run(), pod_watcher.run()):
            self._tasks.append(asyncio.create_task(runnable))
        await asyncio.wait_for(asyncio.gather(jobs.wait_synced(), pods.wait_synced()), WAIT_SECONDS)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.graphql.close()

    # ---- objects ----------------------------------------------------------------------------------

    def add_buildkite_job(self) -> str:
        return self.buildkite.add_job(queue=QUEUE)

    async def create_job(
        self,
        uuid: str,
        *,
        containers: list[dict[str, Any]] | None = None,
        init_containers: list[dict[str, Any]] | None = None,
    ) -> str:
        """A Job labelled as the scheduler labels it; returns its name."""
        labels = {
            "buildkite.com/job-uuid": uuid,
            "buildkite.com/controller-id": CONTROLLER_ID,
            "tag.buildkite.com/queue": QUEUE,
        }
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "containers": containers or [{"name": "agent", "image": AGENT_IMAGE}],
        }
        if init_containers:
            pod_spec["initContainers"] = init_containers
        name = f"buildkite-{uuid}"
        await self.kube.create_job(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "backoffLimit": 0,
                    "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                },
            }
        )
        return name

    def pod_of(self, job_name: str) -> str | None:
        pods = self.core_v1.list_namespaced_pod(self.namespace, label_selector=f"job-name={job_name}").items
        live = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
        return str(live[0].metadata.name) if live else None

    async def wait_for_pod(self, job_name: str) -> str:
        name: str = await until(f"a pod for Job {job_name}", lambda: self.pod_of(job_name))
        return name

    def pod_exists(self, name: str) -> bool:
        try:
            self.core_v1.read_namespaced_pod(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def job_spec(self, job_name: str) -> dict[str, Any]:
        job = self.batch_v1.read_namespaced_job(job_name, self.namespace)
        spec: dict[str, Any] = self.api.sanitize_for_serialization(job.spec)
        return spec

    def finished(self, uuid: str) -> bool:
        return self.buildkite.job(uuid).state == "FINISHED"


@pytest.fixture
async def stack(kube_api: k8s_client.ApiClient, kube_namespace: str) -> AsyncIterator[Stack]:
    async with FakeBuildkite() as buildkite:
        env = Stack(kube_api, kube_namespace, buildkite)
        env.create_token_secret()
        try:
            yield env
        finally:
            await env.stop()


def sample(stack: Stack, name: str, **labels: str) -> float:
    value = stack.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


# ---- completions watcher ------------------------------------------------------------------------------


async def test_a_finished_agent_gives_the_job_a_60_second_deadline(stack: Stack) -> None:
    await stack.start()
    uuid = str(uuid_module.uuid4())
    job_name = await stack.create_job(
        uuid,
        containers=[{"name": "agent", "image": AGENT_IMAGE}, {"name": "nginx", "image": "nginx:1.27"}],
    )
    pod = await stack.wait_for_pod(job_name)
    await asyncio.to_thread(kubelet.set_pod_running, stack.core_v1, stack.namespace, pod)
    await asyncio.sleep(0.5)
    assert stack.job_spec(job_name).get("activeDeadlineSeconds") is None, "not while the agent runs"

    patched: Any = await asyncio.to_thread(
        kubelet.set_container_terminated, stack.core_v1, stack.namespace, pod, "agent", 0
    )
    assert patched.status.phase == "Running", "the sidecar still runs"

    await until("the deadline", lambda: stack.job_spec(job_name).get("activeDeadlineSeconds") == 60)
    await until(
        "the clean-up to be counted", lambda: sample(stack, "buildkite_completion_watcher_cleanups_total")
    )


# ---- job watcher --------------------------------------------------------------------------------------


async def test_a_job_that_never_gets_a_pod_is_failed_after_the_grace_period(stack: Stack) -> None:
    block_pod_creation(stack.core_v1, stack.namespace)
    await stack.start(**{"empty-job-grace-period": "2s"})
    uuid = stack.add_buildkite_job()
    job_name = await stack.create_job(uuid)

    await until("the Buildkite job to be failed", lambda: stack.finished(uuid))

    job = stack.buildkite.job(uuid)
    assert job.exit_status == "1"
    assert job.agent_name == f"buildkite-{uuid}"
    headline, _, events = job.log.partition("\n")
    assert headline.startswith("The Kubernetes job spent ")
    assert headline.endswith("s without starting a pod.")
    assert "FailedCreate" in events
    assert "exceeded quota: no-pods" in events
    await until(
        "activeDeadlineSeconds: 1", lambda: stack.job_spec(job_name).get("activeDeadlineSeconds") == 1
    )
    assert stack.pod_of(job_name) is None
    await until("the clean-up to be counted", lambda: sample(stack, "buildkite_job_watcher_cleanups_total"))
    assert sample(stack, "buildkite_job_watcher_jobs_stalled_without_pod_total") == 1
    assert sample(stack, "buildkite_job_watcher_jobs_failed_on_buildkite_total") == 1


async def test_a_job_that_finishes_without_a_pod_is_failed_at_once(stack: Stack) -> None:
    block_pod_creation(stack.core_v1, stack.namespace)
    await stack.start()  # a grace period far away: only the Job's end can trigger this
    uuid = stack.add_buildkite_job()
    job_name = await stack.create_job(uuid)

    def quota_event_recorded() -> bool:
        events = stack.core_v1.list_namespaced_event(
            stack.namespace, field_selector=f"involvedObject.kind=Job,involvedObject.name={job_name}"
        )
        return any("exceeded quota" in (event.message or "") for event in events.items)

    # The failure message quotes the Job's events: let the job controller record why it has no pod.
    await until("the job controller to record the quota refusal", quota_event_recorded)

    # Play the job controller of a newer Kubernetes, which ends such a Job (v1.20's never does).
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "startTime": now,
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline",
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
        ],
    }
    await asyncio.to_thread(
        stack.batch_v1.patch_namespaced_job_status,
        job_name,
        stack.namespace,
        {"status": status},
        _content_type="application/merge-patch+json",
    )

    await until("the Buildkite job to be failed", lambda: stack.finished(uuid), timeout=10)
    log = stack.buildkite.job(uuid).log
    assert log.startswith("The Kubernetes job ended without starting a pod.\n")
    assert "exceeded quota: no-pods" in log
    assert sample(stack, "buildkite_job_watcher_jobs_finished_without_pod_total") == 1


# ---- pod watcher: images --------------------------------------------------------------------------------


BAD_IMAGE = "buildkite/non-existant-image:latest"


def image_check(image: str) -> list[dict[str, Any]]:
    return [{"name": "imagepullcheck-0", "image": image, "command": ["true"]}]


async def test_an_image_pull_back_off_fails_a_scheduled_job_after_the_grace_period(stack: Stack) -> None:
    await stack.start(**{"image-pull-backoff-grace-period": "2s"})
    uuid = stack.add_buildkite_job()
    job_name = await stack.create_job(uuid, init_containers=image_check(BAD_IMAGE))
    pod = await stack.wait_for_pod(job_name)

    began = time.monotonic()
    await asyncio.to_thread(
        kubelet.set_init_container_waiting, stack.core_v1, stack.namespace, pod, "imagepullcheck-0"
    )
    await until("the Buildkite job to be failed", lambda: stack.finished(uuid))

    assert time.monotonic() - began >= 1.0, "not before the grace period"
    job = stack.buildkite.job(uuid)
    assert job.log == f'The following container images couldn\'t be pulled:\n * "{BAD_IMAGE}"\n'
    assert job.exit_status == "1"
    await until("the pod to be evicted", lambda: not stack.pod_exists(pod))
    await until(
        "the eviction to be counted",
        lambda: sample(
            stack, "buildkite_pod_watcher_pods_evicted_total", eviction_reason="image_pull_failure"
        ),
    )


async def test_an_invalid_image_name_fails_at_once(stack: Stack) -> None:
    await stack.start()  # default grace far away
    uuid = stack.add_buildkite_job()
    junk = "buildkite/agent:latest plus some extra junk"
    job_name = await stack.create_job(uuid, init_containers=image_check(junk))
    pod = await stack.wait_for_pod(job_name)

    await asyncio.to_thread(
        kubelet.set_init_container_waiting,
        stack.core_v1,
        stack.namespace,
        pod,
        "imagepullcheck-0",
        reason="InvalidImageName",
        message=f'Failed to apply default image tag "{junk}": couldn\'t parse image reference',
    )

    await until("the Buildkite job to be failed", lambda: stack.finished(uuid), timeout=10)
    assert (
        stack.buildkite.job(uuid).log == f'The following container images couldn\'t be pulled:\n * "{junk}"\n'
    )
    await until("the pod to be evicted", lambda: not stack.pod_exists(pod))


async def test_an_image_failure_of_a_running_job_cancels_it_instead(stack: Stack) -> None:
    await stack.start()
    uuid = stack.add_buildkite_job()
    stack.buildkite.set_job_state(uuid, "RUNNING")  # an agent has it
    job_name = await stack.create_job(uuid)
    pod = await stack.wait_for_pod(job_name)

    await asyncio.to_thread(
        kubelet.set_container_waiting,
        stack.core_v1,
        stack.namespace,
        pod,
        "agent",
        reason="InvalidImageName",
    )

    await until("the Buildkite job to be cancelled", lambda: stack.buildkite.job(uuid).state == "CANCELED")
    assert [r.operation_name for r in stack.buildkite.graphql_requests("CancelCommandJob")] == [
        "CancelCommandJob"
    ]
    assert stack.buildkite.agent_requests("acquire") == [], "no attempt to fail a job an agent has"
    assert stack.pod_exists(pod), "the pod is left to the agent"
    await until(
        "the cancel to be counted",
        lambda: sample(stack, "buildkite_pod_watcher_jobs_cancelled_on_buildkite_total"),
    )


# ---- pod watcher: init containers -------------------------------------------------------------------


async def test_a_failed_init_container_fails_the_job_with_a_table(stack: Stack) -> None:
    await stack.start()
    uuid = stack.add_buildkite_job()
    job_name = await stack.create_job(
        uuid,
        init_containers=[{"name": "broken", "image": BUSYBOX, "command": ["well this isn't going to work"]}],
    )
    pod = await stack.wait_for_pod(job_name)

    await asyncio.to_thread(
        kubelet.set_init_container_terminated,
        stack.core_v1,
        stack.namespace,
        pod,
        "broken",
        2,
        reason="StartError",
        message='exec: "well this isn\'t going to work": executable file not found in $PATH',
    )

    await until("the Buildkite job to be failed", lambda: stack.finished(uuid), timeout=10)
    lines = stack.buildkite.job(uuid).log.splitlines()
    assert lines[:2] == ["The following init containers failed:", ""]
    assert [cell.strip() for cell in lines[3].split("|")[1:-1]] == [
        "CONTAINER",
        "EXIT CODE",
        "SIGNAL",
        "REASON",
        "MESSAGE",
    ]
    row = [cell.strip() for cell in lines[5].split("|")[1:-1]]
    assert row[:4] == ["broken", "2", "0", "StartError"]
    assert "well this isn't going to work" in row[4]
    assert stack.pod_exists(pod), "a failed pod is not evicted"


# ---- pod watcher: pending pods ------------------------------------------------------------------------


async def test_a_pending_pod_of_a_cancelled_job_is_evicted(stack: Stack) -> None:
    await stack.start()
    uuid = stack.add_buildkite_job()
    job_name = await stack.create_job(uuid)
    pod = await stack.wait_for_pod(job_name)
    await asyncio.sleep(SCAN_SECONDS * 3)
    assert stack.pod_exists(pod), "a scheduled job's pending pod is left alone"

    stack.buildkite.cancel_job(uuid)

    await until("the pod to be evicted", lambda: not stack.pod_exists(pod), timeout=30)
    assert stack.buildkite.job(uuid).state == "CANCELED"
    await until(
        "the eviction to be counted",
        lambda: sample(stack, "buildkite_pod_watcher_pods_evicted_total", eviction_reason="bk_job_cancelled"),
    )


async def test_a_pod_pending_too_long_fails_the_job_and_is_deleted(stack: Stack) -> None:
    await stack.start(**{"pod-pending-timeout": "2s"})
    uuid = stack.add_buildkite_job()
    job_name = await stack.create_job(uuid)
    pod = await stack.wait_for_pod(job_name)
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 node(s) didn't match node selector.",
    }
    await asyncio.to_thread(
        stack.core_v1.patch_namespaced_pod_status,
        pod,
        stack.namespace,
        {"status": {"phase": "Pending", "conditions": [unschedulable]}},
        _content_type="application/merge-patch+json",
    )

    await until("the Buildkite job to be failed", lambda: stack.finished(uuid), timeout=10)
    log = stack.buildkite.job(uuid).log
    headline = log.splitlines()[0]
    assert headline.startswith("The pod has been in Pending state for ")
    assert headline.endswith(" without starting.")
    assert (
        "\nPod Conditions:\n  - PodScheduled: False (Reason: Unschedulable, "
        "Message: 0/3 nodes are available: 3 node(s) didn't match node selector.)\n"
    ) in log
    assert "Events: none" in log or "LAST EVENT" in log
    await until("the pod to be deleted", lambda: not stack.pod_exists(pod))
    await until(
        "the deletion to be counted",
        lambda: sample(stack, "buildkite_pod_watcher_pods_timed_out_pending_total"),
    )
