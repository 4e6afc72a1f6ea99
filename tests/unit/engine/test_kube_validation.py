"""The engine's Kubernetes API check of built Jobs, and of what policy patches spell out."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from engine.core.kube_validation import patch_field_problems, pointer_problems, validate_job
from engine.model.jsonvalue import render_path
from tests.golden import admitted_fixtures

GOLDEN = admitted_fixtures()
BASE = GOLDEN[0].expected_manifest()


def problems(manifest: Any) -> list[str]:
    return [f"{render_path(v.path)}: {v.message}" for v in validate_job(manifest)]


def mutated(change: str, value: Any) -> dict[str, Any]:
    """BASE with ``value`` at the dotted/indexed ``change`` path (``None`` deletes the key)."""
    manifest = copy.deepcopy(BASE)
    *parents, last = [int(part) if part.isdigit() else part for part in change.split("/")]
    node: Any = manifest
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return manifest


@pytest.mark.parametrize("fixture", GOLDEN, ids=[f.name for f in GOLDEN])
def test_every_golden_job_is_valid(fixture: Any) -> None:
    assert problems(fixture.expected_manifest()) == []


POD = "spec/template/spec"
CASES = [
    (
        f"{POD}/nodeSelectr",
        {"a": "b"},
        'unknown field "nodeSelectr" in PodSpec (did you mean "nodeSelector"?)',
    ),
    (f"{POD}/containers/0/name", "", '"" is not a valid name'),
    (f"{POD}/containers/0/name", "Main", '"Main" is not a valid name'),
    (f"{POD}/containers/2/name", "agent", 'duplicate container name "agent"'),
    (f"{POD}/containers/0/image", "", "required: a container needs an image"),
    (f"{POD}/containers/0/imagePullPolicy", "Sometimes", "must be one of Always, IfNotPresent, Never"),
    (f"{POD}/containers/0/volumeMounts/0/name", "nowhere", 'no volume named "nowhere" in the pod'),
    (f"{POD}/containers/0/env/0/name", "1BAD", "is not a valid environment variable name"),
    (f"{POD}/containers/0/env/0/name", ["X"], "expected a string, got a list"),  # unhashable: no crash
    (f"{POD}/containers/0/ports", [{"containerPort": 70000}], "must be 1-65535, got 70000"),
    (f"{POD}/containers/0/ports", [{"containerPort": "80"}], "expected a 32-bit integer"),
    (f"{POD}/restartPolicy", "Always", "a Job's pod must restart Never or OnFailure"),
    (f"{POD}/restartPolicy", None, "not unset (Always)"),
    (f"{POD}/containers", [], "a pod needs at least one container"),
    (
        f"{POD}/volumes/0/hostPath",
        {"path": "/x"},
        "a volume may have only one source, got emptyDir, hostPath",
    ),
    (f"{POD}/volumes/0/hostPath", {}, "HostPathVolumeSource.path"),
    (f"{POD}/terminationGracePeriodSeconds", 1.5, "expected a 64-bit integer, got the number 1.5"),
    (f"{POD}/containers/0/resources", {"limits": {"cpu": "lots"}}, "expected a quantity"),
    ("metadata/labels/team", 3, "expected a string, got the number 3"),
    ("metadata/labels/team", "a b", '"a b" is not a valid label value'),
    ("metadata/labels/Bad Key!", "x", '"Bad Key!" is not a valid label key'),
    ("spec/template/metadata/annotations/ok", ["not", "a", "string"], "expected a string, got a list"),
    ("metadata/name", "buildkite-" + "x" * 60, "at most 63 characters"),
    ("metadata/name", "Upper", '"Upper" is not a valid name'),
    ("metadata/namespace", "a.b", '"a.b" is not a valid name'),
    ("apiVersion", "v1", 'must be "batch/v1"'),
    ("kind", "Pod", 'must be "Job"'),
    ("spec/backoffLimit", True, "expected a 32-bit integer, got the boolean true"),
    ("status", {"active": 1}, 'unknown field "status" in Job'),
]


@pytest.mark.parametrize(("change", "value", "expected"), CASES, ids=[f"{c}={v!r}" for c, v, _ in CASES])
def test_a_job_the_api_would_refuse_or_prune_is_reported_at_its_path(
    change: str, value: Any, expected: str
) -> None:
    found = problems(mutated(change, value))
    assert any(expected in problem for problem in found), found


def test_a_label_key_prefix_must_be_a_lowercase_dns_subdomain() -> None:
    manifest = copy.deepcopy(BASE)
    manifest["metadata"]["labels"]["UPPER.example.com/x"] = "x"
    assert problems(manifest) == [
        'metadata.labels["UPPER.example.com/x"]: "UPPER.example.com/x" is not a valid label key: its prefix '
        '"UPPER.example.com" must be a DNS subdomain (lowercase, like example.com)'
    ]


def test_annotations_may_not_exceed_256_kib() -> None:
    found = problems(mutated("metadata/annotations/big", "x" * (256 * 1024)))
    assert any("annotations may hold at most 262144 bytes" in problem for problem in found)


def test_null_values_decode_as_unset_and_are_accepted() -> None:
    manifest = copy.deepcopy(BASE)
    manifest["spec"]["template"]["spec"]["nodeSelector"] = None
    assert problems(manifest) == []


def test_an_unsupported_version_is_refused_by_name() -> None:
    supported = r"\(supported: 1\.20, 1\.29, 1\.34\)"
    with pytest.raises(ValueError, match=r"unsupported Kubernetes version '1\.99' " + supported):
        validate_job(BASE, "1.99")


def test_patch_fields_are_checked_where_the_patch_spells_them_out() -> None:
    patch = yaml.safe_load(
        """
        spec:
          template:
            spec:
              nodeSelectr: {a: b}
              nodeSelector: {any-key: fine}
              containers:
              - {name: x, imagePullPolcy: Always, $patch: merge}
              - ${{ vars.container }}
              $setElementOrder/containers: [{name: x}]
              volumes: '${{ vars.volumes }}'
        """
    )
    assert patch_field_problems(patch, "Job") == [
        (
            ("spec", "template", "spec", "nodeSelectr"),
            'unknown field "nodeSelectr" in PodSpec (did you mean "nodeSelector"?)',
        ),
        (
            ("spec", "template", "spec", "containers", 0, "imagePullPolcy"),
            'unknown field "imagePullPolcy" in Container (did you mean "imagePullPolicy"?)',
        ),
    ]
    assert patch_field_problems({"resourcs": {}}, "Container") == [
        (("resourcs",), 'unknown field "resourcs" in Container (did you mean "resources"?)')
    ]


def test_json_pointers_are_resolved_through_the_api() -> None:
    assert pointer_problems("/spec/template/spec/tolerations/-", "Job") == ("Toleration", None)
    assert pointer_problems("/spec/template/metadata/labels/any~1key", "Job") == ("string", None)
    assert pointer_problems("/spec/bakoffLimit", "Job")[1] == (
        'unknown field "bakoffLimit" in JobSpec (did you mean "backoffLimit"?)'
    )
    assert pointer_problems("/env/x", "Container")[1] == '"x" is not a list index'


# ---- the newer versions -----------------------------------------------------------------------------


def _with_native_sidecar(policy: Any = "Always", *, regular: bool = False) -> dict[str, Any]:
    manifest = copy.deepcopy(BASE)
    pod = manifest["spec"]["template"]["spec"]
    if regular:
        pod["containers"][0]["restartPolicy"] = policy
    else:
        pod["initContainers"].append({"name": "sidecar-0", "image": "nginx:1", "restartPolicy": policy})
    return manifest


def version_problems(manifest: Any, version: str) -> list[str]:
    return [f"{render_path(v.path)}: {v.message}" for v in validate_job(manifest, version)]


def test_a_native_sidecar_is_unknown_to_1_20_and_fine_from_1_29() -> None:
    manifest = _with_native_sidecar()
    assert version_problems(manifest, "1.20") == [
        'spec.template.spec.initContainers[1].restartPolicy: unknown field "restartPolicy" in Container of '
        "Kubernetes 1.20 (config kubernetes-version); Kubernetes 1.29 and 1.34 has it"
    ]
    assert version_problems(manifest, "1.29") == []
    assert version_problems(manifest, "1.34") == []


@pytest.mark.parametrize(
    ("policy", "regular", "message"),
    [
        ("OnFailure", False, 'restartPolicy must be "Always", got the string "OnFailure"'),
        ("Always", True, "only init containers may set restartPolicy"),
    ],
)
def test_only_an_init_container_may_restart_always(policy: str, regular: bool, message: str) -> None:
    found = version_problems(_with_native_sidecar(policy, regular=regular), "1.29")
    assert len(found) == 1
    assert message in found[0]


def test_pod_level_resources_need_1_34() -> None:
    manifest = copy.deepcopy(BASE)
    manifest["spec"]["template"]["spec"]["resources"] = {"limits": {"cpu": "1"}}
    assert version_problems(manifest, "1.29") == [
        'spec.template.spec.resources: unknown field "resources" in PodSpec of Kubernetes 1.29 '
        "(config kubernetes-version); Kubernetes 1.34 has it"
    ]
    assert version_problems(manifest, "1.34") == []


def test_policies_may_spell_out_a_field_of_any_supported_version() -> None:
    """When policies load, the version is not known yet: a field of any supported version is fine,
    a field of none is a typo."""
    patch = {"restartPolicy": "Always", "restartPolicyy": "Always"}
    assert [message for _, message in patch_field_problems(patch, "Container")] == [
        'unknown field "restartPolicyy" in Container (did you mean "restartPolicy"?)'
    ]
    assert next(message for _, message in patch_field_problems(patch, "Container", "1.20")).startswith(
        'unknown field "restartPolicy" in Container'
    )
