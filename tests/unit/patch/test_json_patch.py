"""JSON Patch (RFC 6902): the RFC's own examples, pointer rules, errors and change records."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.patch import JsonPatchError, apply_json_patch
from engine.model.jsonvalue import JSON, Change

# RFC 6902 Appendix A, examples A.1-A.16 (A.13, a document with a duplicate "op" member, cannot be a dict).
APPENDIX_A: list[tuple[str, JSON, list[dict[str, JSON]], JSON]] = [
    (
        "A.1 adding an object member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2 adding an array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    (
        "A.3 removing an object member",
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    (
        "A.4 removing an array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replacing a value",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 moving a value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 moving an array element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8 testing a value: success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10 adding a nested member object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 ignoring unrecognized elements",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.14 ~ escape ordering",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        "A.16 adding an array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
]


@pytest.mark.parametrize(
    ("document", "operations", "expected"),
    [case[1:] for case in APPENDIX_A],
    ids=[case[0] for case in APPENDIX_A],
)
def test_rfc_6902_appendix_a(document: JSON, operations: list[dict[str, JSON]], expected: JSON) -> None:
    result, _ = apply_json_patch(document, operations)
    assert result == expected


APPENDIX_A_ERRORS: list[tuple[str, JSON, list[dict[str, JSON]], str]] = [
    (
        "A.9 testing a value: error",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        'operation 0 (test /baz): test failed: the value is "qux", expected "bar"',
    ),
    (
        "A.12 adding to a nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        "operation 0 (add /baz/bat): path does not exist",
    ),
    (
        "A.15 comparing strings and numbers",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        'operation 0 (test /~01): test failed: the value is 10, expected "10"',
    ),
]


@pytest.mark.parametrize(
    ("document", "operations", "message"),
    [case[1:] for case in APPENDIX_A_ERRORS],
    ids=[case[0] for case in APPENDIX_A_ERRORS],
)
def test_rfc_6902_appendix_a_errors(document: JSON, operations: list[dict[str, JSON]], message: str) -> None:
    with pytest.raises(JsonPatchError) as raised:
        apply_json_patch(document, operations)
    assert str(raised.value) == message


def test_add_on_an_existing_member_replaces_it() -> None:
    result, changes = apply_json_patch({"a": 1}, [{"op": "add", "path": "/a", "value": 2}])
    assert result == {"a": 2}
    assert changes == [Change("replace", ("a",), 1, 2)]


def test_append_to_an_atomic_list_like_tolerations() -> None:
    job = {"spec": {"template": {"spec": {"tolerations": [{"key": "a"}]}}}}
    operations = [{"op": "add", "path": "/spec/template/spec/tolerations/-", "value": {"key": "gpu"}}]
    result, changes = apply_json_patch(job, operations)
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "a"}, {"key": "gpu"}]
    assert changes == [Change("add", ("spec", "template", "spec", "tolerations", 1), None, {"key": "gpu"})]


def test_pointer_escapes_reach_keys_with_slashes_and_tildes() -> None:
    labels = {"metadata": {"labels": {"buildkite.com/job": "1", "a~b": "2"}}}
    operations = [
        {"op": "replace", "path": "/metadata/labels/buildkite.com~1job", "value": "x"},
        {"op": "remove", "path": "/metadata/labels/a~0b"},
    ]
    result, changes = apply_json_patch(labels, operations)
    assert result == {"metadata": {"labels": {"buildkite.com/job": "x"}}}
    assert [change.path for change in changes] == [
        ("metadata", "labels", "buildkite.com/job"),
        ("metadata", "labels", "a~b"),
    ]


def test_the_empty_pointer_is_the_whole_document() -> None:
    result, changes = apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}])
    assert result == {"b": 2}
    assert changes == [Change("replace", (), {"a": 1}, {"b": 2})]


def test_copy_adds_a_copy_of_a_value() -> None:
    result, changes = apply_json_patch({"a": {"x": 1}}, [{"op": "copy", "from": "/a", "path": "/b"}])
    assert result == {"a": {"x": 1}, "b": {"x": 1}}
    assert changes == [Change("add", ("b",), None, {"x": 1})]


def test_move_records_a_removal_then_an_addition() -> None:
    _, changes = apply_json_patch({"a": 1}, [{"op": "move", "from": "/a", "path": "/b"}])
    assert changes == [Change("remove", ("a",), 1, None), Change("add", ("b",), None, 1)]


def test_move_to_the_same_place_changes_nothing() -> None:
    document = {"a": 1}
    result, changes = apply_json_patch(document, [{"op": "move", "from": "/a", "path": "/a"}])
    assert (result, changes) == (document, [])


def test_operations_apply_in_order_and_paths_refer_to_the_document_at_that_point() -> None:
    result, changes = apply_json_patch(
        {"l": ["a", "b"]},
        [{"op": "add", "path": "/l/0", "value": "x"}, {"op": "replace", "path": "/l/2", "value": "B"}],
    )
    assert result == {"l": ["x", "a", "B"]}
    assert changes == [Change("add", ("l", 0), None, "x"), Change("replace", ("l", 2), "b", "B")]


def test_replacing_with_an_equal_value_records_nothing_and_returns_the_document() -> None:
    document = {"a": [1, {"b": True}]}
    result, changes = apply_json_patch(document, [{"op": "replace", "path": "/a", "value": [1, {"b": True}]}])
    assert result is document
    assert changes == []


def test_test_tells_booleans_from_numbers() -> None:
    with pytest.raises(JsonPatchError, match="test failed"):
        apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": True}])


def test_unchanged_sub_trees_are_shared() -> None:
    document = {"a": {"x": [1]}, "b": {"y": 2}}
    result, _ = apply_json_patch(document, [{"op": "add", "path": "/b/z", "value": 3}])
    assert result["a"] is document["a"]
    assert result["b"] is not document["b"]


ERRORS: list[tuple[JSON, list[JSON], str]] = [
    (
        {"spec": {}},
        [
            {"op": "test", "path": "/spec", "value": {}},
            {"op": "remove", "path": "/x"},
            {"op": "replace", "path": "/spec/foo", "value": 1},
        ],
        "operation 1 (remove /x): path does not exist",
    ),
    (
        {"spec": {}},
        [
            {"op": "test", "path": "", "value": {"spec": {}}},
            {"op": "add", "path": "/a", "value": 1},
            {"op": "replace", "path": "/spec/foo", "value": 1},
        ],
        "operation 2 (replace /spec/foo): path does not exist",
    ),
    (
        {},
        [{"op": "jump", "path": "/a"}],
        "operation 0: unknown op 'jump' (expected one of add, remove, replace, move, copy, test)",
    ),
    ({}, [{"op": "add", "value": 1}], 'operation 0 (add): needs a "path" string'),
    ({}, [{"op": "add", "path": "/a"}], 'operation 0 (add /a): needs a "value" member'),
    ({}, [{"op": "move", "path": "/a"}], 'operation 0 (move /a): needs a "from" member'),
    ({}, ["add"], 'operation 0: must be an object with "op" and "path"'),
    (
        {},
        [{"op": "add", "path": "a", "value": 1}],
        "operation 0 (add a): invalid JSON pointer 'a': it must be empty or start with \"/\"",
    ),
    (
        {"a~b": 1},
        [{"op": "remove", "path": "/a~b"}],
        "operation 0 (remove /a~b): invalid JSON pointer '/a~b': \"~\" must be followed by 0 or 1",
    ),
    (
        {"l": [1]},
        [{"op": "add", "path": "/l/2", "value": 1}],
        "operation 0 (add /l/2): index 2 is out of range (the list has 1 elements)",
    ),
    (
        {"l": [1]},
        [{"op": "remove", "path": "/l/1"}],
        "operation 0 (remove /l/1): index 1 is out of range (the list has 1 elements)",
    ),
    (
        {"l": [1, 2]},
        [{"op": "remove", "path": "/l/01"}],
        "operation 0 (remove /l/01): '01' is not a list index",
    ),
    (
        {"l": [1]},
        [{"op": "replace", "path": "/l/-", "value": 1}],
        'operation 0 (replace /l/-): "-" (after the last element) only names a place to add',
    ),
    (
        {"a": {"b": 1}},
        [{"op": "move", "from": "/a", "path": "/a/b/c"}],
        "operation 0 (move /a/b/c): cannot move a value into one of its own children",
    ),
    (
        {"a": 1},
        [{"op": "copy", "from": "/b", "path": "/c"}],
        'operation 0 (copy /c): "from" path does not exist',
    ),
    ({"a": 1}, [{"op": "remove", "path": ""}], 'operation 0 (remove ""): cannot remove the whole document'),
    (
        {"a": "text"},
        [{"op": "add", "path": "/a/b", "value": 1}],
        "operation 0 (add /a/b): path does not exist",
    ),
]


@pytest.mark.parametrize(("document", "operations", "message"), ERRORS)
def test_errors_name_the_operation_and_its_path(document: JSON, operations: list[JSON], message: str) -> None:
    with pytest.raises(JsonPatchError) as raised:
        apply_json_patch(document, operations)
    assert str(raised.value) == message


def test_the_operations_must_be_a_list() -> None:
    with pytest.raises(JsonPatchError, match="a JSON patch must be a list of operations"):
        apply_json_patch({}, {"op": "add"})  # type: ignore[arg-type]


def test_json_patch_error_is_a_value_error() -> None:
    assert issubclass(JsonPatchError, ValueError)


# --- properties ------------------------------------------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "c/d", "e~f"])
_DOCS = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y"])),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=3)),
    max_leaves=12,
)


def _pointers(value: JSON, prefix: str = "") -> list[str]:
    found = [prefix]
    if isinstance(value, dict):
        for key, member in value.items():
            found += _pointers(member, f"{prefix}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _pointers(item, f"{prefix}/{index}")
    return found


@settings(max_examples=200, deadline=None)
@given(document=_DOCS, data=st.data())
def test_remove_then_add_back_restores_the_document(document: JSON, data: st.DataObject) -> None:
    """Each removal is one record whose ``old`` is exactly what an ``add`` needs to undo it."""
    pointers = _pointers(document)[1:]
    if not pointers:
        return
    pointer = data.draw(st.sampled_from(pointers))
    before = copy.deepcopy(document)
    removed, changes = apply_json_patch(document, [{"op": "remove", "path": pointer}])
    assert document == before, "the document was mutated"
    assert [change.op for change in changes] == ["remove"]
    restored, _ = apply_json_patch(removed, [{"op": "add", "path": pointer, "value": changes[0].old}])
    assert restored == document
