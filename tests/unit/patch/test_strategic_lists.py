"""Strategic merge on lists: keyed merges and their order, atomic lists, sets and list directives."""

from __future__ import annotations

import pytest

from engine.core.patch import CONTAINER, JOB, POD_SPEC, PatchError, strategic_merge
from engine.model.jsonvalue import JSON


def _names(items: list[dict[str, JSON]]) -> list[JSON]:
    return [item.get("name") for item in items]


def _containers(*names: str) -> list[dict[str, JSON]]:
    return [{"name": name, "image": f"{name}:1"} for name in names]


# --- order of merged keyed lists ----------------------------------------------------------------


def test_a_new_element_goes_before_the_documents_elements() -> None:
    result, _ = strategic_merge(
        {"containers": _containers("a", "b", "c")}, {"containers": [{"name": "x"}]}, POD_SPEC
    )
    assert _names(result["containers"]) == ["x", "a", "b", "c"]


def test_a_new_element_follows_the_patch_element_before_it() -> None:
    spec = {"containers": _containers("a", "b", "c")}
    result, _ = strategic_merge(
        spec, {"containers": [{"name": "b", "image": "b:2"}, {"name": "x"}]}, POD_SPEC
    )
    assert result["containers"] == [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:2"},
        {"name": "x"},
        {"name": "c", "image": "c:1"},
    ]


def test_upstream_pod_spec_patch_adds_a_named_container_before_the_unnamed_one() -> None:
    """agent-stack-k8s ``TestPatchPodSpec``: the default pod's only container has no name."""
    spec = {"containers": [{"image": "alpine:latest"}]}
    patch = {"containers": [{"name": "my-cool-container", "image": "debian:latest"}]}
    result, _ = strategic_merge(spec, patch, POD_SPEC)
    assert result["containers"] == [
        {"name": "my-cool-container", "image": "debian:latest"},
        {"image": "alpine:latest"},
    ]


def test_elements_in_both_take_the_patch_order_and_the_others_keep_theirs() -> None:
    spec = {"containers": _containers("a", "b", "c", "d")}
    result, _ = strategic_merge(spec, {"containers": [{"name": "c"}, {"name": "a"}]}, POD_SPEC)
    assert _names(result["containers"]) == ["b", "c", "a", "d"]


# --- merge keys per field ------------------------------------------------------------------------


def test_containers_merge_by_name_and_env_inside_them_by_name() -> None:
    spec = {
        "containers": [
            {"name": "agent", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "command", "env": [{"name": "A", "value": "x"}]},
        ]
    }
    patch = {
        "containers": [{"name": "agent", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]
    }
    result, _ = strategic_merge(spec, patch, POD_SPEC)
    assert result["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert result["containers"][1] is spec["containers"][1]


@pytest.mark.parametrize(
    ("field", "key", "first", "second"),
    [
        (
            "volumeMounts",
            "mountPath",
            {"mountPath": "/w", "name": "w"},
            {"mountPath": "/w", "readOnly": True},
        ),
        ("volumeDevices", "devicePath", {"devicePath": "/d", "name": "d"}, {"devicePath": "/d", "name": "e"}),
        (
            "ports",
            "containerPort",
            {"containerPort": 80, "name": "http"},
            {"containerPort": 80, "protocol": "TCP"},
        ),
        ("env", "name", {"name": "A", "value": "1"}, {"name": "A", "value": "2"}),
    ],
)
def test_container_lists_merge_on_their_merge_key(
    field: str, key: str, first: dict[str, JSON], second: dict[str, JSON]
) -> None:
    other = {key: first[key] + 1 if isinstance(first[key], int) else first[key] + "x"}
    result, _ = strategic_merge({field: [first, other]}, {field: [second]}, CONTAINER)
    assert result[field] == [{**first, **second}, other]


@pytest.mark.parametrize(
    ("field", "key"),
    [
        ("volumes", "name"),
        ("imagePullSecrets", "name"),
        ("hostAliases", "ip"),
        ("topologySpreadConstraints", "topologyKey"),
    ],
)
def test_pod_lists_merge_on_their_merge_key(field: str, key: str) -> None:
    spec = {field: [{key: "k1", "extra": 1}, {key: "k2"}]}
    result, _ = strategic_merge(spec, {field: [{key: "k1", "more": 2}]}, POD_SPEC)
    assert result[field] == [{key: "k1", "extra": 1, "more": 2}, {key: "k2"}]


def test_owner_references_merge_by_uid() -> None:
    job = {"metadata": {"ownerReferences": [{"uid": "u1", "kind": "A"}, {"uid": "u2", "kind": "B"}]}}
    result, _ = strategic_merge(job, {"metadata": {"ownerReferences": [{"uid": "u2", "name": "n"}]}}, JOB)
    assert result["metadata"]["ownerReferences"] == [
        {"uid": "u1", "kind": "A"},
        {"uid": "u2", "kind": "B", "name": "n"},
    ]


def test_lists_nested_deep_in_a_job_use_the_pod_schema() -> None:
    job = {
        "spec": {
            "template": {"spec": {"initContainers": [{"name": "i", "volumeMounts": [{"mountPath": "/a"}]}]}}
        }
    }
    patch = {
        "spec": {
            "template": {"spec": {"initContainers": [{"name": "i", "volumeMounts": [{"mountPath": "/b"}]}]}}
        }
    }
    result, _ = strategic_merge(job, patch, JOB)
    mounts = result["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"]
    assert mounts == [{"mountPath": "/b"}, {"mountPath": "/a"}]


# --- atomic lists --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "old", "new"),
    [
        ("command", ["sh", "-c", "x"], ["bash"]),
        ("args", ["a"], ["b", "c"]),
        ("envFrom", [{"secretRef": {"name": "s"}}], [{"configMapRef": {"name": "c"}}]),
    ],
)
def test_container_lists_without_merge_key_are_replaced(field: str, old: list[JSON], new: list[JSON]) -> None:
    result, _ = strategic_merge({field: old}, {field: new}, CONTAINER)
    assert result == {field: new}


def test_tolerations_are_replaced_whole() -> None:
    spec = {"tolerations": [{"key": "a", "operator": "Exists"}]}
    result, _ = strategic_merge(spec, {"tolerations": [{"key": "b", "operator": "Exists"}]}, POD_SPEC)
    assert result == {"tolerations": [{"key": "b", "operator": "Exists"}]}


def test_a_replace_marker_in_an_atomic_list_is_dropped() -> None:
    result, _ = strategic_merge({"args": ["a"]}, {"args": [{"$patch": "replace"}]}, CONTAINER)
    assert result == {"args": []}


def test_a_delete_marker_in_an_atomic_list_is_an_error() -> None:
    with pytest.raises(PatchError, match=r'^tolerations\[0\]: "\$patch: delete" needs a list merged by key'):
        strategic_merge({"tolerations": []}, {"tolerations": [{"key": "a", "$patch": "delete"}]}, POD_SPEC)


# --- primitive sets ------------------------------------------------------------------------------


def test_finalizers_merge_as_an_ordered_set() -> None:
    job = {"metadata": {"finalizers": ["a", "b"]}}
    result, _ = strategic_merge(job, {"metadata": {"finalizers": ["b", "c"]}}, JOB)
    assert result["metadata"]["finalizers"] == ["a", "b", "c"]


def test_delete_from_primitive_list_removes_every_copy() -> None:
    job = {"metadata": {"finalizers": ["a", "b", "a", "c"]}}
    result, _ = strategic_merge(job, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, JOB)
    assert result["metadata"]["finalizers"] == ["b", "c"]


def test_delete_from_an_absent_primitive_list_creates_nothing() -> None:
    job = {"metadata": {"name": "j"}}
    result, changes = strategic_merge(job, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, JOB)
    assert (result, changes) == (job, [])


def test_deletions_from_a_primitive_list_apply_before_its_additions() -> None:
    job = {"metadata": {"finalizers": ["a", "b"]}}
    patch = {"metadata": {"finalizers": ["a", "c"], "$deleteFromPrimitiveList/finalizers": ["a", "b"]}}
    result, _ = strategic_merge(job, patch, JOB)
    assert result["metadata"]["finalizers"] == ["a", "c"]


@pytest.mark.parametrize(
    ("directive", "message"),
    [
        (
            "$deleteFromPrimitiveList/tolerations",
            r'needs a list Kubernetes merges, and "tolerations" is replaced whole',
        ),
        (
            "$deleteFromPrimitiveList/containers",
            r'needs a list of primitives, and "containers" holds objects',
        ),
        (
            "$setElementOrder/tolerations",
            r'needs a list Kubernetes merges, and "tolerations" is replaced whole',
        ),
        ("$setElementOrder/unknown", r'needs a list Kubernetes merges, and "unknown" is replaced whole'),
    ],
)
def test_list_directives_need_a_merged_list(directive: str, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        strategic_merge({}, {directive: []}, POD_SPEC)


# --- $setElementOrder ----------------------------------------------------------------------------


def test_set_element_order_reorders_a_keyed_list() -> None:
    spec = {"containers": _containers("a", "b", "c")}
    patch = {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}
    result, _ = strategic_merge(spec, patch, POD_SPEC)
    assert _names(result["containers"]) == ["c", "a", "b"]


def test_set_element_order_places_new_elements_and_merges_the_list() -> None:
    spec = {"containers": _containers("a", "b")}
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}],
        "containers": [{"name": "x", "image": "x:1"}, {"name": "b", "image": "b:2"}],
    }
    result, _ = strategic_merge(spec, patch, POD_SPEC)
    assert result["containers"] == [
        {"name": "a", "image": "a:1"},
        {"name": "x", "image": "x:1"},
        {"name": "b", "image": "b:2"},
    ]


def test_set_element_order_also_orders_a_list_the_document_lacks() -> None:
    patch = {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "b"}, {"name": "a"}],
    }
    result, _ = strategic_merge({}, patch, POD_SPEC)
    assert result == {"containers": [{"name": "b"}, {"name": "a"}]}


def test_set_element_order_entries_need_the_merge_key() -> None:
    with pytest.raises(
        PatchError, match=r'\["\$setElementOrder/containers"\]\[0\]: element needs the merge key "name"'
    ):
        strategic_merge({"containers": []}, {"$setElementOrder/containers": [{"image": "x"}]}, POD_SPEC)


# --- list-level $patch directives -----------------------------------------------------------------


def test_delete_element_removes_the_matching_element() -> None:
    spec = {"containers": _containers("a", "b", "c")}
    result, _ = strategic_merge(spec, {"containers": [{"name": "b", "$patch": "delete"}]}, POD_SPEC)
    assert _names(result["containers"]) == ["a", "c"]


def test_delete_element_without_its_merge_key_is_an_error_naming_the_path() -> None:
    job = {"spec": {"template": {"spec": {"containers": _containers("a", "b", "c")}}}}
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"$patch": "delete"}]}}}
    }
    with pytest.raises(PatchError) as raised:
        strategic_merge(job, patch, JOB)
    assert (
        str(raised.value)
        == 'spec.template.spec.containers[2]: "$patch: delete" element needs the merge key "name"'
    )


def test_replace_element_replaces_the_list_with_the_other_elements() -> None:
    container = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    result, _ = strategic_merge(
        container, {"env": [{"$patch": "replace"}, {"name": "C", "value": "3"}]}, CONTAINER
    )
    assert result == {"env": [{"name": "C", "value": "3"}]}


def test_merge_element_is_a_plain_marker() -> None:
    container = {"env": [{"name": "A", "value": "1"}]}
    result, _ = strategic_merge(
        container, {"env": [{"$patch": "merge"}, {"name": "B", "value": "2"}]}, CONTAINER
    )
    assert result == {"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}


def test_an_unknown_list_directive_is_an_error() -> None:
    with pytest.raises(PatchError, match=r"^env\[0\]: unknown \"\$patch\" value 'drop'"):
        strategic_merge({"env": []}, {"env": [{"name": "A", "$patch": "drop"}]}, CONTAINER)


# --- shapes and errors -----------------------------------------------------------------------------


def test_a_keyed_element_without_its_merge_key_is_an_error_even_for_a_new_list() -> None:
    with pytest.raises(PatchError, match=r'^containers\[0\]\.env\[1\]: element needs the merge key "name"'):
        strategic_merge({}, {"containers": [{"name": "c", "env": [{"name": "A"}, {"value": "v"}]}]}, POD_SPEC)


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ("agent", r'^containers\[0\]: elements of a list merged by "name" must be objects'),
        ({"name": None}, r"^containers\[0\]\.name: a merge key value must not be null"),
        ({"name": ["a"]}, r"^containers\[0\]\.name: a merge key value must be a string, number or boolean"),
    ],
)
def test_keyed_elements_must_be_objects_with_a_scalar_key(element: JSON, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        strategic_merge({"containers": []}, {"containers": [element]}, POD_SPEC)


def test_an_empty_patch_list_leaves_a_keyed_list_unchanged() -> None:
    spec = {"containers": _containers("a", "b")}
    result, changes = strategic_merge(spec, {"containers": []}, POD_SPEC)
    assert result is spec
    assert changes == []


def test_patch_elements_with_the_same_key_merge_into_one() -> None:
    result, _ = strategic_merge(
        {}, {"containers": [{"name": "x", "image": "i"}, {"name": "x", "tty": True}]}, POD_SPEC
    )
    assert result == {"containers": [{"name": "x", "image": "i", "tty": True}]}


def test_merge_keys_tell_booleans_from_numbers() -> None:
    ports = [{"containerPort": 1, "name": "one"}]
    result, _ = strategic_merge(
        {"ports": ports}, {"ports": [{"containerPort": True, "name": "t"}]}, CONTAINER
    )
    assert result["ports"] == [{"containerPort": True, "name": "t"}, {"containerPort": 1, "name": "one"}]
