"""Every informer subscriber still gets what it reads from the transformed objects (engine.kube.transforms).

The objects are real: Jobs built by the default policies (full pod template, about 150 env entries),
created on the real kube-apiserver, their pods made by its job controller and moved by the fake kubelet
into the states the watchers act on (failed init container, unpullable image, finished agent, pending,
succeeded), plus a Job that never gets a pod and one that ended without one. Each subscriber's real code
(deduper, limiter, job watcher, completions watcher, pod watcher, including the background work they
start) then runs on them, and:

* run on *traced* copies of the full objects, every field any subscriber reads must be the same in the
  transformed object (so a subscriber that starts reading a field the transform drops fails here);
* run on the full objects and on the transformed ones, the subscribers do exactly the same things.
"""

from __future__ import annotations

import asyncio
import json
import uuid as uuid_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from engine.controller.deduper import Deduper
from engine.controller.limiter import Limiter
from engine.controller.metrics import ControllerMetrics
from engine.controller.watchers.completions import CompletionsWatcher
from engine.controller.watchers.job_watcher import JobWatcher
from engine.controller.watchers.pod_watcher import PodWatcher
from engine.core.evaluate import evaluate
from engine.kube import wire
from engine.kube.informer import WatchEvent
from engine.kube.labels import JOB_UUID_LABEL
from engine.kube.transforms import Transform, lean_job, lean_pod
from engine.model.config import ControllerConfig
from engine.model.job import parse_job
from engine.policy.loader import load_policies
from tests.harness import kubelet
from tests.integration.kube import block_pod_creation, eventually
from tests.integration.kube.read_tracing import Reads, missing_reads, traced
from tests.unit.controller.stages import RecordingStage
from tests.unit.watchers.fakes import FakeBuildkiteJobs, FakeFailer, FakeKube

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = ("init-failed", "bad-image", "agent-done", "pending", "succeeded")
PODLESS = ("stalled", "ended-without-pod")
WATCHER_CONFIG = ControllerConfig.model_validate(
    {
        "image-pull-backoff-grace-period": "1ms",
        "pod-pending-timeout": "0s",
        "empty-job-grace-period": "0s",
        "job-cancel-checker-poll-interval": "10ms",
    }
)

Raw = dict[str, Any]


@dataclass
class World:
    """Full objects as the API server sent them: each Job and pod before and after the kubelet moved it."""

    uuids: dict[str, str]
    jobs_before: dict[str, Raw]
    jobs_after: dict[str, Raw]
    pods_before: dict[str, Raw]
    pods_after: dict[str, Raw]
    now: datetime
    """The watchers' clock (fixed, so messages that say how long something waited are comparable)."""


def manifest(uuid: str, namespace: str) -> Any:
    node = json.loads((ROOT / "examples" / "jobs" / "hello-world.json").read_text())
    node["uuid"] = uuid
    config = ControllerConfig.model_validate({"image": "buildkite/agent:3"}).expression_view()
    decision = evaluate(load_policies([]), parse_job(node), config)
    assert decision.admitted
    job = dict(decision.manifest)
    job["metadata"] = {**job["metadata"], "namespace": namespace}
    return job


def listed(api: k8s_client.ApiClient, resource: str, namespace: str) -> dict[str, Raw]:
    """Objects by Job UUID, in wire shape with managedFields, as an informer's list returns them."""
    if resource == "jobs":
        response: Any = k8s_client.BatchV1Api(api).list_namespaced_job(namespace, _preload_content=False)
        kind, version = "Job", "batch/v1"
    else:
        response = k8s_client.CoreV1Api(api).list_namespaced_pod(namespace, _preload_content=False)
        kind, version = "Pod", "v1"
    items = json.loads(response.data)["items"]
    return {
        item["metadata"]["labels"][JOB_UUID_LABEL]: {"kind": kind, "apiVersion": version, **item}
        for item in items
        if JOB_UUID_LABEL in item["metadata"].get("labels", {})
    }


@pytest.fixture(scope="module")
def world(kube_cluster: Any) -> Iterator[World]:
    api = kube_cluster.api_client()
    core, batch = k8s_client.CoreV1Api(api), k8s_client.BatchV1Api(api)
    namespace = f"transforms-{uuid_module.uuid4().hex[:6]}"
    namespace_body: Any = {"metadata": {"name": namespace}}
    core.create_namespace(namespace_body)
    uuids = {name: str(uuid_module.uuid4()) for name in (*SCENARIOS, *PODLESS)}
    for name in SCENARIOS:
        batch.create_namespaced_job(namespace, manifest(uuids[name], namespace))

    def all_pods() -> dict[str, Raw] | None:
        pods = listed(api, "pods", namespace)
        return pods if len(pods) == len(SCENARIOS) else None

    pods_before = asyncio.run(eventually("a pod for every Job", _async(all_pods)))
    jobs_before = listed(api, "jobs", namespace)
    pod = {name: pods_before[uuids[name]]["metadata"]["name"] for name in SCENARIOS}
    first_init = pods_before[uuids["init-failed"]]["spec"]["initContainers"][0]["name"]
    kubelet.set_init_container_terminated(core, namespace, pod["init-failed"], first_init, 1)
    bad: Any = kubelet.set_container_waiting(
        core, namespace, pod["bad-image"], "agent", reason="InvalidImageName"
    )
    # A status that does not name its image (the pod watcher then takes it from the spec).
    statuses = api.sanitize_for_serialization(bad.status.container_statuses)
    for status in statuses:
        if status["name"] == "agent":
            del status["image"]
    status_patch: Any = {"status": {"containerStatuses": statuses}}
    core.patch_namespaced_pod_status(
        pod["bad-image"], namespace, status_patch, _content_type="application/merge-patch+json"
    )
    kubelet.set_container_terminated(core, namespace, pod["agent-done"], "agent", 0)
    kubelet.set_pod_succeeded(core, namespace, pod["succeeded"])

    block_pod_creation(core, namespace)
    batch.create_namespaced_job(namespace, manifest(uuids["stalled"], namespace))
    ended = manifest(uuids["ended-without-pod"], namespace)
    ended["spec"]["parallelism"] = 0
    batch.create_namespaced_job(namespace, ended)
    batch.patch_namespaced_job_status(
        ended["metadata"]["name"],
        namespace,
        {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}},
    )

    def settled() -> dict[str, Raw] | None:
        jobs = listed(api, "jobs", namespace)
        succeeded = jobs.get(uuids["succeeded"], {}).get("status", {}).get("conditions", [])
        return jobs if len(jobs) == len(uuids) and succeeded else None

    jobs_after = asyncio.run(eventually("the succeeded Job to complete", _async(settled)))
    pods_after = listed(api, "pods", namespace)
    try:
        now = datetime.now(UTC) + timedelta(minutes=20)
        yield World(uuids, jobs_before, jobs_after, pods_before, pods_after, now)
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")
        api.close()


def _async(probe: Callable[[], Any]) -> Callable[[], Any]:
    async def run() -> Any:
        return probe()

    return run


# ---- running every subscriber ----------------------------------------------------------------------------


@dataclass
class Behaviour:
    """Everything the subscribers did that anyone could see."""

    failed: list[tuple[str, list[str], str, str | None]] = field(default_factory=list)
    kube: dict[str, Any] = field(default_factory=dict)
    state_queries: int = 0
    cancelled: list[tuple[str, str]] = field(default_factory=list)
    in_flight: frozenset[str] = frozenset()
    tokens: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


async def exercise(world: World, prepare: Callable[[Raw, str], Raw]) -> Behaviour:
    """Deliver every object to fresh subscribers as an informer would (added, modified, the scans,
    deleted), let their background work finish, and return what they did. ``prepare`` turns each full
    object (and its kind, ``job``/``pod``) into what the subscribers get."""
    metrics = ControllerMetrics()
    kube, failer, graphql = FakeKube(), FakeFailer("failed"), FakeBuildkiteJobs()
    for uuid, job in world.jobs_after.items():  # the live read before acting on a stalled Job
        kube.jobs[(job["metadata"]["namespace"], job["metadata"]["name"])] = prepare(job, "job")
        graphql.set_state(uuid, "SCHEDULED")
    deduper = Deduper(RecordingStage(), metrics.deduper)
    limiter = Limiter(RecordingStage(), 100, metrics.limiter)
    job_watcher = JobWatcher(kube, failer, WATCHER_CONFIG, metrics, clock=lambda: world.now)
    completions = CompletionsWatcher(kube, metrics)
    pod_watcher = PodWatcher(kube, failer, graphql, WATCHER_CONFIG, metrics, clock=lambda: world.now)
    job_handlers = [deduper.on_job_event, limiter.on_job_event, job_watcher.on_event]
    pod_handlers = [completions.on_event, pod_watcher.on_event]

    def deliver(handlers: list[Any], kind: Any, obj: Raw, old: Raw | None, initial: bool = False) -> None:
        for handler in handlers:
            handler(WatchEvent(kind=kind, obj=obj, old=old, initial=initial))

    jobs = {
        uuid: (prepare(world.jobs_before.get(uuid, job), "job"), prepare(job, "job"))
        for uuid, job in world.jobs_after.items()
    }
    pods = {
        uuid: (prepare(world.pods_before[uuid], "pod"), prepare(pod, "pod"))
        for uuid, pod in world.pods_after.items()
    }
    for before, _ in jobs.values():
        deliver(job_handlers, "added", before, None, initial=True)
    for before, _ in pods.values():
        deliver(pod_handlers, "added", before, None, initial=True)
    for before, after in jobs.values():
        deliver(job_handlers, "modified", after, before)
    for before, after in pods.values():
        deliver(pod_handlers, "modified", after, before)
    job_watcher.check_stalled()
    pod_watcher.check_pods()
    await job_watcher.idle()
    await completions.idle()
    await pod_watcher.idle()
    for _, after in pods.values():
        deliver(pod_handlers, "deleted", after, after)
    for _, after in jobs.values():
        deliver(job_handlers, "deleted", after, after)
    for watcher in (job_watcher, completions, pod_watcher):
        task = asyncio.create_task(watcher.run())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    samples = {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    return Behaviour(
        failed=sorted((c.uuid, c.tags, c.message, c.namespace) for c in failer.calls),
        kube={
            "deadlines": sorted(kube.deadlines),
            "evicted": sorted(kube.evicted),
            "deleted": sorted(kube.deleted, key=repr),
            "events": sorted(kube.events_asked, key=repr),
        },
        state_queries=graphql.state_queries,
        cancelled=sorted(graphql.cancelled),
        in_flight=deduper.in_flight,
        tokens=limiter.available,
        metrics=samples,
    )


def lean(obj: Raw, kind: str) -> Raw:
    return lean_job(obj) if kind == "job" else lean_pod(obj)


# ---- the tests ---------------------------------------------------------------------------------------------


async def test_every_field_a_subscriber_reads_survives_the_transforms(world: World) -> None:
    reads: list[tuple[Reads, Raw, Raw]] = []

    def tracing(obj: Raw, kind: str) -> Raw:
        record = Reads()
        reads.append((record, obj, lean(obj, kind)))
        return traced(obj, record)

    behaviour = await exercise(world, tracing)
    problems = sorted(
        {
            f"{full['kind']} {problem}"
            for record, full, trimmed in reads
            for problem in missing_reads(record, full, trimmed)
        }
    )
    assert problems == []
    # The scenario reached the code that reads deep into pods and Jobs (not a vacuous pass).
    read_paths = {path for record, _, _ in reads for path in record.values}
    for expected in [
        ("status", "containerStatuses", 0, "state"),
        ("status", "initContainerStatuses", 0, "state"),
        ("status", "conditions"),
        ("spec", "suspend"),
    ]:
        assert any(path[: len(expected)] == expected for path in read_paths), expected
    assert any(path[:2] == ("spec", "containers") and path[-1] == "image" for path in read_paths)
    assert behaviour.failed, "the watchers failed Buildkite jobs"
    for call in ("deadlines", "evicted", "deleted"):
        assert behaviour.kube[call], call


async def test_subscribers_do_the_same_with_transformed_objects(world: World) -> None:
    full = await exercise(world, lambda obj, _kind: obj)
    trimmed = await exercise(world, lean)
    assert trimmed == full
    failed_uuids = {uuid for uuid, *_ in full.failed}
    for scenario in ("init-failed", "bad-image", "pending", "stalled", "ended-without-pod"):
        assert world.uuids[scenario] in failed_uuids, scenario


def drop(path: tuple[str, ...]) -> Transform:
    def transform(obj: Raw) -> Raw:
        copy: Raw = json.loads(json.dumps(obj))
        parent = copy
        for step in path[:-1]:
            parent = parent.get(step, {})
        parent.pop(path[-1], None)
        return copy

    return transform


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("pod", ("status", "containerStatuses")),
        ("pod", ("metadata", "labels")),
        ("pod", ("spec", "initContainers")),
        ("job", ("metadata", "creationTimestamp")),
        ("job", ("status",)),
    ],
)
async def test_a_transform_that_drops_a_field_read_is_caught(
    world: World, kind: str, path: tuple[str, ...]
) -> None:
    reads: list[tuple[Reads, Raw, Raw]] = []

    def tracing(obj: Raw, obj_kind: str) -> Raw:
        record = Reads()
        trimmed = drop(path)(lean(obj, obj_kind)) if obj_kind == kind else lean(obj, obj_kind)
        reads.append((record, obj, trimmed))
        return traced(obj, record)

    await exercise(world, tracing)
    problems = [
        problem for record, full, trimmed in reads for problem in missing_reads(record, full, trimmed)
    ]
    assert any(".".join(path) in problem for problem in problems), problems


def test_transformed_objects_are_a_fraction_of_the_full_ones(world: World) -> None:
    for job in world.jobs_after.values():
        trimmed = lean_job(job)
        assert "template" not in trimmed.get("spec", {})
        assert "managedFields" not in trimmed["metadata"]
        assert len(wire.encode(trimmed)) * 5 < len(wire.encode(job))
    for pod in world.pods_after.values():
        trimmed = lean_pod(pod)
        assert all(set(c) <= {"name", "image"} for c in trimmed["spec"]["containers"])
        assert len(wire.encode(trimmed)) * 3 < len(wire.encode(pod))
