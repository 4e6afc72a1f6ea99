"""``defaults``: fill what is absent, never override what is there."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.patch import apply_defaults
from engine.core.patch.defaults import DefaultsError
from engine.model.jsonvalue import JSON, Change


def test_absent_keys_are_added_and_present_ones_kept() -> None:
    container = {"name": "c", "image": "mine"}
    result, changes = apply_defaults(container, {"image": "default", "imagePullPolicy": "IfNotPresent"})
    assert result == {"name": "c", "image": "mine", "imagePullPolicy": "IfNotPresent"}
    assert changes == [Change("add", ("imagePullPolicy",), None, "IfNotPresent")]


def test_maps_present_on_both_sides_are_filled_key_by_key() -> None:
    container = {"resources": {"limits": {"memory": "1Gi"}}}
    defaults = {"resources": {"limits": {"memory": "4Gi", "nvidia.com/gpu": "1"}, "requests": {"cpu": "1"}}}
    result, changes = apply_defaults(container, defaults)
    assert result == {
        "resources": {"limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}, "requests": {"cpu": "1"}}
    }
    assert changes == [
        Change("add", ("resources", "limits", "nvidia.com/gpu"), None, "1"),
        Change("add", ("resources", "requests"), None, {"cpu": "1"}),
    ]


@pytest.mark.parametrize(
    ("present", "default"),
    [
        (["sh"], ["bash", "-c"]),
        ([{"name": "A", "value": "1"}], [{"name": "B", "value": "2"}]),
        ("scalar", {"a": "map"}),
        ({"a": "map"}, ["a list"]),
        (0, 5),
        (False, True),
    ],
)
def test_whatever_the_document_has_wins_even_if_it_differs(present: JSON, default: JSON) -> None:
    document = {"field": present}
    result, changes = apply_defaults(document, {"field": default})
    assert result is document
    assert changes == []


def test_null_defaults_are_ignored_also_inside_added_sub_trees() -> None:
    result, changes = apply_defaults({}, {"a": None, "b": {"c": None, "d": [{"e": None, "f": 1}]}})
    assert result == {"b": {"d": [{"f": 1}]}}
    assert changes == [Change("add", ("b",), None, {"d": [{"f": 1}]})]


def test_a_null_in_the_document_counts_as_absent() -> None:
    result, changes = apply_defaults({"securityContext": None}, {"securityContext": {"runAsNonRoot": True}})
    assert result == {"securityContext": {"runAsNonRoot": True}}
    assert changes == [Change("replace", ("securityContext",), None, {"runAsNonRoot": True})]


def test_unchanged_sub_trees_are_shared() -> None:
    document: dict[str, Any] = {"a": {"x": 1}, "b": {"y": 2}}
    result, _ = apply_defaults(document, {"a": {"x": 5}, "b": {"z": 3}})
    assert result["a"] is document["a"]
    assert result["b"] == {"y": 2, "z": 3}


@pytest.mark.parametrize(
    ("document", "defaults", "message"),
    [
        ({}, ["x"], "defaults must be an object, not list"),
        ("text", {}, "defaults apply to an object, not str"),
    ],
)
def test_defaults_and_document_must_be_objects(document: JSON, defaults: JSON, message: str) -> None:
    with pytest.raises(DefaultsError, match=message):
        apply_defaults(document, defaults)


_KEYS = st.sampled_from(["a", "b", "c"])
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(0, 2), st.sampled_from(["x", "y"])),
    lambda children: st.one_of(st.lists(children, max_size=2), st.dictionaries(_KEYS, children, max_size=3)),
    max_leaves=10,
)
_MAPS = st.dictionaries(_KEYS, _VALUES, max_size=3)


def _values_at_leaves(value: JSON, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], JSON]:
    if isinstance(value, dict) and value:
        found: dict[tuple[Any, ...], JSON] = {}
        for key, member in value.items():
            found.update(_values_at_leaves(member, (*path, key)))
        return found
    return {path: value}


@settings(max_examples=300, deadline=None)
@given(document=_MAPS, defaults=_MAPS)
def test_defaults_only_add(document: dict[str, JSON], defaults: dict[str, JSON]) -> None:
    before = copy.deepcopy(document)
    defaults_before = copy.deepcopy(defaults)

    result, changes = apply_defaults(document, defaults)

    assert document == before
    assert defaults == defaults_before
    kept = _values_at_leaves(result)
    for path, value in _values_at_leaves(document).items():
        if value is not None and value != {}:
            assert kept[path] == value, f"defaults overrode {path}"
    again, more = apply_defaults(result, defaults)
    assert (again, more) == (result, [])
    assert all(change.op in ("add", "replace") and change.old is None for change in changes)
