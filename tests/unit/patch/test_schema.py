"""The merge keys and strategies the engine uses are Kubernetes' own (v1.20 struct tags)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.core.patch import CONTAINER, JOB, POD_SPEC, schema_for
from engine.core.patch.schema import EPHEMERAL_CONTAINER, FieldSchema, TypeSchema


def _field(schema: TypeSchema, *names: str) -> FieldSchema:
    """The field at ``names``, walking through object and list-element schemas."""
    current: TypeSchema | None = schema
    found: FieldSchema | None = None
    for name in names:
        assert current is not None, f"no schema below {name!r}"
        found = current.field(name)
        assert found is not None, f"{name!r} is not declared"
        current = found.schema
    assert found is not None
    return found


KEYED_LISTS = [
    (JOB, ("metadata", "ownerReferences"), "uid"),
    (JOB, ("spec", "template", "metadata", "ownerReferences"), "uid"),
    (JOB, ("status", "conditions"), "type"),
    (POD_SPEC, ("containers",), "name"),
    (POD_SPEC, ("initContainers",), "name"),
    (POD_SPEC, ("ephemeralContainers",), "name"),
    (POD_SPEC, ("volumes",), "name"),
    (POD_SPEC, ("imagePullSecrets",), "name"),
    (POD_SPEC, ("hostAliases",), "ip"),
    (POD_SPEC, ("topologySpreadConstraints",), "topologyKey"),
    (CONTAINER, ("env",), "name"),
    (CONTAINER, ("volumeMounts",), "mountPath"),
    (CONTAINER, ("volumeDevices",), "devicePath"),
    (CONTAINER, ("ports",), "containerPort"),
    (EPHEMERAL_CONTAINER, ("env",), "name"),
    (JOB, ("spec", "template", "spec", "containers", "env"), "name"),
    (JOB, ("spec", "template", "spec", "initContainers", "volumeMounts"), "mountPath"),
]


@pytest.mark.parametrize(("schema", "names", "merge_key"), KEYED_LISTS, ids=str)
def test_keyed_lists_merge_on_their_kubernetes_merge_key(
    schema: TypeSchema, names: tuple[str, ...], merge_key: str
) -> None:
    field = _field(schema, *names)
    assert field.merge_list
    assert field.merge_key == merge_key


ATOMIC_LISTS = [
    (POD_SPEC, ("tolerations",)),
    (POD_SPEC, ("readinessGates",)),
    (POD_SPEC, ("securityContext", "supplementalGroups")),
    (
        POD_SPEC,
        ("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"),
    ),
    (POD_SPEC, ("affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution")),
    (CONTAINER, ("command",)),
    (CONTAINER, ("args",)),
    (CONTAINER, ("envFrom",)),
    (CONTAINER, ("securityContext", "capabilities", "add")),
    (CONTAINER, ("livenessProbe", "exec", "command")),
    (EPHEMERAL_CONTAINER, ("ports",)),
    (JOB, ("metadata", "managedFields")),
    (JOB, ("spec", "selector", "matchExpressions")),
]


@pytest.mark.parametrize(("schema", "names"), ATOMIC_LISTS, ids=str)
def test_lists_without_a_patch_strategy_are_atomic(schema: TypeSchema, names: tuple[str, ...]) -> None:
    field = _field(schema, *names)
    assert not field.merge_list
    assert field.merge_key is None


def test_finalizers_merge_as_a_set_of_primitives() -> None:
    field = _field(JOB, "metadata", "finalizers")
    assert field.merge_list
    assert field.merge_key is None


def test_volumes_carry_the_retain_keys_strategy() -> None:
    assert _field(POD_SPEC, "volumes").retain_keys
    assert not _field(POD_SPEC, "containers").retain_keys


@pytest.mark.parametrize(("kind", "schema"), [("Job", JOB), ("PodSpec", POD_SPEC), ("Container", CONTAINER)])
def test_schema_for_names_the_rule_targets(kind: str, schema: TypeSchema) -> None:
    assert schema_for(kind) is schema


def test_schema_for_an_unknown_kind_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"no strategic merge schema for kind 'Deployment' \(known: .*Job"):
        schema_for("Deployment")


# The OpenAPI documents of kubernetes-validate (a dev dependency) carry the same tags as
# ``x-kubernetes-patch-*``; the oldest it ships is v1.25. These are the v1.21-v1.25 differences.
_CHANGED_SINCE_V1_20 = {
    "Job.spec.podFailurePolicy.rules": "added in v1.25",
    "Job.spec.template.spec.topologySpreadConstraints.matchLabelKeys": "added in v1.25",
    "Job.status.uncountedTerminatedPods.failed": "added in v1.21",
    "Job.status.uncountedTerminatedPods.succeeded": "added in v1.21",
    "Job.spec.template.spec.ephemeralContainers.ports": "v1.20 EphemeralContainerCommon.ports has no tag",
}


def _openapi_definitions() -> dict[str, Any]:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    assert kubernetes_validate.__file__ is not None
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.25.0-local"
    definitions = root / "_definitions.json"
    if not definitions.exists():
        pytest.skip("kubernetes-validate ships no v1.25 schema")
    loaded: dict[str, Any] = json.loads(definitions.read_text())["$defs"]
    return loaded


def _list_disagreements(
    definitions: dict[str, Any], name: str, schema: TypeSchema | None, path: str
) -> list[str]:
    found: list[str] = []
    for prop, spec in definitions[name].get("properties", {}).items():
        field = schema.field(prop) if schema is not None else None
        types = spec.get("type")
        is_list = "array" in (types if isinstance(types, list) else [types])
        here = f"{path}.{prop}"
        if is_list:
            strategies = spec.get("x-kubernetes-patch-strategy", "").split(",")
            expected = ("merge" in strategies, spec.get("x-kubernetes-patch-merge-key"))
            if field is None or (field.merge_list, field.merge_key) != expected:
                found.append(here)
        ref = spec.get("$ref") or spec.get("items", {}).get("$ref")
        descend = not is_list or (field is not None and field.merge_list)
        if ref and descend:
            found += _list_disagreements(
                definitions, ref.rsplit("/", 1)[-1], field.schema if field else None, here
            )
    return found


def test_every_list_under_job_matches_the_kubernetes_openapi_tags() -> None:
    """Walks Job through every object and merged list; each list must be declared with the same tags."""
    definitions = _openapi_definitions()
    disagreements = _list_disagreements(definitions, "io.k8s.api.batch.v1.Job", JOB, "Job")
    assert sorted(disagreements) == sorted(_CHANGED_SINCE_V1_20)
