"""The list helpers the guardrail policies use: names in a list, changed env entries, changed commands."""

from __future__ import annotations

from typing import Any

from engine.core.function_registry import changed_commands, changed_env, names_in, only_names

ENV: list[dict[str, Any]] = [
    {"name": "A", "value": "1"},
    {"name": "SHELL", "value": "/bin/sh"},
    {"name": "B", "value": "2"},
    {"name": "SHELL", "value": "/bin/bash"},
]


def test_names_in_keeps_first_occurrence_order_and_only_wanted_names() -> None:
    assert names_in(ENV, ["SHELL", "B", "Z"]) == ["SHELL", "B"]
    assert names_in([], ["A"]) == []


def test_only_names_is_the_complement_of_without_names() -> None:
    assert only_names(ENV, ["SHELL"]) == [ENV[1], ENV[3]]


def test_changed_env_compares_each_names_entries_in_order() -> None:
    assert changed_env(ENV, ENV, ["SHELL"]) == []
    assert changed_env(list(ENV), [dict(e) for e in ENV], ["SHELL", "A"]) == []
    swapped = [ENV[0], ENV[3], ENV[2], ENV[1]]
    assert changed_env(swapped, ENV, ["A", "SHELL", "B"]) == ["SHELL"]
    moved = [ENV[1], ENV[0], ENV[3], ENV[2]]
    assert changed_env(moved, ENV, ["A", "SHELL", "B"]) == []
    assert changed_env([*ENV, {"name": "A", "value": "x"}], ENV, ["B", "A"]) == ["A"]
    assert changed_env(ENV[1:], ENV, ["A", "B"]) == ["A"]
    valued: list[dict[str, Any]] = [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        *ENV[1:],
    ]
    assert changed_env(valued, ENV, ["A"]) == ["A"]


def test_changed_commands_matches_by_name_and_counts_null_as_empty() -> None:
    before: list[dict[str, Any]] = [
        {"name": "a", "command": ["x"], "args": ["1"]},
        {"name": "b", "args": []},
        {"name": "c", "command": ["y"]},
    ]
    after: list[dict[str, Any]] = [
        {"name": "c", "command": ["y"]},
        {"name": "a", "command": ["x"]},
        {"name": "b", "command": None},
        {"name": "new", "command": ["z"]},
    ]
    assert changed_commands(before, after) == ["a"]
    assert changed_commands(before, before) == []
