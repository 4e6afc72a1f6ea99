"""Strategic merge on objects: recursion, ``null``, unknown fields and map-level directives."""

from __future__ import annotations

import pytest

from engine.core.patch import CONTAINER, JOB, POD_SPEC, PatchError, strategic_merge
from engine.model.jsonvalue import JSON


def _pod(**spec: JSON) -> dict[str, JSON]:
    return {"spec": {"template": {"spec": spec}}}


def test_maps_merge_key_by_key_and_keep_what_the_patch_does_not_mention() -> None:
    job = {
        "metadata": {"name": "j", "labels": {"a": "1"}},
        **_pod(nodeSelector={"zone": "x"}, restartPolicy="Never"),
    }
    patch = {"metadata": {"labels": {"b": "2"}}, **_pod(nodeSelector={"gpu": "yes"})}
    result, _ = strategic_merge(job, patch, JOB)
    assert result["metadata"] == {"name": "j", "labels": {"a": "1", "b": "2"}}
    assert result["spec"]["template"]["spec"] == {
        "nodeSelector": {"zone": "x", "gpu": "yes"},
        "restartPolicy": "Never",
    }


def test_scalars_in_the_patch_replace_scalars_in_the_document() -> None:
    result, _ = strategic_merge({"image": "a", "name": "c"}, {"image": "b"}, CONTAINER)
    assert result == {"image": "b", "name": "c"}


def test_null_deletes_a_key_and_a_null_for_an_absent_key_changes_nothing() -> None:
    result, changes = strategic_merge(
        {"image": "a", "workingDir": "/w"}, {"workingDir": None, "tty": None}, CONTAINER
    )
    assert result == {"image": "a"}
    assert [change.path for change in changes] == [("workingDir",)]


def test_a_value_of_another_type_replaces_the_old_one() -> None:
    result, _ = strategic_merge({"resources": "oops"}, {"resources": {"limits": {"cpu": "1"}}}, CONTAINER)
    assert result == {"resources": {"limits": {"cpu": "1"}}}


def test_a_patch_without_containers_leaves_containers_alone() -> None:
    """Upstream [BUG] (3.9): a Go-serialised patch carried ``containers: null`` and wiped them."""
    spec = {"containers": [{"name": "agent", "image": "a"}], "nodeSelector": {"x": "y"}}
    result, changes = strategic_merge(spec, {"nodeSelector": {"gpu": "1"}}, POD_SPEC)
    assert result["containers"] is spec["containers"]
    assert [change.path for change in changes] == [("nodeSelector", "gpu")]


def test_new_sub_trees_never_carry_null_members() -> None:
    patch = {
        "securityContext": {
            "runAsUser": 1000,
            "privileged": None,
            "capabilities": {"drop": ["ALL"], "add": None},
        }
    }
    result, _ = strategic_merge({"name": "c"}, patch, CONTAINER)
    assert result == {"name": "c", "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}}


def test_null_members_inside_replaced_lists_are_dropped_too() -> None:
    patch = {"tolerations": [{"key": "gpu", "operator": "Exists", "value": None}]}
    result, _ = strategic_merge({"tolerations": [{"key": "a"}]}, patch, POD_SPEC)
    assert result == {"tolerations": [{"key": "gpu", "operator": "Exists"}]}


def test_unknown_fields_merge_as_plain_maps_and_their_lists_are_replaced() -> None:
    spec = {"futureField": {"a": 1, "items": [{"name": "x", "v": 1}]}}
    patch = {"futureField": {"b": 2, "items": [{"name": "y"}]}}
    result, _ = strategic_merge(spec, patch, POD_SPEC)
    assert result == {"futureField": {"a": 1, "b": 2, "items": [{"name": "y"}]}}


def test_patch_replace_directive_replaces_the_whole_map() -> None:
    spec = {"nodeSelector": {"zone": "x", "disk": "ssd"}}
    result, _ = strategic_merge(spec, {"nodeSelector": {"$patch": "replace", "gpu": "yes"}}, POD_SPEC)
    assert result == {"nodeSelector": {"gpu": "yes"}}


def test_patch_replace_directive_at_the_top_replaces_the_document() -> None:
    result, _ = strategic_merge({"image": "a", "name": "c"}, {"$patch": "replace", "name": "d"}, CONTAINER)
    assert result == {"name": "d"}


def test_patch_delete_directive_removes_the_map() -> None:
    container = {"name": "c", "securityContext": {"privileged": True}}
    result, _ = strategic_merge(container, {"securityContext": {"$patch": "delete"}}, CONTAINER)
    assert result == {"name": "c"}


def test_patch_delete_directive_for_an_absent_map_adds_nothing() -> None:
    result, changes = strategic_merge({"name": "c"}, {"securityContext": {"$patch": "delete"}}, CONTAINER)
    assert (result, changes) == ({"name": "c"}, [])


def test_patch_merge_directive_merges_as_usual() -> None:
    spec = {"nodeSelector": {"zone": "x"}}
    result, _ = strategic_merge(spec, {"nodeSelector": {"$patch": "merge", "gpu": "yes"}}, POD_SPEC)
    assert result == {"nodeSelector": {"zone": "x", "gpu": "yes"}}


def test_directives_never_reach_the_output_even_in_new_values() -> None:
    patch = {
        "nodeSelector": {"$patch": "replace", "a": "b"},
        "affinity": {"$patch": "merge", "nodeAffinity": {"$patch": "replace", "x": 1}},
        "volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}],
    }
    result, _ = strategic_merge({}, patch, POD_SPEC)
    assert result == {
        "nodeSelector": {"a": "b"},
        "affinity": {"nodeAffinity": {"x": 1}},
        "volumes": [{"name": "v", "emptyDir": {}}],
    }


def test_an_unknown_patch_directive_value_is_an_error_naming_the_path() -> None:
    with pytest.raises(
        PatchError, match=r'^spec\.template\.spec\.nodeSelector: unknown "\$patch" value \'remove\''
    ):
        strategic_merge({}, _pod(nodeSelector={"$patch": "remove"}), JOB)


def test_an_unknown_directive_key_is_an_error() -> None:
    with pytest.raises(PatchError, match=r'^\(patch\): unknown directive "\$retainkeys"'):
        strategic_merge({}, {"$retainkeys": ["name"]}, CONTAINER)


def test_retain_keys_clears_the_keys_it_does_not_list() -> None:
    """The volume-source union: switching a volume from emptyDir to hostPath drops emptyDir."""
    spec = {"volumes": [{"name": "w", "emptyDir": {"medium": "Memory"}}, {"name": "o", "emptyDir": {}}]}
    patch = {"volumes": [{"name": "w", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/w"}}]}
    result, _ = strategic_merge(spec, patch, POD_SPEC)
    assert result == {"volumes": [{"name": "w", "hostPath": {"path": "/w"}}, {"name": "o", "emptyDir": {}}]}


def test_retain_keys_must_list_every_key_the_patch_sets() -> None:
    patch = {"volumes": [{"name": "w", "$retainKeys": ["name"], "hostPath": {"path": "/w"}}]}
    with pytest.raises(
        PatchError, match=r'^volumes\[0\]: "\$retainKeys" must list every key the patch sets; "hostPath"'
    ):
        strategic_merge({"volumes": [{"name": "w"}]}, patch, POD_SPEC)


def test_retain_keys_must_be_a_list() -> None:
    with pytest.raises(PatchError, match=r'"\$retainKeys" must be a list of keys, not a string'):
        strategic_merge({}, {"$retainKeys": "name"}, CONTAINER)


@pytest.mark.parametrize(
    ("original", "patch", "message"),
    [
        ([], {}, r"^\(document\): a strategic merge patch applies to an object, not a list"),
        ({}, ["x"], r"^\(patch\): a strategic merge patch must be an object, not a list"),
        ({}, {1: "x"}, r"^\(patch\): object keys must be strings, not a number"),
    ],
)
def test_documents_and_patches_must_be_objects(original: JSON, patch: JSON, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        strategic_merge(original, patch, CONTAINER)


def test_patch_error_is_a_value_error() -> None:
    assert issubclass(PatchError, ValueError)
