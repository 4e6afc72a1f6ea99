"""The Kubernetes adapters need no permission beyond ``engine.kube.permissions.controller_permissions``.

The test grants a user exactly those rules in a namespace (a Role and RoleBinding made from the tuple
the Helm chart is checked against), then drives every KubeClient call and both informers as that user
through impersonation. Any other verb would be refused with 403 and fail the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from engine.kube.client import KubeAPIError, KubeClient
from engine.kube.informer import Informer
from engine.kube.permissions import controller_permissions
from tests.harness.cluster import KubeCluster
from tests.integration.kube import WAIT_SECONDS, eventually

USER = "agent-stack-controller-under-test"
LABELS = {
    "buildkite.com/job-uuid": "0190f3a4-5b6c-7d8e-9f00-112233445566",
    "buildkite.com/controller-id": "rbac",
}
SELECTOR = "buildkite.com/controller-id=rbac"


def grant_controller_role(kube_api: k8s_client.ApiClient, namespace: str, agent_token_secret: str) -> None:
    rbac: Any = k8s_client.RbacAuthorizationV1Api(kube_api)
    rules = [
        {
            "apiGroups": [rule.api_group],
            "resources": [rule.resource],
            "verbs": list(rule.verbs),
            **({"resourceNames": list(rule.resource_names)} if rule.resource_names else {}),
        }
        for rule in controller_permissions(agent_token_secret)
    ]
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "controller"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "controller"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "controller"},
            "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )


@pytest.fixture
def restricted_api(kube_cluster: KubeCluster) -> Iterator[Any]:
    api: Any = kube_cluster.api_client()
    api.set_default_header("Impersonate-User", USER)
    with contextlib.closing(api):
        yield api


async def test_every_call_works_with_only_the_controller_permissions(
    kube_api: k8s_client.ApiClient, restricted_api: Any, kube_namespace: str
) -> None:
    admin: Any = k8s_client.CoreV1Api(kube_api)
    token = base64.b64encode(b"agent-token-value").decode()
    admin.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "agent"}, "data": {"BUILDKITE_AGENT_TOKEN": token}}
    )
    admin.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "graphql-token"}, "data": {"BUILDKITE_TOKEN": token}}
    )
    grant_controller_role(kube_api, kube_namespace, "agent")
    kube = KubeClient(restricted_api, kube_namespace)

    async def granted() -> bool:
        try:
            await kube.read_agent_token("agent")
        except KubeAPIError as error:
            if error.status == 403:
                return False
            raise
        return True

    await eventually("the Role to take effect", granted)
    restricted_core: Any = k8s_client.CoreV1Api(restricted_api)
    with pytest.raises(ApiException) as refused:
        restricted_core.list_namespaced_secret(kube_namespace)
    assert refused.value.status == 403, "the user must really be restricted"
    with pytest.raises(ApiException) as other_secret:
        restricted_core.read_namespaced_secret("graphql-token", kube_namespace)
    assert other_secret.value.status == 403, "the controller may read the agent token's Secret only"

    jobs = Informer(restricted_api, "jobs", kube_namespace, SELECTOR, name="jobs")
    pods = Informer(restricted_api, "pods", kube_namespace, SELECTOR, name="pods")
    runs = [asyncio.create_task(jobs.run()), asyncio.create_task(pods.run())]
    try:
        await asyncio.wait_for(asyncio.gather(jobs.wait_synced(), pods.wait_synced()), WAIT_SECONDS)

        await kube.create_job(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "rbac-job", "labels": LABELS},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": LABELS},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "agent", "image": "busybox:1.36"}],
                        },
                    },
                },
            }
        )
        assert await kube.get_job("rbac-job") is not None
        await kube.set_job_active_deadline("rbac-job", 600)
        assert await kube.get_pod_template("no-such-template") is None  # a get: 404, not 403
        admin.create_namespaced_pod_template(
            kube_namespace,
            {
                "metadata": {"name": "tpl"},
                "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
            },
        )
        found = await kube.get_pod_template("tpl")
        assert found is not None
        assert found["metadata"]["name"] == "tpl"

        async def first_pod() -> dict[str, Any] | None:
            return next(iter(pods.objects()), None)

        pod = await eventually("the informer to see the Job's pod", first_pod)

        async def job_names() -> list[str]:
            return [obj["metadata"]["name"] for obj in jobs.objects()]

        assert await eventually("the informer to see the Job", job_names) == ["rbac-job"]

        assert "Couldn't get events" not in await kube.events_table("Job", "rbac-job")
        assert "Couldn't get events" not in await kube.events_table("Pod", pod["metadata"]["name"])
        await kube.evict_pod(pod)
        second = await eventually("a replacement pod", lambda: _other_pod(pods, pod["metadata"]["name"]))
        await kube.delete_pod(second["metadata"]["name"])
        assert (jobs.stats.errors, pods.stats.errors) == (0, 0)
    finally:
        for run in runs:
            run.cancel()
        for run in runs:
            with contextlib.suppress(asyncio.CancelledError):
                await run


async def _other_pod(pods: Informer, name: str) -> dict[str, Any] | None:
    """A pod in the informer's cache other than ``name`` (the job controller replaces an evicted pod)."""
    return next((obj for obj in pods.objects() if obj["metadata"]["name"] != name), None)
