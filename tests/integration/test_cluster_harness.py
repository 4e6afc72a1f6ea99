"""The test cluster behaves like a real one where the stack depends on it.

These prove the harness, not the stack: Jobs get Pods from the real job controller, the fake kubelet's
status patches drive Jobs to ``Complete``/``Failed``, the TTL controller and garbage collector clean
up, injected pull errors stick, and the API server validates like production.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.harness import kubelet
from tests.harness.cluster import ClusterStartError, KubeBinaries, KubeCluster
from tests.harness.cluster_fixtures import binaries_or_skip, namespace_name_for

T = TypeVar("T")

POLL_TIMEOUT_SECONDS = 20.0


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = POLL_TIMEOUT_SECONDS) -> T:
    """Poll ``probe`` until it returns something truthy; controllers act asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def job_manifest(
    name: str,
    *,
    backoff_limit: int = 0,
    ttl_seconds: int | None = None,
    init_image: str | None = None,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
    }
    if init_image is not None:
        pod_spec["initContainers"] = [{"name": "prepare", "image": init_image, "command": ["true"]}]
    spec: dict[str, Any] = {"backoffLimit": backoff_limit, "template": {"spec": pod_spec}}
    if ttl_seconds is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def job_condition(batch_v1: Any, namespace: str, name: str, kind: str) -> Any:
    job = batch_v1.read_namespaced_job(name, namespace)
    for condition in job.status.conditions or []:
        if condition.type == kind and condition.status == "True":
            return job
    return None


def pod_of_job(core_v1: Any, namespace: str, job: str) -> Any:
    pods = core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return pods[0] if pods else None


@pytest.fixture
def core_v1(kube_api: k8s_client.ApiClient) -> Any:
    return k8s_client.CoreV1Api(kube_api)


@pytest.fixture
def batch_v1(kube_api: k8s_client.ApiClient) -> Any:
    return k8s_client.BatchV1Api(kube_api)


# ---- with the cluster -------------------------------------------------------------------------------


def test_succeeded_pod_completes_its_job(core_v1: Any, batch_v1: Any, kube_namespace: str) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job_manifest("ok", ttl_seconds=600))
    created = batch_v1.read_namespaced_job("ok", kube_namespace)
    assert created.spec.ttl_seconds_after_finished == 600, "TTLAfterFinished gate is off: field was dropped"

    pod = wait_for("the job controller to create a Pod", lambda: pod_of_job(core_v1, kube_namespace, "ok"))
    assert pod.status.phase == "Pending"
    assert [ref.name for ref in pod.metadata.owner_references] == ["ok"]

    patched: Any = kubelet.set_pod_succeeded(core_v1, kube_namespace, pod.metadata.name)
    assert patched.status.phase == "Succeeded"
    [main] = patched.status.container_statuses
    assert main.image == "busybox:1.36"
    assert main.state.terminated.exit_code == 0
    assert main.image_id.startswith("docker.io/library/busybox@sha256:")

    job = wait_for("Job Complete", lambda: job_condition(batch_v1, kube_namespace, "ok", "Complete"))
    assert job.status.succeeded == 1


def test_failed_pod_fails_job_without_retries(core_v1: Any, batch_v1: Any, kube_namespace: str) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job_manifest("boom", backoff_limit=0))
    pod = wait_for("a Pod", lambda: pod_of_job(core_v1, kube_namespace, "boom"))

    kubelet.set_pod_failed(core_v1, kube_namespace, pod.metadata.name, exit_code=3)

    job = wait_for("Job Failed", lambda: job_condition(batch_v1, kube_namespace, "boom", "Failed"))
    [failed] = [c for c in job.status.conditions if c.type == "Failed"]
    assert failed.reason == "BackoffLimitExceeded"
    assert job.status.failed == 1
    pods = core_v1.list_namespaced_pod(kube_namespace, label_selector="job-name=boom").items
    assert len(pods) == 1, "backoffLimit 0 must not start a replacement Pod"


def test_ttl_controller_deletes_finished_job_and_its_pods(
    core_v1: Any, batch_v1: Any, kube_namespace: str
) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job_manifest("short-lived", ttl_seconds=1))
    pod = wait_for("a Pod", lambda: pod_of_job(core_v1, kube_namespace, "short-lived"))

    def job_gone() -> bool:
        try:
            batch_v1.read_namespaced_job("short-lived", kube_namespace)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    time.sleep(2)  # longer than the TTL: an unfinished Job must survive it
    assert not job_gone(), "the TTL controller deleted a Job that had not finished"

    kubelet.set_pod_succeeded(core_v1, kube_namespace, pod.metadata.name)
    wait_for("the TTL controller to delete the Job", job_gone)
    wait_for(
        "the garbage collector to delete the Pod",
        lambda: pod_of_job(core_v1, kube_namespace, "short-lived") is None,
    )


def test_init_container_pull_error_is_kept(core_v1: Any, batch_v1: Any, kube_namespace: str) -> None:
    batch_v1.create_namespaced_job(
        kube_namespace, job_manifest("stuck", init_image="registry.invalid/nope:1")
    )
    pod = wait_for("a Pod", lambda: pod_of_job(core_v1, kube_namespace, "stuck"))

    kubelet.set_init_container_waiting(core_v1, kube_namespace, pod.metadata.name, "prepare")
    # Let the job controller see the update, then check nothing rewrote the status.
    wait_for(
        "Job active", lambda: (batch_v1.read_namespaced_job("stuck", kube_namespace).status.active or 0) == 1
    )
    time.sleep(0.5)

    current: Any = core_v1.read_namespaced_pod(pod.metadata.name, kube_namespace)
    assert current.status.phase == "Pending"
    [init] = current.status.init_container_statuses
    assert init.state.waiting.reason == "ImagePullBackOff"
    assert init.state.waiting.message == 'Back-off pulling image "registry.invalid/nope:1"'
    [main] = current.status.container_statuses
    assert main.state.waiting.reason == "PodInitializing"
    initialized = next(c for c in current.status.conditions if c.type == "Initialized")
    assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
    assert job_condition(batch_v1, kube_namespace, "stuck", "Failed") is None


def test_running_then_terminated_container_moves_phase(
    core_v1: Any, batch_v1: Any, kube_namespace: str
) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job_manifest("steps", init_image="alpine:3.20"))
    pod = wait_for("a Pod", lambda: pod_of_job(core_v1, kube_namespace, "steps"))
    name = pod.metadata.name

    running: Any = kubelet.set_pod_running(core_v1, kube_namespace, name)
    assert running.status.phase == "Running"
    assert {c.type: c.status for c in running.status.conditions}["Ready"] == "True"
    assert running.status.init_container_statuses[0].state.terminated.reason == "Completed"
    started_at = running.status.container_statuses[0].state.running.started_at

    done: Any = kubelet.set_container_terminated(core_v1, kube_namespace, name, "main", 2)
    assert done.status.phase == "Failed"
    terminated = done.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (2, "Error")
    assert terminated.started_at == started_at
    wait_for("Job Failed", lambda: job_condition(batch_v1, kube_namespace, "steps", "Failed"))


def test_failed_init_container_fails_a_never_restarting_pod_and_its_job(
    core_v1: Any, batch_v1: Any, kube_namespace: str
) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job_manifest("init-fails", init_image="alpine:3.20"))
    pod = wait_for("a Pod", lambda: pod_of_job(core_v1, kube_namespace, "init-fails"))
    long_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    kubelet.set_pod_start_time(core_v1, kube_namespace, pod.metadata.name, long_ago)

    failed: Any = kubelet.set_init_container_terminated(
        core_v1, kube_namespace, pod.metadata.name, "prepare", 4, message="no such file"
    )

    assert failed.status.phase == "Failed"
    assert failed.status.start_time == long_ago, "later status updates must keep the start time"
    [init] = failed.status.init_container_statuses
    assert (init.state.terminated.exit_code, init.state.terminated.reason) == (4, "Error")
    assert init.state.terminated.message == "no such file"
    wait_for("Job Failed", lambda: job_condition(batch_v1, kube_namespace, "init-fails", "Failed"))


def test_crash_looping_container_keeps_pod_running_and_job_active(
    core_v1: Any, batch_v1: Any, kube_namespace: str
) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job_manifest("crashy"))
    pod = wait_for("a Pod", lambda: pod_of_job(core_v1, kube_namespace, "crashy"))

    looping: Any = kubelet.set_container_waiting(
        core_v1, kube_namespace, pod.metadata.name, "main", reason="CrashLoopBackOff", restart_count=3
    )

    assert looping.status.phase == "Running"
    [main] = looping.status.container_statuses
    assert (main.state.waiting.reason, main.restart_count, main.ready) == ("CrashLoopBackOff", 3, False)
    assert main.last_state.terminated.exit_code != 0
    wait_for("Job active", lambda: batch_v1.read_namespaced_job("crashy", kube_namespace).status.active == 1)


def test_dry_run_of_invalid_job_is_rejected_with_422(batch_v1: Any, kube_namespace: str) -> None:
    invalid = job_manifest("invalid")
    invalid["spec"]["template"]["spec"]["restartPolicy"] = "Always"  # Jobs only allow Never/OnFailure

    with pytest.raises(ApiException) as rejected:
        batch_v1.create_namespaced_job(kube_namespace, invalid, dry_run="All")

    assert rejected.value.status == 422
    assert "restartPolicy" in (rejected.value.body or "")
    assert batch_v1.list_namespaced_job(kube_namespace).items == []


def test_dry_run_of_valid_job_creates_nothing(batch_v1: Any, kube_namespace: str) -> None:
    echoed = batch_v1.create_namespaced_job(kube_namespace, job_manifest("dry"), dry_run="All")
    assert echoed.spec.selector.match_labels["controller-uid"]  # server defaults were applied
    assert batch_v1.list_namespaced_job(kube_namespace).items == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_kubeconfig_is_admin_and_anonymous_requests_are_forbidden(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    from_kubeconfig: Any = k8s_config.new_client_from_config  # the loader is untyped
    with contextlib.closing(from_kubeconfig(str(kube_cluster.kubeconfig_path))) as api:
        namespaces: Any = k8s_client.CoreV1Api(api).list_namespace()
        names = [ns.metadata.name for ns in namespaces.items]
    assert kube_namespace in names

    anonymous = k8s_client.Configuration(host=kube_cluster.server, ssl_ca_cert=str(kube_cluster.ca_cert_path))
    with (
        k8s_client.ApiClient(anonymous) as api,
        pytest.raises(ApiException) as refused,
    ):
        k8s_client.CoreV1Api(api).list_namespace()
    assert refused.value.status == 403, "RBAC must refuse system:anonymous"


def test_kubelet_rejects_unknown_container(core_v1: Any, batch_v1: Any, kube_namespace: str) -> None:
    batch_v1.create_namespaced_job(kube_namespace, job_manifest("named"))
    pod = wait_for("a Pod", lambda: pod_of_job(core_v1, kube_namespace, "named"))
    with pytest.raises(ValueError, match="has no init container 'main'"):
        kubelet.set_init_container_waiting(core_v1, kube_namespace, pod.metadata.name, "main")


# ---- start-up failures --------------------------------------------------------------------------------


@pytest.mark.cluster
def test_component_that_dies_fails_start_with_its_log(tmp_path: Any) -> None:
    real = binaries_or_skip()
    fake_apiserver = tmp_path / "kube-apiserver"
    fake_apiserver.write_text("#!/bin/sh\necho 'cannot bind: pretend failure' >&2\nexit 7\n")
    fake_apiserver.chmod(0o755)
    cluster = KubeCluster(KubeBinaries(fake_apiserver, real.controller_manager, real.etcd))

    with pytest.raises(ClusterStartError, match="kube-apiserver exited with code 7") as failed:
        cluster.start()

    assert "cannot bind: pretend failure" in str(failed.value)
    with pytest.raises(RuntimeError, match="not started"):
        _ = cluster.server  # start() cleaned up after itself


# ---- pure helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected_repository"),
    [
        ("busybox:1.36", "docker.io/library/busybox"),
        ("buildkite/agent:3", "docker.io/buildkite/agent"),
        ("ghcr.io/org/tool", "ghcr.io/org/tool"),
        ("localhost:5000/x:tag", "localhost:5000/x"),
    ],
)
def test_image_id_names_the_registry_qualified_repository(image: str, expected_repository: str) -> None:
    repository, digest = kubelet.image_id_for(image).split("@")
    assert repository == expected_repository
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)


def test_image_id_keeps_a_pinned_digest() -> None:
    pinned = "alpine@sha256:" + "ab" * 32
    assert kubelet.image_id_for(pinned) == "docker.io/library/" + pinned


def test_namespace_names_are_valid_unique_dns_labels() -> None:
    long_test_name = "test_something[param-with/ODD_chars" + "x" * 80 + "]"
    names = {namespace_name_for(long_test_name) for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert len(name) <= 63
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
        assert name.startswith("test-something-param-with-odd-chars")
