"""Shell quoting matches go-shellquote's ``Join`` byte for byte, and ``/bin/sh`` reads the words back."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.functions.shellquote import shell_join, shell_quote


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        # go-shellquote's own Join test vectors.
        (["test"], "test"),
        (["hello goodbye"], "'hello goodbye'"),
        (["hello", "goodbye"], "hello goodbye"),
        (["don't you know the dewey decimal system?"], "'don'\\''t you know the dewey decimal system?'"),
        (
            ["don't", "you", "know", "the", "dewey", "decimal", "system?"],
            "don\\'t you know the dewey decimal system\\?",
        ),
        (["~user", "u~ser", " ~user", "!~user"], "\\~user u~ser ' ~user' \\!~user"),
        (["foo*", "M{ovies,usic}", "ab[cd]", "%3"], "foo\\* M\\{ovies,usic} ab\\[cd] %3"),
        (["one", "", "three"], "one '' three"),
        (["some(parentheses)"], "some\\(parentheses\\)"),
        (["$some_ot~her_)spe!cial_*_characters"], "\\$some_ot~her_\\)spe\\!cial_\\*_characters"),
        (["' "], "\\'' '"),
    ],
)
def test_join_matches_go_shellquote(words: list[str], expected: str) -> None:
    assert shell_join(words) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("", "''"),
        ("plain", "plain"),
        ("a=b=c", "a=b=c"),  # '=' is not special
        ("50%", "50%"),
        ("#hash", "#hash"),  # go-shellquote leaves '#' alone, even first
        ("héllo", "héllo"),
        ("$HOME", "\\$HOME"),
        ('say "hi"', "'say \"hi\"'"),
        ("tab\there", "'tab\there'"),
        ("new\nline", "'new\nline'"),
        ("''", "\\'\\'"),
        ("it's", "it\\'s"),
        ("it's here", "'it'\\''s here'"),
        ("'quoted words'", "\\''quoted words'\\'"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_quote_single_words(word: str, expected: str) -> None:
    assert shell_quote(word) == expected


def test_join_of_nothing_is_empty() -> None:
    assert shell_join([]) == ""


# shlex (POSIX mode) splits on '\r' too and go-shellquote does not quote it, so leave it out.
WORD = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00\r"), max_size=20)


@given(st.lists(WORD, max_size=6))
def test_a_posix_shell_lexer_reads_the_words_back(words: list[str]) -> None:
    lexer = shlex.shlex(shell_join(words), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    assert list(lexer) == words


@pytest.mark.skipif(shutil.which("sh") is None, reason="no /bin/sh")
def test_sh_reads_the_words_back() -> None:
    words = ["plain", "", "two words", "it's", "$HOME", "~user", "a;b|c&d", "tab\tand\nnewline", "*?[x]!"]
    script = "for w in " + shell_join(words) + "; do printf '%s\\0' \"$w\"; done"
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout.decode()
    assert out.split("\0")[:-1] == words
