"""KubeClient against the real kube-apiserver: what it sends is accepted, what it gets back is read right,
and each kind of refusal becomes the error class the controller reacts to."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from engine.kube.client import (
    AgentTokenError,
    AlreadyExistsError,
    InvalidObjectError,
    KubeAPIError,
    KubeClient,
    KubeConfigError,
    load_api_client,
)
from engine.kube.events import NO_EVENTS
from tests.harness.cluster import KubeCluster
from tests.integration.kube import block_pod_creation, eventually

TOKEN = "s3cr3t-agent-token"


def job_manifest(name: str, *, image: str | None = "busybox:1.36", parallelism: int = 1) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "command": ["true"]}
    if image is not None:
        container["image"] = image
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "client-test"}},
        "spec": {
            "backoffLimit": 0,
            "parallelism": parallelism,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def pod_manifest(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}


@pytest.fixture
def kube(kube_api: k8s_client.ApiClient, kube_namespace: str) -> KubeClient:
    return KubeClient(kube_api, kube_namespace)


@pytest.fixture
def core_v1(kube_api: k8s_client.ApiClient) -> Any:
    return k8s_client.CoreV1Api(kube_api)


def pod_exists(core_v1: Any, namespace: str, name: str) -> bool:
    try:
        core_v1.read_namespaced_pod(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


# ---- Jobs ---------------------------------------------------------------------------------------------


async def test_create_job_stores_the_manifest(kube: KubeClient, kube_namespace: str) -> None:
    manifest = job_manifest("created", parallelism=0)
    await kube.create_job(manifest)

    stored = await kube.get_job("created")
    assert stored is not None
    assert stored["metadata"]["namespace"] == kube_namespace
    assert stored["metadata"]["uid"]
    assert stored["metadata"]["labels"] == {"app": "client-test"}
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert stored["spec"]["selector"]["matchLabels"]["controller-uid"], "server-set fields are there"


async def test_create_job_uses_the_manifest_namespace(
    kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    elsewhere = KubeClient(kube_api, "default")
    manifest = job_manifest("placed", parallelism=0)
    manifest["metadata"]["namespace"] = kube_namespace
    await elsewhere.create_job(manifest)
    assert await KubeClient(kube_api, kube_namespace).get_job("placed") is not None
    assert await elsewhere.get_job("placed") is None


async def test_names_are_quoted_into_the_path(kube: KubeClient) -> None:
    await kube.create_job(job_manifest("target", parallelism=0))
    assert await kube.get_job("target") is not None
    assert await kube.get_job("target?watch=true") is None, "a name never becomes a query string"
    assert await kube.get_job("../jobs/target") is None, "nor another path"


async def test_creating_a_job_twice_is_already_exists(kube: KubeClient) -> None:
    await kube.create_job(job_manifest("twice", parallelism=0))
    with pytest.raises(AlreadyExistsError, match=r'jobs\.batch "twice" already exists') as caught:
        await kube.create_job(job_manifest("twice", parallelism=0))
    assert (caught.value.status, caught.value.reason) == (409, "AlreadyExists")


async def test_an_invalid_job_is_rejected_with_the_api_message(kube: KubeClient) -> None:
    with pytest.raises(InvalidObjectError) as caught:
        await kube.create_job(job_manifest("no-image", image=None))
    message = str(caught.value)
    assert message.startswith('Job.batch "no-image" is invalid: ')
    assert "spec.template.spec.containers[0].image: Required value" in message
    assert "\n" not in message


async def test_get_job_of_a_missing_job_is_none(kube: KubeClient) -> None:
    assert await kube.get_job("never-created") is None


async def test_set_job_active_deadline(kube: KubeClient) -> None:
    await kube.create_job(job_manifest("deadline", parallelism=0))
    await kube.set_job_active_deadline("deadline", 60)
    job = await kube.get_job("deadline")
    assert job is not None
    assert job["spec"]["activeDeadlineSeconds"] == 60


async def test_set_job_active_deadline_on_a_missing_job_is_not_found(kube: KubeClient) -> None:
    with pytest.raises(KubeAPIError) as caught:
        await kube.set_job_active_deadline("missing", 1)
    assert (caught.value.status, caught.value.reason) == (404, "NotFound")
    assert 'jobs.batch "missing" not found' in str(caught.value)


# ---- the agent token ----------------------------------------------------------------------------------


def make_secret(core_v1: Any, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": encoded})


async def test_read_agent_token(kube: KubeClient, core_v1: Any, kube_namespace: str) -> None:
    make_secret(core_v1, kube_namespace, "agent-token", {"BUILDKITE_AGENT_TOKEN": TOKEN, "other": "x"})
    assert await kube.read_agent_token("agent-token") == TOKEN


@pytest.mark.parametrize("data", [{"other": TOKEN}, {"BUILDKITE_AGENT_TOKEN": ""}], ids=["missing", "empty"])
async def test_a_secret_without_a_token_is_an_empty_token_error(
    kube: KubeClient, core_v1: Any, kube_namespace: str, data: dict[str, str]
) -> None:
    make_secret(core_v1, kube_namespace, "agent-token", data)
    with pytest.raises(AgentTokenError, match="agent token is empty") as caught:
        await kube.read_agent_token("agent-token")
    assert TOKEN not in str(caught.value)


async def test_a_missing_secret_is_not_found(kube: KubeClient) -> None:
    with pytest.raises(KubeAPIError, match='secrets "absent" not found') as caught:
        await kube.read_agent_token("absent")
    assert caught.value.status == 404


# ---- events -------------------------------------------------------------------------------------------


async def test_events_table_names_why_a_job_has_no_pod(
    kube: KubeClient, core_v1: Any, kube_namespace: str
) -> None:
    block_pod_creation(core_v1, kube_namespace)
    await kube.create_job(job_manifest("blocked"))

    async def table_with_failure() -> str | None:
        table = await kube.events_table("Job", "blocked")
        return table if "FailedCreate" in table else None

    table = await eventually("a FailedCreate event", table_with_failure)
    header = table.splitlines()[1]
    for column in ("LAST EVENT", "REPEATED", "TYPE", "REASON", "MESSAGE"):
        assert column in header
    assert "Warning" in table
    assert "exceeded quota: no-pods" in table


async def test_events_table_without_events(kube: KubeClient) -> None:
    assert await kube.events_table("Job", "quiet") == NO_EVENTS


# ---- pods ---------------------------------------------------------------------------------------------


async def test_evict_pod_removes_it_and_a_gone_pod_is_fine(
    kube: KubeClient, core_v1: Any, kube_namespace: str
) -> None:
    pod = core_v1.api_client.sanitize_for_serialization(
        core_v1.create_namespaced_pod(kube_namespace, pod_manifest("evictee"))
    )
    await kube.evict_pod(pod)
    assert not pod_exists(core_v1, kube_namespace, "evictee")
    await kube.evict_pod(pod)


async def test_delete_pod_at_once_and_a_gone_pod_is_fine(
    kube: KubeClient, core_v1: Any, kube_namespace: str
) -> None:
    core_v1.create_namespaced_pod(kube_namespace, pod_manifest("doomed"))
    await kube.delete_pod("doomed")
    assert not pod_exists(core_v1, kube_namespace, "doomed")
    await kube.delete_pod("doomed")


# ---- the transport ------------------------------------------------------------------------------------


async def test_every_request_asks_the_configuration_for_a_fresh_token(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    """Writes (sent as bytes, outside the generated methods) and reads authenticate the way the official
    client does: the configuration's refresh hook runs before each request, as it does for exec and
    in-cluster tokens that expire."""
    configuration = k8s_client.Configuration(
        host=kube_cluster.server, api_key={"BearerToken": "expired"}, api_key_prefix={"BearerToken": "Bearer"}
    )
    configuration.ssl_ca_cert = str(kube_cluster.ca_cert_path)
    refreshed: list[int] = []

    def refresh(config: Any) -> None:
        refreshed.append(1)
        config.api_key["BearerToken"] = kube_cluster.token

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]  # typed as None in the client
    kube = KubeClient(k8s_client.ApiClient(configuration), kube_namespace)
    await kube.create_job(job_manifest("refreshed", parallelism=0))
    await kube.set_job_active_deadline("refreshed", 30)
    job = await kube.get_job("refreshed")
    assert job is not None
    assert job["spec"]["activeDeadlineSeconds"] == 30
    assert len(refreshed) == 3


async def test_a_rejected_token_is_unauthorized_on_writes_and_reads(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    configuration = k8s_client.Configuration(
        host=kube_cluster.server, api_key={"BearerToken": "wrong"}, api_key_prefix={"BearerToken": "Bearer"}
    )
    configuration.ssl_ca_cert = str(kube_cluster.ca_cert_path)
    kube = KubeClient(k8s_client.ApiClient(configuration), kube_namespace)
    with pytest.raises(KubeAPIError) as writing:
        await kube.create_job(job_manifest("unauthorized", parallelism=0))
    with pytest.raises(KubeAPIError) as reading:
        await kube.get_job("unauthorized")
    for caught in (writing, reading):
        assert caught.value.status == 401
        assert "\n" not in str(caught.value)
        assert "wrong" not in str(caught.value)


# ---- configuration ------------------------------------------------------------------------------------


# The harness kubeconfig skips TLS verification, which urllib3 warns about on every request.
_INSECURE_OK = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@_INSECURE_OK
async def test_load_api_client_from_a_kubeconfig(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    api: Any = load_api_client(str(kube_cluster.kubeconfig_path))
    try:
        kube = KubeClient(api, kube_namespace)
        await kube.create_job(job_manifest("via-kubeconfig", parallelism=0))
        assert await kube.get_job("via-kubeconfig") is not None
    finally:
        api.close()


@_INSECURE_OK
async def test_load_api_client_reads_kubeconfig_from_the_environment(
    kube_cluster: KubeCluster, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig_path))
    api: Any = load_api_client()
    try:
        assert await KubeClient(api, kube_namespace).get_job("nothing") is None
    finally:
        api.close()


def test_load_api_client_with_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(KubeConfigError, match="cannot load Kubernetes configuration from") as caught:
        load_api_client(str(missing))
    assert str(missing) in str(caught.value)
    assert "\n" not in str(caught.value)
