"""Every golden Job is one a real Kubernetes v1.20 API server accepts.

Each ``tests/golden/*/expected.yaml`` is created with server-side dry-run (admission, defaulting and
validation run; nothing is stored) in the test namespace. The server must accept it and must not
silently drop or change anything the manifest says (a v1.20 server prunes fields it does not know or
whose feature gate is off, which would make a golden file promise something no cluster delivers).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from tests.golden import GoldenFixture, admitted_fixtures

ADMITTED = admitted_fixtures()


def differences(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``stored`` does not contain ``sent``: server defaults may add keys, never drop or change one.

    An empty string the server leaves out (Go's ``omitempty``, e.g. ``BUILDKITE_IGNORED_ENV=""``) counts
    as kept: Kubernetes reads the two the same.
    """
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path or '.'}: sent a map, server has {stored!r}"]
        found: list[str] = []
        for key, value in sent.items():
            if key not in stored:
                if value == "":
                    continue  # an empty string is how Go's omitempty spells "unset": the same thing
                found.append(f"{path}.{key}: dropped by the server")
            else:
                found += differences(value, stored[key], f"{path}.{key}")
        return found
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f"{path}: sent {len(sent)} items, server has {stored!r}"]
        return [
            problem for i, item in enumerate(sent) for problem in differences(item, stored[i], f"{path}[{i}]")
        ]
    return [] if sent == stored else [f"{path}: sent {sent!r}, server has {stored!r}"]


def batch_api(api: k8s_client.ApiClient) -> Any:
    """The batch/v1 client, untyped: it takes plain dicts as bodies, which its stubs do not say."""
    return k8s_client.BatchV1Api(api)


@pytest.mark.parametrize("fixture", ADMITTED, ids=[fixture.name for fixture in ADMITTED])
def test_expected_job_is_accepted_by_the_api_server(
    fixture: GoldenFixture, kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    check_accepted(fixture, kube_api, kube_namespace)


def check_accepted(fixture: GoldenFixture, kube_api: k8s_client.ApiClient, kube_namespace: str) -> None:
    """The API server takes the fixture's expected Job (a dry-run create) exactly as sent."""
    manifest = fixture.expected_manifest()
    manifest["metadata"]["namespace"] = kube_namespace
    batch_v1 = batch_api(kube_api)
    try:
        response = batch_v1.create_namespaced_job(
            kube_namespace, manifest, dry_run="All", _preload_content=False
        )
    except ApiException as rejected:
        pytest.fail(f"{fixture.name}: rejected ({rejected.status}): {rejected.body}", pytrace=False)
    stored = json.loads(response.data)
    assert differences(manifest, stored) == []
    assert batch_v1.list_namespaced_job(kube_namespace).items == []  # dry run: nothing stored


def test_the_server_check_can_fail(kube_api: k8s_client.ApiClient, kube_namespace: str) -> None:
    """A golden Job broken like upstream's invalid.yaml fixture (mounting a missing volume) is refused."""
    manifest = ADMITTED[0].expected_manifest()
    manifest["metadata"]["namespace"] = kube_namespace
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"].append({"name": "this-doesnt-exist", "mountPath": "/nowhere"})
    with pytest.raises(ApiException) as rejected:
        batch_api(kube_api).create_namespaced_job(kube_namespace, manifest, dry_run="All")
    assert rejected.value.status == 422
    causes = json.loads(rejected.value.body or "{}")["details"]["causes"]
    assert {
        "field": "spec.template.spec.containers[0].volumeMounts[1].name",
        "message": 'Not found: "this-doesnt-exist"',
    } in [{"field": cause.get("field"), "message": cause.get("message")} for cause in causes]
