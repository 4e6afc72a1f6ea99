"""What a strategic merge reports (the trace) and what it promises about its inputs and outputs."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from engine.core.patch import CONTAINER, JOB, POD_SPEC, strategic_merge
from engine.core.patch.schema import TypeSchema
from engine.model.jsonvalue import JSON, Change


def _containers(*names: str) -> list[dict[str, JSON]]:
    return [{"name": name, "image": f"{name}:1"} for name in names]


# --- change records ------------------------------------------------------------------------------

CHANGE_CASES: list[tuple[str, TypeSchema, JSON, JSON, list[Change]]] = [
    (
        "a new key is an add",
        CONTAINER,
        {"name": "c"},
        {"image": "i"},
        [Change("add", ("image",), None, "i")],
    ),
    (
        "a new scalar value is a replace",
        CONTAINER,
        {"name": "c", "image": "i"},
        {"image": "j"},
        [Change("replace", ("image",), "i", "j")],
    ),
    (
        "null is a remove",
        CONTAINER,
        {"name": "c", "workingDir": "/w"},
        {"workingDir": None},
        [Change("remove", ("workingDir",), "/w", None)],
    ),
    (
        "a new sub-tree is one add",
        CONTAINER,
        {"name": "c"},
        {"securityContext": {"runAsUser": 1, "capabilities": {"drop": ["ALL"]}}},
        [Change("add", ("securityContext",), None, {"runAsUser": 1, "capabilities": {"drop": ["ALL"]}})],
    ),
    (
        "a replaced atomic list is one replace",
        CONTAINER,
        {"command": ["a", "b"]},
        {"command": ["c"]},
        [Change("replace", ("command",), ["a", "b"], ["c"])],
    ),
    (
        "keyed list changes use the result's indices",
        POD_SPEC,
        {"containers": _containers("a", "b", "c")},
        {"containers": [{"name": "b", "image": "b:2"}, {"name": "x"}]},
        [
            Change("replace", ("containers", 1, "image"), "b:1", "b:2"),
            Change("add", ("containers", 2), None, {"name": "x"}),
        ],
    ),
    (
        "an element's changes sit at its place in the result, not in the patch",
        JOB,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "env": [{"name": "E"}]}]}}
            }
        },
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "b", "env": [{"name": "E", "value": "2"}]}]}}
            }
        },
        [Change("add", ("spec", "template", "spec", "containers", 1, "env", 0, "value"), None, "2")],
    ),
    (
        "a deleted element is removed at its original index, from the back",
        POD_SPEC,
        {"containers": _containers("a", "b", "c")},
        {"containers": [{"name": "a", "$patch": "delete"}, {"name": "c", "$patch": "delete"}]},
        [
            Change("remove", ("containers", 2), {"name": "c", "image": "c:1"}, None),
            Change("remove", ("containers", 0), {"name": "a", "image": "a:1"}, None),
        ],
    ),
    (
        "a reordered list is one replace",
        POD_SPEC,
        {"containers": _containers("a", "b")},
        {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]},
        [Change("replace", ("containers",), _containers("a", "b"), _containers("b", "a"))],
    ),
    (
        "a list replaced by directive is one replace",
        CONTAINER,
        {"env": [{"name": "A"}]},
        {"env": [{"$patch": "replace"}, {"name": "B"}]},
        [Change("replace", ("env",), [{"name": "A"}], [{"name": "B"}])],
    ),
    (
        "a map replaced by directive is one replace",
        POD_SPEC,
        {"nodeSelector": {"a": "1"}},
        {"nodeSelector": {"$patch": "replace", "b": "2"}},
        [Change("replace", ("nodeSelector",), {"a": "1"}, {"b": "2"})],
    ),
    (
        "a map deleted by directive is a remove",
        POD_SPEC,
        {"nodeSelector": {"a": "1"}},
        {"nodeSelector": {"$patch": "delete"}},
        [Change("remove", ("nodeSelector",), {"a": "1"}, None)],
    ),
    (
        "keys cleared by $retainKeys are removes",
        POD_SPEC,
        {"volumes": [{"name": "v", "emptyDir": {}}]},
        {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/p"}}]},
        [
            Change("remove", ("volumes", 0, "emptyDir"), {}, None),
            Change("add", ("volumes", 0, "hostPath"), None, {"path": "/p"}),
        ],
    ),
    (
        "values deleted from a primitive list are removes",
        JOB,
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "c"]}},
        [
            Change("remove", ("metadata", "finalizers", 2), "c", None),
            Change("remove", ("metadata", "finalizers", 0), "a", None),
        ],
    ),
    (
        "a value added to a primitive set is an add",
        JOB,
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"finalizers": ["b"]}},
        [Change("add", ("metadata", "finalizers", 0), None, "b")],
    ),
    (
        "deleting the whole document replaces it with an empty object",
        CONTAINER,
        {"name": "c"},
        {"$patch": "delete"},
        [Change("replace", (), {"name": "c"}, {})],
    ),
    (
        "deleting and re-adding an element as it was is no change",
        POD_SPEC,
        {"containers": [{"name": "a"}]},
        {"containers": [{"name": "a", "$patch": "delete"}, {"name": "a"}]},
        [],
    ),
]


@pytest.mark.parametrize(
    ("schema", "original", "patch", "expected"),
    [case[1:] for case in CHANGE_CASES],
    ids=[case[0] for case in CHANGE_CASES],
)
def test_change_records(schema: TypeSchema, original: JSON, patch: JSON, expected: list[Change]) -> None:
    original_before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    result, changes = strategic_merge(original, patch, schema)
    assert changes == expected
    assert (original, patch) == (original_before, patch_before), "an input was mutated"
    assert strategic_merge(result, patch, schema) == (result, []), "a second application changed something"


def test_unchanged_sub_trees_are_shared_with_the_original() -> None:
    job: dict[str, Any] = {
        "metadata": {"name": "j", "labels": {"a": "1"}},
        "spec": {
            "template": {"metadata": {"labels": {"x": "y"}}, "spec": {"containers": _containers("a", "b")}}
        },
    }
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}
    result, _ = strategic_merge(job, patch, JOB)
    assert result["metadata"] is job["metadata"]
    assert result["spec"]["template"]["metadata"] is job["spec"]["template"]["metadata"]
    assert (
        result["spec"]["template"]["spec"]["containers"][0]
        is job["spec"]["template"]["spec"]["containers"][0]
    )
    assert (
        result["spec"]["template"]["spec"]["containers"][1]
        is not job["spec"]["template"]["spec"]["containers"][1]
    )


def test_an_equal_value_is_no_change_and_the_original_is_returned() -> None:
    container = {"name": "c", "image": "i", "command": ["a"], "env": [{"name": "E", "value": "v"}]}
    patch = {"image": "i", "command": ["a"], "env": [{"name": "E", "value": "v"}], "tty": None}
    result, changes = strategic_merge(container, patch, CONTAINER)
    assert result is container
    assert changes == []


# --- properties over generated documents and patches -----------------------------------------------

_NAMES = st.sampled_from(["a", "b", "c", "d"])
_TEXT = st.sampled_from(["x", "y", "z", "1"])


def _unique_by_name(
    elements: st.SearchStrategy[dict[str, Any]], max_size: int
) -> st.SearchStrategy[list[Any]]:
    return st.lists(elements, max_size=max_size, unique_by=lambda element: element["name"])


_ENV = st.fixed_dictionaries({"name": _NAMES}, optional={"value": _TEXT})
_DOC_CONTAINER = st.fixed_dictionaries(
    {"name": _NAMES},
    optional={
        "image": _TEXT,
        "env": _unique_by_name(_ENV, 3),
        "command": st.lists(_TEXT, max_size=2),
        "resources": st.fixed_dictionaries(
            {}, optional={"limits": st.dictionaries(_NAMES, _TEXT, max_size=2)}
        ),
    },
)
_DOC = st.fixed_dictionaries(
    {},
    optional={
        "containers": _unique_by_name(_DOC_CONTAINER, 4),
        "nodeSelector": st.dictionaries(_NAMES, _TEXT, max_size=3),
        "tolerations": st.lists(st.fixed_dictionaries({"key": _NAMES}), max_size=2),
        "restartPolicy": st.sampled_from(["Never", "OnFailure"]),
    },
)


def _deleting(name: str) -> dict[str, JSON]:
    return {"name": name, "$patch": "delete"}


_PATCH_ENV = st.one_of(
    st.fixed_dictionaries({"name": _NAMES}, optional={"value": st.one_of(st.none(), _TEXT)}),
    _NAMES.map(_deleting),
)
_PATCH_CONTAINER = st.one_of(
    st.fixed_dictionaries(
        {"name": _NAMES},
        optional={
            "image": st.one_of(st.none(), _TEXT),
            "env": st.lists(_PATCH_ENV, max_size=3),
            "command": st.one_of(st.none(), st.lists(_TEXT, max_size=2)),
            "resources": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {}, optional={"limits": st.dictionaries(_NAMES, st.one_of(st.none(), _TEXT))}
                ),
            ),
        },
    ),
    _NAMES.map(_deleting),
)
_PATCH = st.fixed_dictionaries(
    {},
    optional={
        "containers": st.lists(_PATCH_CONTAINER, max_size=4),
        "nodeSelector": st.one_of(
            st.none(), st.dictionaries(_NAMES, st.one_of(st.none(), _TEXT), max_size=3)
        ),
        "tolerations": st.one_of(st.none(), st.lists(st.fixed_dictionaries({"key": _NAMES}), max_size=2)),
        "restartPolicy": st.one_of(st.none(), st.sampled_from(["Never", "Always"])),
    },
)


def _replay(document: JSON, changes: list[Change]) -> JSON:
    """Apply change records one by one, checking each ``old``: the trace must tell the whole story."""
    document = copy.deepcopy(document)
    for change in changes:
        if not change.path:
            document = copy.deepcopy(change.new)
            continue
        parent = document
        for segment in change.path[:-1]:
            parent = parent[segment]
        last = change.path[-1]
        if change.op == "add":
            if isinstance(parent, list):
                assert isinstance(last, int)
                parent.insert(last, copy.deepcopy(change.new))
            else:
                assert last not in parent
                parent[last] = copy.deepcopy(change.new)
        else:
            assert parent[last] == change.old
            if change.op == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(change.new)
    return document


def _has_null(value: JSON) -> bool:
    if isinstance(value, dict):
        return any(member is None or _has_null(member) for member in value.values())
    if isinstance(value, list):
        return any(_has_null(item) for item in value)
    return False


@settings(max_examples=300, deadline=None)
@given(document=_DOC, patch=_PATCH)
def test_generated_patches_keep_every_promise(document: dict[str, JSON], patch: dict[str, JSON]) -> None:
    document_before = copy.deepcopy(document)
    patch_before = copy.deepcopy(patch)

    if _names_an_element_twice(patch):
        reject()  # repeated elements merge in order; applying such a patch twice is not idempotent
    result, changes = strategic_merge(document, patch, POD_SPEC)

    assert document == document_before, "the document was mutated"
    assert patch == patch_before, "the patch was mutated"
    assert not _has_null(result), "a null reached the output"
    assert _replay(document, changes) == result, "the change records do not explain the result"
    again, more = strategic_merge(result, patch, POD_SPEC)
    assert more == [], "applying the same patch twice changed something the second time"
    assert again is result


def _sub_patch(value: JSON, rng: random.Random) -> JSON:
    """A patch that restates part of ``value``: keyed elements keep their ``name`` and their order."""
    if isinstance(value, dict):
        return {
            key: _sub_patch(member, rng)
            for key, member in value.items()
            if key == "name" or rng.random() < 0.6
        }
    if isinstance(value, list) and value and isinstance(value[0], dict) and "name" in value[0]:
        return [_sub_patch(element, rng) for element in value if rng.random() < 0.6]
    return value


@settings(max_examples=300, deadline=None)
@given(document=_DOC, rng=st.randoms(use_true_random=False))
def test_a_patch_restating_the_document_changes_nothing(
    document: dict[str, JSON], rng: random.Random
) -> None:
    patch = _sub_patch(document, rng)
    result, changes = strategic_merge(document, patch, POD_SPEC)
    assert changes == []
    assert result is document


def _names_an_element_twice(value: JSON) -> bool:
    """True if some list in ``value`` has two elements (deletions included) with the same ``name``."""
    if isinstance(value, dict):
        return any(_names_an_element_twice(v) for v in value.values())
    if isinstance(value, list):
        names = [item["name"] for item in value if isinstance(item, dict) and "name" in item]
        return len(names) != len(set(map(repr, names))) or any(_names_an_element_twice(v) for v in value)
    return False
