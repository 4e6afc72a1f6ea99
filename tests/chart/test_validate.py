"""Every object the chart renders is valid Kubernetes: offline against the OpenAPI schemas
(kubernetes-validate, strict: no unknown field) and against a real v1.20 kube-apiserver, applied
server-side with dry-run (so admission, defaulting and validation run but nothing is stored).

The PodMonitor is left out of both: its CRD ships with neither; ``test_render`` checks its shape.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from tests.chart import SCENARIOS, TOKENS, Manifest, Scenario

# Kinds whose definitions kubernetes-validate and the test API server do not have.
CUSTOM_KINDS = frozenset({("monitoring.coreos.com/v1", "PodMonitor")})
FIELD_MANAGER = "agent-stack-chart-test"
ALL_OPTIONS_SET_ARGS = (
    *TOKENS,
    "--set",
    "metrics.service.enabled=true",
    "--set",
    "rollOnPolicyChange=true",
    "--set-json",
    'imagePullSecrets=[{"name":"registry"}]',
    "--set-json",
    'affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":'
    '[{"matchExpressions":[{"key":"kubernetes.io/os","operator":"In","values":["linux"]}]}]}}}',
    "--set-json",
    'controllerEnv=[{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}]',
)
VALIDATED_SCENARIOS = (
    *SCENARIOS,
    Scenario("all-options", ("upstream.yaml", "policies-inline.yaml"), ALL_OPTIONS_SET_ARGS),
)


def is_custom(manifest: Manifest) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS


def newest_schema_version() -> str:
    """The newest Kubernetes version kubernetes-validate ships schemas for."""
    version: str = kubernetes_validate.utils.latest_version()
    return version


@pytest.mark.parametrize("scenario", VALIDATED_SCENARIOS, ids=lambda s: s.name)
def test_rendered_objects_pass_strict_openapi_validation(scenario: Scenario) -> None:
    version = newest_schema_version()
    checked = 0
    for manifest in scenario.render():
        if is_custom(manifest):
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message} at {list(error.path)}"
            )
        checked += 1
    assert checked >= 5


def server_side_dry_run(api: k8s_client.ApiClient, manifest: Manifest) -> dict[str, Any]:
    """Apply ``manifest`` server-side with dryRun=All (as `helm install` with server-side apply would)."""
    dynamic = DynamicClient(api)  # type: ignore[no-untyped-call]
    resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    response = dynamic.server_side_apply(  # type: ignore[no-untyped-call]
        resource,
        body=manifest,
        namespace=manifest["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        dry_run="All",
    )
    result: dict[str, Any] = response.to_dict()
    return result


@pytest.mark.parametrize("scenario", VALIDATED_SCENARIOS, ids=lambda s: s.name)
def test_rendered_objects_are_accepted_by_the_api_server(
    scenario: Scenario, kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    manifests = [m for m in scenario.render(namespace=kube_namespace) if not is_custom(m)]
    for manifest in manifests:
        try:
            stored = server_side_dry_run(kube_api, manifest)
        except ApiException as error:
            pytest.fail(f"API server refused {manifest['kind']}/{manifest['metadata']['name']}: {error.body}")
        assert stored["metadata"]["name"] == manifest["metadata"]["name"]
        assert stored["metadata"]["namespace"] == kube_namespace
    # dryRun=All stores nothing: the namespace is still empty of the chart's objects.
    leftover = k8s_client.CoreV1Api(kube_api).list_namespaced_config_map(kube_namespace).items
    names = [c.metadata.name for c in leftover if c.metadata is not None]
    assert [name for name in names if name != "kube-root-ca.crt"] == []


def test_an_invalid_object_is_refused_by_the_dry_run(
    kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    """The dry run is not a rubber stamp: a pod spec the API server cannot accept is refused."""
    (deployment,) = [m for m in SCENARIOS[0].render(namespace=kube_namespace) if m["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    with pytest.raises(ApiException) as refused:
        server_side_dry_run(kube_api, deployment)
    assert refused.value.status == 422


def test_roles_in_extra_namespaces_are_accepted(kube_api: k8s_client.ApiClient, kube_namespace: str) -> None:
    core = k8s_client.CoreV1Api(kube_api)
    extra = f"{kube_namespace[:56]}-jobs"
    core.create_namespace(k8s_client.V1Namespace(metadata=k8s_client.V1ObjectMeta(name=extra)))
    try:
        scenario = Scenario("extra-namespaces", (), (*TOKENS, "--set", f"rbac.extraNamespaces={{{extra}}}"))
        rbac = [m for m in scenario.render(namespace=kube_namespace) if m["kind"] in {"Role", "RoleBinding"}]
        assert sorted({m["metadata"]["namespace"] for m in rbac}) == sorted({kube_namespace, extra})
        for manifest in rbac:
            server_side_dry_run(kube_api, manifest)
    finally:
        core.delete_namespace(extra, propagation_policy="Background")
