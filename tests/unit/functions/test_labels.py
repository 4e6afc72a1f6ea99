"""Label keys and values are accepted exactly when the Kubernetes API server would accept them."""

from __future__ import annotations

import pytest

from engine.core.functions.labels import is_label_key, is_label_value, label_problems

NAME_63 = "a" * 63
PREFIX_253 = ".".join(["b" * 63, "c" * 63, "d" * 63, "e" * 61])


@pytest.mark.parametrize(
    "key",
    [
        "queue",
        "tag.buildkite.com/queue",
        "buildkite.com/job-uuid",
        "argocd.argoproj.io/tracking-id",
        "A_b.c-D",
        "x",
        "9",
        NAME_63,
        f"{PREFIX_253}/{NAME_63}",
        "example.com/MyName",
    ],
)
def test_valid_keys(key: str) -> None:
    assert is_label_key(key)
    assert label_problems(key, "") == []


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "name part must not be empty"),
        ("example.com/", "name part must not be empty"),
        ("/name", "prefix part must not be empty"),
        ("a/b/c", "optional DNS subdomain prefix"),
        ("a" * 64, "no more than 63 characters"),
        ("-leading", "must consist of"),
        ("trailing.", "must consist of"),
        ("has space", "must consist of"),
        ("tag.buildkite.com/os*", "must consist of"),
        ("Example.com/name", "lower-case DNS subdomain"),
        ("example_com/name", "lower-case DNS subdomain"),
        (f"{PREFIX_253}x/name", "no more than 253 characters"),
        ("ünïcode", "must consist of"),
    ],
)
def test_invalid_keys(key: str, problem: str) -> None:
    assert not is_label_key(key)
    problems = label_problems(key, "v")
    assert len(problems) >= 1
    assert problem in problems[0]
    assert problems[0].startswith(f'label key "{key}": ')


@pytest.mark.parametrize("value", ["", "kubernetes", "my-queue", "1.2.3", "A_b", NAME_63])
def test_valid_values(value: str) -> None:
    assert is_label_value(value)
    assert label_problems("k", value) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("*", "must be empty or consist of"),
        ("a" * 64, "no more than 63 characters"),
        ("with space", "must be empty or consist of"),
        ("-x", "must be empty or consist of"),
        ("x\n", "must be empty or consist of"),
    ],
)
def test_invalid_values(value: str, problem: str) -> None:
    assert not is_label_value(value)
    (line,) = label_problems("queue", value)
    assert problem in line
    assert line.startswith('label "queue" value ')


def test_non_strings_are_not_labels() -> None:
    assert not is_label_key(5)
    assert not is_label_value(None)
    assert not is_label_value(True)


def test_problems_cover_key_and_value_together() -> None:
    problems = label_problems("bad key", "bad value")
    assert len(problems) == 2
    assert problems[0].startswith('label key "bad key"')
    assert problems[1].startswith('label "bad key" value "bad value"')
