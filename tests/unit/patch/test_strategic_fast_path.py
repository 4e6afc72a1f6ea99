"""The quick keyed merge must agree exactly with the general one it short-cuts."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.patch.schema import CONTAINER, FieldSchema
from engine.core.patch.strategic import _ListMerge, _merge_keyed_simply
from engine.model.jsonvalue import JSON, Change

_ENV_FIELD = FieldSchema(merge_list=True, merge_key="name")
_PORTS_FIELD = FieldSchema(merge_list=True, merge_key="containerPort")
_CONTAINERS_FIELD = FieldSchema(merge_list=True, merge_key="name", schema=CONTAINER)


def _general(original: list[JSON], patch: list[JSON], field: FieldSchema) -> tuple[list[JSON], list[Change]]:
    changes: list[Change] = []
    merge = _ListMerge(original, patch, field, ("list",))
    merge.order_by_patch()
    return merge.finish(changes), changes


def _quick(
    original: list[JSON], patch: list[JSON], field: FieldSchema
) -> tuple[list[JSON], list[Change]] | None:
    changes: list[Change] = []
    assert field.merge_key is not None
    merged = _merge_keyed_simply(original, patch, field.merge_key, field.schema, ("list",), changes)
    return None if merged is None else (merged, changes)


_NAMES = st.sampled_from(["a", "b", "c", "d", "e", "f"])
_VALUES = st.one_of(st.none(), st.sampled_from(["x", "y"]))
_ENV_ELEMENT = st.fixed_dictionaries({"name": _NAMES}, optional={"value": _VALUES, "other": _VALUES})


def _documents(element: st.SearchStrategy[dict[str, Any]], key: str) -> st.SearchStrategy[list[Any]]:
    return st.lists(element, max_size=6, unique_by=lambda item: item[key]).map(
        lambda items: [{k: v for k, v in item.items() if v is not None} for item in items]
    )


@settings(max_examples=500, deadline=None)
@given(original=_documents(_ENV_ELEMENT, "name"), patch=st.lists(_ENV_ELEMENT, max_size=4))
def test_quick_keyed_merge_agrees_with_the_general_one(original: list[JSON], patch: list[JSON]) -> None:
    before = copy.deepcopy(original)
    quick = _quick(original, patch, _ENV_FIELD)
    names = [element["name"] for element in patch]
    if len(set(names)) == len(names):
        assert quick is not None, "the quick path should handle unique keys without directives"
    if quick is not None:
        assert quick == _general(original, patch, _ENV_FIELD)
        assert (quick[0] is original) == (quick[1] == [])
    assert original == before


_PORT = st.fixed_dictionaries(
    {"containerPort": st.sampled_from([80, 443, 8080, 9090])}, optional={"name": st.sampled_from(["p", "q"])}
)


@settings(max_examples=200, deadline=None)
@given(original=_documents(_PORT, "containerPort"), patch=st.lists(_PORT, max_size=3))
def test_quick_merge_on_integer_keys_agrees_with_the_general_one(
    original: list[JSON], patch: list[JSON]
) -> None:
    quick = _quick(original, patch, _PORTS_FIELD)
    if quick is not None:
        assert quick == _general(original, patch, _PORTS_FIELD)


def test_quick_merge_records_nested_changes_at_the_result_index() -> None:
    original = [{"name": "a"}, {"name": "b", "env": [{"name": "E", "value": "1"}]}]
    patch = [{"name": "x"}, {"name": "b", "env": [{"name": "E", "value": "2"}]}]
    quick = _quick(original, patch, _CONTAINERS_FIELD)
    assert quick is not None
    assert quick == _general(original, patch, _CONTAINERS_FIELD)
    assert quick[1][-1].path == ("list", 2, "env", 0, "value")


def test_quick_merge_leaves_unusual_lists_to_the_general_one() -> None:
    assert _quick([{"name": "a"}, {"name": "a"}], [{"name": "a"}], _ENV_FIELD) is None
    assert _quick([{"value": "unnamed"}], [{"name": "a"}], _ENV_FIELD) is None
    assert _quick([{"name": "a"}], [{"name": "a", "$patch": "delete"}], _ENV_FIELD) is None
    assert _quick([{"containerPort": True}], [{"containerPort": 1}], _PORTS_FIELD) is None
