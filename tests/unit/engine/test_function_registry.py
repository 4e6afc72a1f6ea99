"""The helper functions policies call, directly and through CEL."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.expressions import Activation, EvaluationError, compile_expression
from engine.core.function_registry import (
    REGISTRY,
    ROLE_KEY,
    invalid_labels,
    is_abs_path,
    kv_map,
    lookup,
    map_of,
    merge,
    non_empty,
    path_dir,
    path_join,
    prefix_keys,
    quantity_bytes,
    quantity_millis,
    role_of,
    to_json,
    valid_labels,
    with_fragment,
    without_names,
)


def cel(source: str, **values: Any) -> Any:
    return Activation(values, REGISTRY).evaluate(compile_expression(source, REGISTRY))


def test_kv_map_splits_at_the_first_equals_and_skips_bad_entries() -> None:
    assert kv_map(["queue=a", "os=linux=x", "broken", "=v"]) == {"queue": "a", "os": "linux=x"}


def test_map_of_builds_computed_keys_and_rejects_bad_pairs() -> None:
    assert map_of([["a", 1], ["b", [2]]]) == {"a": 1, "b": [2]}
    with pytest.raises(ValueError, match=r"expected \[key, value\] pairs"):
        map_of([["a", 1, 2]])


def test_merge_later_wins_and_ignores_null() -> None:
    assert merge({"a": 1, "b": 1}, None, {"b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="takes maps"):
        merge({"a": 1}, [1])  # type: ignore[arg-type]


def test_prefix_keys_and_label_validity() -> None:
    labels = prefix_keys({"queue": "gpu", "os": "*", "bad key": "x"}, "tag.buildkite.com/")
    assert valid_labels(labels) == {"tag.buildkite.com/queue": "gpu"}
    assert invalid_labels(labels) == ["tag.buildkite.com/bad key=x", "tag.buildkite.com/os=*"]


def test_without_names_keeps_order() -> None:
    env = [{"name": "A"}, {"name": "B"}, {"name": "C"}]
    assert without_names(env, ["B"]) == [{"name": "A"}, {"name": "C"}]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bk/o/p/builds/1", "https://bk/o/p/builds/1#u"),
        ("https://bk/o/p/builds/1#old", "https://bk/o/p/builds/1#u"),
        ("", "#u"),
    ],
)
def test_with_fragment(url: str, expected: str) -> None:
    assert with_fragment(url, "u") == expected


def test_lookup_walks_maps_and_defaults_on_missing_or_null() -> None:
    value = {"a": {"b": {"c": 3}, "n": None}}
    assert lookup(value, "a.b.c", 0) == 3
    assert lookup(value, "a.x.c", 0) == 0
    assert lookup(value, "a.n", "d") == "d"
    assert lookup(None, "a", []) == []


def test_non_empty() -> None:
    assert non_empty([]) is None
    assert non_empty({}) is None
    assert non_empty("") is None
    assert non_empty([0]) == [0]
    assert non_empty(0) == 0
    assert non_empty(False) is False


def test_role_of() -> None:
    assert role_of({"name": "x", ROLE_KEY: "sidecar"}) == "sidecar"
    assert role_of({"name": "x"}) == ""


def test_to_json_is_compact_and_sorted() -> None:
    assert to_json({"b": [1], "a": "x"}) == '{"a":"x","b":[1]}'


@pytest.mark.parametrize(
    ("quantity", "units", "millis"),
    [
        ("8Gi", 8 * 2**30, 8 * 2**30 * 1000),
        ("500m", 1, 500),
        ("1.5", 2, 1500),
        (2, 2, 2000),
        ("1e3", 1000, 10**6),
    ],
)
def test_quantities(quantity: str | int, units: int, millis: int) -> None:
    assert quantity_bytes(quantity) == units
    assert quantity_millis(quantity) == millis


def test_invalid_quantity_is_an_error() -> None:
    with pytest.raises(ValueError, match="lots"):
        quantity_bytes("lots")


def test_paths() -> None:
    assert path_dir("/a/b/key") == "/a/b"
    assert path_join("/a", "key") == "/a/key"
    assert is_abs_path("/a")
    assert not is_abs_path("a/b")


def test_helpers_through_cel() -> None:
    assert cel('merge({"a": 1}, {"b": 2})') == {"a": 1, "b": 2}
    assert cel('lookup(plugin, "checkout.skip", false)', plugin={"checkout": {"skip": True}}) is True
    assert cel('interpose("vector", ["echo"], ["hello world"])') == "echo 'hello world'"
    assert cel('shellQuote("a b")') == "'a b'"
    assert cel('quantityBytes("1Ki") == 1024') is True


def test_a_failing_helper_is_an_evaluation_error_naming_it() -> None:
    with pytest.raises(EvaluationError, match=r'interpose\(\): invalid command interposer "shell"'):
        cel('interpose("shell", ["a"], [])')
