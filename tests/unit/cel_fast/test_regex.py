"""``matches()`` is RE2 on both evaluation paths: same answers, RE2's semantics, linear time.

Every pattern is run on every subject by the fast path and by the ``cel`` library as the engine runs
it; the subjects hit the places where RE2 differs from Python's ``re`` and Rust's ``regex`` (a final
newline before ``$``, Unicode digits and word characters, case folding, whitespace classes).
"""

from __future__ import annotations

import pytest

from engine.core.expressions import library_source
from engine.core.regex import RegexError, compile_pattern, re2_matches
from tests.unit.cel_fast import assert_agrees, run_fast, run_reference

PATTERNS = [
    "", "a", "^a", "a$", "^a$", "b$", "^$", "a.c", "a.*c", "a+", "a*?b", "a?", "a{2}", "a{2,}", "a{1,2}",
    "x|y", "(ab)+", "(?:ab)*c", "(?P<name>a)b", "[a-z]+", "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "[^,]+",
    "[-a]", "[a-]", "[\\]]", "[\\-]", "\\d+", "\\D", "\\s", "\\S", "[\\s,]", "[\\d.]+", "\\.", "\\*",
    "\\x41", "\\x{e9}", "\\n", "\\t", "\\A", "a\\z", "(?i)ab", "(?i)é", "(?i)k", "(?i)s", "(?s)a.b",
    "(?m)^b$", "(?m)a$", "(?im)^A", "é", "日本", "😀", "a}", "]", "a]", "^(a|b)c$", "(a|b)?", "(a*){0,1}",
    "(a)(b)", "(|a)", "\\$", "\\^", "[$]", "[.]", "a{0}", "a{0,1}?", "\\w", "\\W", "\\b", "\\B", "\\pL",
    "\\p{L}", "[[:alpha:]]", "(?i:a)", "a(?i)b", "(a+)+", "(a|b)*", "(a|b){2}", "(a*){1,}", "((a)*)*",
    "[^\\x00-\\x7f]", "\\Qa.b\\E", "(?U)a+", "\\C",
]  # fmt: skip
SUBJECTS = [
    "", "a", "abc", "ab\n", "a\nb\nc", "a\r\n", "b", "aa", "ABC", "x y", "a,b", "a\x1cb", "a\x85b",
    "a\u2028b", "9", "٣", "é", "É", "K", "ſ", "日本語", "😀", "a}", "]", "a]", "$", "^", "a.b",
    "a-b", "abab c", "foo-bar1", "-a", "A", "a\u3000b", "_", "²",
]  # fmt: skip


def literal(pattern: str) -> str:
    return "'" + pattern.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_both_paths_agree_on_every_subject(pattern: str) -> None:
    for subject in SUBJECTS:
        outcome = assert_agrees(f"s.matches({literal(pattern)})", {"s": subject})
        assert outcome.value == re2_matches(subject, pattern)


@pytest.mark.parametrize("pattern", ["a", "^\\d+$", "(?i)K"])
def test_a_computed_pattern_is_re2_too(pattern: str) -> None:
    for subject in SUBJECTS:
        assert_agrees("s.matches(p)", {"s": subject, "p": pattern})


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("b$", "ab\n", False),  # $ is the end of the text (Python: also before a final newline)
        ("b\\z", "ab\n", False),
        ("(?m)b$", "ab\n", True),
        ("\\d", "٣", False),  # ASCII digits only (Python and Rust: any Unicode digit)
        ("\\w", "é", False),  # ASCII word characters only
        ("\\w", "²", False),
        ("\\s", "\x1c", False),  # Perl's \s: [\t\n\f\r ] (Python adds \x1c-\x1f)
        ("\\s", "\u3000", False),
        ("(?i)k", "\u212a", True),  # Unicode simple case folding: the Kelvin sign
        ("(?i)s", "ſ", True),
        ("(?i)ß", "ẞ", True),
        ("\\pL", "é", True),
        ("[[:alpha:]]", "é", False),
        ("(a+)+$", "a" * 5_000 + "!", False),  # catastrophic for a backtracking engine
        ("(x+x+)+y", "x" * 5_000, False),
        ("^(a|aa)*$", "a" * 5_000 + "b", False),
    ],
)
def test_re2_semantics(pattern: str, subject: str, expected: bool) -> None:
    assert re2_matches(subject, pattern) is expected
    assert run_fast(f"s.matches({literal(pattern)})", {"s": subject}).value is expected
    assert run_reference(f"s.matches({literal(pattern)})", {"s": subject}).value is expected


@pytest.mark.parametrize("pattern", ["(?=a)", "(?<=a)b", "(a)\\1", "a{1001}", "a**", "(", "[a", "\\"])
def test_patterns_re2_rejects_fail_on_both_paths_with_one_line(pattern: str) -> None:
    with pytest.raises(RegexError) as caught:
        compile_pattern(pattern)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"invalid regular expression {pattern!r}: ")
    source = "s.matches(p)"
    assert run_fast(source, {"s": "a", "p": pattern}).error is not None
    assert run_reference(source, {"s": "a", "p": pattern}).error is not None


def test_matches_on_a_non_string_is_an_error_on_both_paths() -> None:
    assert_agrees("n.matches('a')", {"n": 1})
    assert run_fast("n.matches('a')", {"n": 1}).error == "no such overload: matches(int, string)"


def test_only_method_calls_outside_string_literals_are_rewritten_for_the_library() -> None:
    assert library_source("x.matches('a') && 'y.matches(' == y.matches ('b')") == (
        "x.__re2_matches('a') && 'y.matches(' == y.__re2_matches('b')"
    )
    assert library_source("m.matches == 1") == "m.matches == 1"
