"""``matches()``: RE2 patterns translated to Python ``re``, checked against the ``cel`` library.

Every translated pattern is run on every subject by both evaluators; the subjects are chosen to hit
the places where the two engines differ when used naively (a final newline before ``$``, the extra
Python whitespace characters, Unicode case folding).
"""

from __future__ import annotations

import pytest

from engine.core.cel_fast import Unsupported
from engine.core.cel_fast.regex import compile_re2
from tests.unit.cel_fast import assert_agrees

PATTERNS = [
    "", "a", "^a", "a$", "^a$", "b$", "^$", "a.c", "a.*c", "a+", "a*?b", "a?", "a{2}", "a{2,}", "a{1,2}",
    "x|y", "(ab)+", "(?:ab)*c", "(?P<name>a)b", "[a-z]+", "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "[^,]+",
    "[-a]", "[a-]", "[\\]]", "[\\-]", "\\d+", "\\D", "\\s", "\\S", "[\\s,]", "[\\d.]+", "\\.", "\\*",
    "\\/", "\\-", "\\#", "\\ ", "\\x41", "\\x{e9}", "\\u00e9", "\\n", "\\t", "\\A", "a\\z", "(?i)ab",
    "(?i)é", "(?i)k", "(?i)s", "(?s)a.b", "(?m)^b$", "(?m)a$", "(?im)^A", "é", "日本", "😀", "a}", "]", "a]",
    "^(a|b)c$", "(a|b)?", "(a*){0,1}", "(a)(b)", "(|a)", "\\$", "\\^", "[$]", "[.]", "a{0}", "a{0,1}?",
]  # fmt: skip
SUBJECTS = [
    "", "a", "abc", "ab\n", "a\nb\nc", "a\r\n", "b", "aa", "ABC", "x y", "a,b", "a\x1cb", "a\x85b",
    "a\u2028b", "9", "٣", "é", "É", "K", "ſ", "日本語", "😀", "a}", "]", "a]", "$", "^", "a.b",
    "a-b", "abab c", "foo-bar1", "-a", "A",
]  # fmt: skip


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_agrees_with_the_cel_library_on_every_subject(pattern: str) -> None:
    literal = "'" + pattern.replace("\\", "\\\\").replace("'", "\\'") + "'"
    for subject in SUBJECTS:
        assert_agrees(f"s.matches({literal})", {"s": subject})


def test_end_of_text_anchors_never_match_before_a_final_newline() -> None:
    assert compile_re2("b$").search("ab\n") is None
    assert compile_re2("b\\z").search("ab\n") is None
    assert compile_re2("(?m)b$").search("ab\n") is not None


def test_whitespace_is_the_re2_set_not_pythons() -> None:
    assert compile_re2("\\s").search("\x1c") is None
    assert compile_re2("\\s").search("\u3000") is not None
    assert compile_re2("\\S").search("\x1c") is not None


REFUSED = [
    "\\w", "\\W", "\\b", "\\B", "\\pL", "\\p{L}", "\\e", "\\0", "\\1", "\\<", "a\\Z", "(?=a)", "(?!a)",
    "(?<=a)b", "(?<n>a)", "(?i:a)", "a(?i)b", "[[:alpha:]]", "[[a]]", "[a&&b]", "[a--b]", "[a~~b]",
    "[]a]", "a**", "a*+", "a+*", "^*", "*a", "{", "a{", "a{,2}", "a{2,1}", "(a+)+", "(a|b)*",
    "(a|b){2}", "(a*){1,}", "((a)*)*", "(a", "a)", "[a", "\\",
]  # fmt: skip


@pytest.mark.parametrize("pattern", REFUSED)
def test_patterns_the_engines_disagree_on_are_refused(pattern: str) -> None:
    with pytest.raises(Unsupported):
        compile_re2(pattern)
