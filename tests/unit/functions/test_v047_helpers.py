"""The helpers the upstream-v0.47 profile calls, on both evaluation paths (the CEL library and the
fast path), and the image reference grammar they rest on."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.expressions import Activation, HelperRegistry, compile_expression
from engine.core.function_registry import HELPERS, REGISTRY
from engine.core.functions.lists import distinct_by, go_duration, rounded_table, set_env, without_keys
from engine.model.image_ref import has_upper_case_name, parse_image_reference

LIBRARY_ONLY = HelperRegistry(HELPERS, fast=False)


@pytest.mark.parametrize(
    ("image", "error", "digest"),
    [
        ("alpine", "", ""),
        ("ghcr.io/buildkite/agent:3.136.2", "", ""),
        ("localhost:5000/team/app:v1.2", "", ""),
        ("[::1]:5000/app", "", ""),
        ("app@sha256:" + "0" * 64, "", "sha256:" + "0" * 64),
        ("registry.example.com/app:1@sha512:" + "f" * 128, "", "sha512:" + "f" * 128),
        ("buildkite/agent:latest plus some extra junk", "invalid reference format", ""),
        ("Alpine:3", "repository name must be lowercase", ""),
        ("", "repository name must have at least one component", ""),
        ("example.org/my-container@latest", "invalid reference format", ""),
        ("app@sha256:abc" + "0" * 30, "invalid checksum digest length", ""),
        ("app@md5:" + "0" * 32, "unsupported digest algorithm", ""),
        ("a" * 256, "repository name must not be more than 255 characters", ""),
        ("a:" + "t" * 129, "invalid reference format", ""),
        ("a" * 5000, "invalid reference format", ""),
    ],
)
def test_image_references_parse_like_the_distribution_library(image: str, error: str, digest: str) -> None:
    parsed = parse_image_reference(image)
    assert (parsed.error, parsed.digest) == (error, digest)


def test_upper_case_repository_names() -> None:
    assert has_upper_case_name("Example.org/tool:1")
    assert not has_upper_case_name("example.org/tool:V1")  # a tag may have capitals
    assert not has_upper_case_name("localhost:5000/tool")


def test_set_env_replaces_in_place_and_appends() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}]
    assert set_env(env, [{"name": "A", "value": "x"}, {"name": "C", "value": "c"}]) == [
        {"name": "A", "value": "x"},
        {"name": "B", "value": "2"},
        {"name": "C", "value": "c"},
    ]
    assert env[0] == {"name": "A", "value": "1"}  # the input is left alone


def test_small_list_helpers() -> None:
    assert without_keys({"a": 1, "b": 2, "c": 3}, ["a", "c"]) == {"b": 2}
    mounts = [{"mountPath": "/a", "name": "x"}, {"mountPath": "/a", "name": "y"}]
    mounts.append({"mountPath": "/b", "name": "z"})
    assert distinct_by(mounts, "mountPath") == [mounts[0], mounts[2]]
    assert [go_duration(s) for s in (60, 90.5, 3600, 0)] == ["1m0s", "1m30.5s", "1h0m0s", "0s"]
    with pytest.raises(ValueError, match="expected a number of seconds"):
        go_duration("1m")  # type: ignore[arg-type]


def test_rounded_table() -> None:
    assert rounded_table(["A", "LONGER"], [["x", "y"], ["wide cell", ""]]) == "\n".join(
        [
            "╭───────────┬────────╮",
            "│ A         │ LONGER │",
            "├───────────┼────────┤",
            "│ x         │ y      │",
            "│ wide cell │        │",
            "╰───────────┴────────╯",
        ]
    )
    with pytest.raises(ValueError, match="table row has 1 cells, expected 2"):
        rounded_table(["A", "B"], [["x"]])


EXPRESSIONS: list[tuple[str, Any]] = [
    ('imageRef("alpine@sha256:' + "a" * 64 + '").digest != ""', True),
    ('imageRef("Bad").error', "repository name must be lowercase"),
    ("imageRef(3).valid", False),
    ('setEnv([{"name": "A", "value": "1"}], [{"name": "A", "value": "2"}])', [{"name": "A", "value": "2"}]),
    ('withoutKeys({"command": ["x"], "name": "n"}, ["command", "args"])', {"name": "n"}),
    ('distinctBy([{"mountPath": "/a"}, {"mountPath": "/a"}], "mountPath")', [{"mountPath": "/a"}]),
    ("goDuration(300)", "5m0s"),
    ('roundedTable(["A"], [["b"]])', "╭───╮\n│ A │\n├───┤\n│ b │\n╰───╯"),
]


@pytest.mark.parametrize(("source", "expected"), EXPRESSIONS, ids=[s for s, _ in EXPRESSIONS])
def test_helpers_on_both_evaluation_paths(source: str, expected: Any) -> None:
    fast = compile_expression(source, REGISTRY)
    library = compile_expression(source, LIBRARY_ONLY)
    assert fast.fast is not None
    assert library.fast is None
    assert Activation({}, REGISTRY).evaluate(fast) == expected
    assert Activation({}, LIBRARY_ONLY).evaluate(library) == expected
