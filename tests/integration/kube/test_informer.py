"""The informer against the real kube-apiserver: initial list, live events, resumption, 410 Gone.

Jobs here have ``parallelism: 0`` so the job controller leaves them alone and every event a test sees
comes from the test's own changes. The 410 test uses Events, the one built-in resource the API server
does not keep in its watch cache (so an old resourceVersion reaches etcd), and compacts etcd to make
that version genuinely too old, which is what happens to a controller that was disconnected for
longer than the server keeps history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes import client as k8s_client

from engine.kube.informer import Informer, WatchEvent
from engine.kube.objects import name_of
from engine.kube.transforms import lean_job
from tests.harness.cluster import KubeCluster

SELECTOR = "agent-stack-policy.test/informer=yes"
LABELS = {"agent-stack-policy.test/informer": "yes"}
WAIT_SECONDS = 15.0


def job(name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": LABELS if labels is None else labels},
        "spec": {
            "parallelism": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]}
            },
        },
    }


def event(name: str, namespace: str, message: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": LABELS if labels is None else labels},
        "involvedObject": {"kind": "Pod", "name": "somewhere", "namespace": namespace, "apiVersion": "v1"},
        "reason": "Testing",
        "message": message,
        "type": "Normal",
        "firstTimestamp": "2025-01-01T00:00:00Z",
        "lastTimestamp": "2025-01-01T00:00:00Z",
        "count": 1,
    }


class Recorder:
    """Subscribes to an informer and keeps every event, in delivery order."""

    def __init__(self, informer: Informer) -> None:
        self.events: list[WatchEvent] = []
        informer.subscribe(self.events.append)

    def summary(self, start: int = 0) -> list[tuple[str, str, bool]]:
        return [(e.kind, name_of(e.obj), e.initial) for e in self.events[start:]]

    async def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} events, got {self.summary()}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.wait_synced(), WAIT_SECONDS)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def in_thread(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


# The official client's methods are typed for its model classes; these tests send plain dicts (which it
# accepts), so the API objects are typed loosely.
@pytest.fixture
def batch_v1(kube_api: k8s_client.ApiClient) -> Any:
    return k8s_client.BatchV1Api(kube_api)


@pytest.fixture
def core_v1(kube_api: k8s_client.ApiClient) -> Any:
    return k8s_client.CoreV1Api(kube_api)


def jobs_informer(api: k8s_client.ApiClient, namespace: str, **options: Any) -> Informer:
    return Informer(api, "jobs", namespace, SELECTOR, name="test-jobs", **options)


async def test_a_transform_shapes_listed_and_watched_objects(
    kube_api: k8s_client.ApiClient, batch_v1: Any, kube_namespace: str
) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job("listed"))
    informer = jobs_informer(kube_api, kube_namespace, transform=lean_job)
    recorder = Recorder(informer)

    async with running(informer):
        await in_thread(lambda: batch_v1.create_namespaced_job(kube_namespace, job("watched")))
        await recorder.wait_for(2)

    for received in recorder.events:
        assert received.obj["kind"] == "Job"
        assert set(received.obj["spec"]) <= {"suspend"}, "no pod template"
        assert "managedFields" not in received.obj["metadata"]
        assert received.obj["metadata"]["labels"] == LABELS
    assert [obj["metadata"]["name"] for obj in informer.objects()] == ["listed", "watched"]
    assert all("template" not in obj["spec"] for obj in informer.objects()), "the cache keeps the lean copy"


async def test_initial_list_then_live_events_in_order(
    kube_api: k8s_client.ApiClient, batch_v1: Any, kube_namespace: str
) -> None:
    for name in ("alpha", "bravo"):
        batch_v1.create_namespaced_job(kube_namespace, job(name))
    batch_v1.create_namespaced_job(kube_namespace, job("unlabelled", labels={}))
    informer = jobs_informer(kube_api, kube_namespace)
    recorder = Recorder(informer)

    async with running(informer):
        assert recorder.summary() == [("added", "alpha", True), ("added", "bravo", True)]
        assert recorder.events[0].obj["kind"] == "Job", "listed objects carry their kind like watched ones"
        assert "managedFields" not in recorder.events[0].obj["metadata"]

        await in_thread(lambda: batch_v1.create_namespaced_job(kube_namespace, job("charlie")))
        await in_thread(
            lambda: batch_v1.patch_namespaced_job(
                "alpha", kube_namespace, {"metadata": {"annotations": {"touched": "yes"}}}
            )
        )
        await in_thread(
            lambda: batch_v1.delete_namespaced_job("bravo", kube_namespace, propagation_policy="Background")
        )
        await in_thread(lambda: batch_v1.create_namespaced_job(kube_namespace, job("ignored", labels={})))
        await recorder.wait_for(5)
        await asyncio.sleep(0.5)  # room for any event that should not come

    assert recorder.summary(2) == [
        ("added", "charlie", False),
        ("modified", "alpha", False),
        ("deleted", "bravo", False),
    ]
    modified = recorder.events[3]
    assert modified.old is not None
    assert "annotations" not in modified.old["metadata"]
    assert modified.obj["metadata"]["annotations"] == {"touched": "yes"}
    deleted = recorder.events[4]
    assert deleted.old is not None
    assert name_of(deleted.old) == "bravo"
    assert sorted(name_of(obj) for obj in informer.objects()) == ["alpha", "charlie"]
    assert (informer.stats.lists, informer.stats.expired) == (1, 0)


async def test_wait_synced_returns_for_an_empty_namespace(
    kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    informer = jobs_informer(kube_api, kube_namespace)
    recorder = Recorder(informer)
    async with running(informer):
        assert informer.synced
    assert recorder.events == []
    assert informer.resource_version


async def test_watch_resumes_after_the_server_ends_it(
    kube_api: k8s_client.ApiClient, batch_v1: Any, kube_namespace: str
) -> None:
    informer = jobs_informer(kube_api, kube_namespace, watch_timeout_seconds=1)
    recorder = Recorder(informer)
    names = [f"job-{index}" for index in range(5)]

    async with running(informer):
        for name in names:
            await asyncio.to_thread(batch_v1.create_namespaced_job, kube_namespace, job(name))
            await asyncio.sleep(0.6)  # spread over several one-second watches
        await recorder.wait_for(len(names))
        await asyncio.sleep(1.2)  # one more reconnect: nothing may be delivered twice

    assert recorder.summary() == [("added", name, False) for name in names]
    assert informer.stats.watches >= 3, "the server should have ended several one-second watches"
    assert (informer.stats.lists, informer.stats.expired) == (1, 0)


async def test_a_restarted_run_continues_from_where_it_stopped(
    kube_api: k8s_client.ApiClient, batch_v1: Any, kube_namespace: str
) -> None:
    for name in ("alpha", "bravo"):
        batch_v1.create_namespaced_job(kube_namespace, job(name))
    informer = jobs_informer(kube_api, kube_namespace)
    recorder = Recorder(informer)
    async with running(informer):
        pass

    batch_v1.create_namespaced_job(kube_namespace, job("charlie"))
    batch_v1.patch_namespaced_job("alpha", kube_namespace, {"metadata": {"annotations": {"touched": "yes"}}})
    batch_v1.delete_namespaced_job("bravo", kube_namespace, propagation_policy="Background")

    async with running(informer):
        await recorder.wait_for(5)

    assert recorder.summary(2) == [
        ("added", "charlie", False),
        ("modified", "alpha", False),
        ("deleted", "bravo", False),
    ]
    assert (informer.stats.lists, informer.stats.expired) == (1, 0), "resumed by watching, not relisting"


async def test_a_failing_handler_does_not_stop_the_others(
    kube_api: k8s_client.ApiClient, batch_v1: Any, kube_namespace: str
) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job("alpha"))
    informer = jobs_informer(kube_api, kube_namespace)

    def broken(_: WatchEvent) -> None:
        raise RuntimeError("handler bug")

    informer.subscribe(broken)
    recorder = Recorder(informer)
    async with running(informer):
        await in_thread(lambda: batch_v1.create_namespaced_job(kube_namespace, job("bravo")))
        await recorder.wait_for(2)
    assert recorder.summary() == [("added", "alpha", True), ("added", "bravo", False)]


# ---- 410 Gone -----------------------------------------------------------------------------------------


def etcd_client_url(cluster: KubeCluster) -> str:
    """The harness's etcd client URL (public attribute if the harness has one, else its etcd argv)."""
    url = getattr(cluster, "etcd_url", None)
    if isinstance(url, str):
        return url
    for component in getattr(cluster, "_components", []):
        if component.name == "etcd":
            for argument in component.process.args:
                if str(argument).startswith("--listen-client-urls="):
                    return str(argument).split("=", 1)[1].split(",")[0]
    raise AssertionError("cannot find the test cluster's etcd URL")


def compact_etcd(cluster: KubeCluster, revision: int) -> None:
    """Discard etcd history before ``revision`` (etcd's JSON gateway for ``Compact``)."""
    request = urllib.request.Request(
        f"{etcd_client_url(cluster)}/v3/kv/compaction",
        data=json.dumps({"revision": revision, "physical": True}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        assert response.status == 200


async def test_410_gone_relists_and_delivers_exactly_the_differences(
    kube_cluster: KubeCluster,
    kube_api: k8s_client.ApiClient,
    core_v1: Any,
    kube_namespace: str,
) -> None:
    for name, message in (("echo", "first"), ("foxtrot", "second"), ("golf", "third")):
        core_v1.create_namespaced_event(kube_namespace, event(name, kube_namespace, message))
    informer = Informer(kube_api, "events", kube_namespace, SELECTOR, name="test-events")
    recorder = Recorder(informer)
    async with running(informer):
        pass
    assert recorder.summary() == [("added", name, True) for name in ("echo", "foxtrot", "golf")]
    stopped_at = int(informer.resource_version or 0)

    # While the informer is away: one event deleted, one changed, one created, one recreated
    # under the same name, and one created that the selector excludes.
    core_v1.delete_namespaced_event("echo", kube_namespace)
    core_v1.patch_namespaced_event("foxtrot", kube_namespace, {"message": "second, edited"})
    core_v1.delete_namespaced_event("golf", kube_namespace)
    core_v1.create_namespaced_event(kube_namespace, event("golf", kube_namespace, "third, again"))
    core_v1.create_namespaced_event(kube_namespace, event("hotel", kube_namespace, "fourth"))
    core_v1.create_namespaced_event(kube_namespace, event("india", kube_namespace, "unselected", labels={}))
    listing = json.loads(core_v1.list_namespaced_event(kube_namespace, _preload_content=False).data)
    now = int(listing["metadata"]["resourceVersion"])
    assert now > stopped_at + 1
    compact_etcd(kube_cluster, now)

    async with running(informer):
        await recorder.wait_for(3 + 5)

    assert recorder.summary(3) == [
        ("deleted", "echo", False),
        ("modified", "foxtrot", False),
        ("deleted", "golf", False),
        ("added", "golf", False),
        ("added", "hotel", False),
    ]
    modified = recorder.events[4]
    assert modified.old is not None
    assert modified.old["message"] == "second"
    assert modified.obj["message"] == "second, edited"
    assert recorder.events[6].obj["message"] == "third, again"
    assert (informer.stats.expired, informer.stats.lists) == (1, 2)
    assert sorted(name_of(obj) for obj in informer.objects()) == ["foxtrot", "golf", "hotel"]
