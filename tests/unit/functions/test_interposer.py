"""The interposers build BUILDKITE_COMMAND exactly as upstream's TestInterposer and reference §3.6 say."""

from __future__ import annotations

import pytest

from engine.core.functions.interposer import INTERPOSERS, interpose

# go-shellquote's Split of `one two three four "five six seven eight"` and `nine ten "eleven twelve"`.
COMMAND = ["one", "two", "three", "four", "five six seven eight"]
ARGS = ["nine", "ten", "eleven twelve"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("buildkite", "one\ntwo\nthree\nfour\nfive six seven eight nine ten 'eleven twelve'"),
        ("", "one\ntwo\nthree\nfour\nfive six seven eight nine ten 'eleven twelve'"),
        ("vector", "one two three four 'five six seven eight' nine ten 'eleven twelve'"),
        ("legacy", "one two three four five six seven eight nine ten eleven twelve"),
    ],
)
def test_upstream_unit_test_vector(mode: str, expected: str) -> None:
    assert interpose(mode, COMMAND, ARGS) == expected


def test_buildkite_treats_each_command_item_as_a_line_and_quotes_args_onto_the_last() -> None:
    command = ["echo 'hello world'", "ls -halt", "touch"]
    assert interpose("buildkite", command, ["example file.txt"]) == (
        "echo 'hello world'\nls -halt\ntouch 'example file.txt'"
    )


def test_buildkite_without_args_adds_nothing() -> None:
    assert interpose("buildkite", ["make test", "make lint"], []) == "make test\nmake lint"


def test_vector_quotes_every_item() -> None:
    assert interpose("vector", ["echo"], ["hello world"]) == "echo 'hello world'"
    assert interpose("vector", ["sh", "-c"], ["echo $HOME; ls"]) == "sh -c 'echo $HOME; ls'"


def test_legacy_joins_without_quoting() -> None:
    assert interpose("legacy", ["echo"], ["hello world"]) == "echo hello world"


@pytest.mark.parametrize("mode", ["Buildkite", "shell", " vector", "none"])
def test_unknown_mode_is_a_one_line_error(mode: str) -> None:
    with pytest.raises(ValueError, match=r'^invalid command interposer "') as caught:
        interpose(mode, ["true"], [])
    assert str(caught.value) == f'invalid command interposer "{mode}"'


def test_the_listed_modes_are_exactly_the_accepted_ones() -> None:
    results = {mode: interpose(mode, ["a b"], ["c d"]) for mode in INTERPOSERS}
    assert results == {
        "": "a b 'c d'",
        "buildkite": "a b 'c d'",
        "vector": "'a b' 'c d'",
        "legacy": "a b c d",
    }
