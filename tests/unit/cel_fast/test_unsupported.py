"""What the fast compiler refuses, so the engine falls back to the ``cel`` library for it.

Refusing is always safe; accepting is only allowed where the result is proven to agree. So these tests
check both directions: features outside the subset are refused with a reason, and anything the ``cel``
library cannot even compile is refused too (the fast compiler never accepts invalid CEL).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.cel_fast import Unsupported, compile_fast
from tests.unit.cel_fast import (
    FUNCTIONS,
    ReferenceCompileError,
    assert_unsupported,
    disagreement,
    run_fast,
    run_reference,
)

OUTSIDE_THE_SUBSET = {
    "1u": "uint",
    "0x1u": "uint",
    "uint(1)": "uint",
    "b'abc'": "bytes",
    "B'abc'": "bytes",
    "bytes('a')": "bytes",
    "type(1)": "type",
    "timestamp('2024-01-01T00:00:00Z')": "timestamp",
    "duration('1s')": "duration",
    "optional.of(1)": "of",
    "[1].first()": "first",
    "[1].last()": "last",
    "base64.decode('YQ==')": "base64.decode",
    "m.?a": "syntax",
    "m[?'a']": "syntax",
    "{?'a': 1}": "optional",
    ".m": "syntax",
    "Foo{a: 1}": "message",
    "m{}": "message",
    "{1: 'a', true: 'b'}": "bool and int keys",
    "'a'.matches('(?=a)')": "invalid regular expression",
    "'a'.matches('(a)\\\\1')": "invalid regular expression",
    "'a'.matches('a{1001}')": "invalid regular expression",
    "'a'.matches('a**')": "invalid regular expression",
    "'a'.matches('[')": "invalid regular expression",
    "matches('a', 'a')": "form",
    "startsWith('abc', 'a')": "form",
    "size()": "form",
    "size(1, 2)": "form",
    "'a'.size(1)": "form",
    "dyn(1, 2)": "form",
    "'a'.int()": "form",
    "noSuchFunction(1)": "unknown function",
    "m.noSuchMethod()": "unknown function",
    "9223372036854775808": "out of range",
    "-9223372036854775809": "out of range",
    "--9223372036854775808": "out of range",
    "1e400": "out of range",
    "-1.7976931348623159e308": "out of range",
    "'\\uD800'": "Unicode",
    "'\\U00110000'": "Unicode",
}


@pytest.mark.parametrize(("source", "reason"), OUTSIDE_THE_SUBSET.items())
def test_features_outside_the_subset_are_refused_with_a_reason(source: str, reason: str) -> None:
    assert reason in assert_unsupported(source)


INVALID_CEL = [
    "", "1 +", "1.", "1.5e", "0X1F", "0x", "'abc", "'a\nb'", "'\\q'", "'\\0'", "'\\400'", "'\\x4'", "rb'a'",
    "1 ? 2", "a ? b ? c : d : e", "in", "m.in", "m.true", "as", "let(1)", "[1].map(let, 1)", "1 <> 2",
    "1 === 2", "1 = 2", "a & b", "a | b", "!", "-!true", "!--1", "f(,)", "m.two(1,)", "[,1]", "[1,,]",
    "has(m)", "has(m['a'])", "has(1)", "l.map(x.y, x)", "l.all(1, true)", "'a' 'b'", "1 /* c */",
    "(1", "1)", "[1", "{'a' 1}", "{'a': }", "m.", "m[]", "@x", "#", "$", "1 + + 2",
]  # fmt: skip


@pytest.mark.parametrize("source", INVALID_CEL)
def test_what_the_cel_library_cannot_compile_is_refused(source: str) -> None:
    with pytest.raises(ReferenceCompileError):
        run_reference(source, {})
    assert_unsupported(source)


CEL_ALPHABET = "()[]{}.,?:!-+*/%<>=&| '\"\\abmnrsxyz0123456789_eu"


@settings(max_examples=1500, deadline=None)
@given(text=st.text(alphabet=CEL_ALPHABET, max_size=14))
def test_arbitrary_text_is_refused_or_agrees_with_the_cel_library(text: str) -> None:
    """The parser is never more lenient than the reference, and what it accepts evaluates the same."""
    activation = {"a": {"b": 1}, "m": {"x": [1, "y"]}, "x": 2, "y": "z", "s": "str", "b": [1, 2.5]}
    try:
        expected = run_reference(text, activation)
    except ReferenceCompileError:
        assert_unsupported(text)
        return
    try:
        actual = run_fast(text, activation)
    except Unsupported:
        return
    problem = disagreement(expected, actual)
    assert problem is None, f"{problem}\n  expression: {text!r}"


def test_a_name_missing_from_functions_is_refused() -> None:
    with pytest.raises(Unsupported, match="lookup"):
        compile_fast("lookup(m, 'a', 1)", {})
    compile_fast("lookup(m, 'a', 1)", FUNCTIONS)
