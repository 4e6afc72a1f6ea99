"""Every binary operator applied to every pair of a set of operands of every CEL type, and every unary
operator to every operand, compared with the ``cel`` library.

The random trees in ``test_generated`` combine operators; this exhaustive matrix makes sure no single
type pairing (``true == 1``, ``1 < 1.5``, ``[1] + ['a']``, ``-9223372036854775808 / -1``...) is left to
chance.
"""

from __future__ import annotations

from typing import Any

from engine.core.cel_fast import Unsupported
from tests.unit.cel_fast import ReferenceCompileError, disagreement, run_fast, run_reference

OPERANDS = [
    "0", "1", "-1", "2", "3", "9223372036854775807", "-9223372036854775808", "9007199254740993",
    "0.0", "-0.0", "1.0", "1.5", "-2.5", "2.0", "9007199254740992.0", "1e300", "nan", "inf",
    "''", "'a'", "'b'", "'é'", "'ab'", "true", "false", "null", "[]", "[1]", "[1.0]", "[true]", "['a']",
    "[1, 'a']", "{}", "{'a': 1}", "{'a': 1.0}", "{'b': 1}", "{1: 'a'}", "{true: 'a'}", "{'a': [1]}", "m",
]  # fmt: skip
BINARY = ["==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%", "&&", "||"]
ACTIVATION: dict[str, Any] = {"nan": float("nan"), "inf": float("inf"), "m": {"a": 1, "b": None}}


def disagreements(sources: list[str]) -> list[str]:
    """Each source where the two evaluators differ, described. ``m`` has two keys, so a list built
    from it may come back from the ``cel`` library in either order."""
    problems = []
    for source in sources:
        try:
            expected = run_reference(source, ACTIVATION)
        except ReferenceCompileError:
            expected = None
        try:
            actual = run_fast(source, ACTIVATION)
        except Unsupported:
            actual = None
        if expected is None or actual is None:
            if expected is not actual:
                problems.append(f"{source}: only one evaluator accepts it")
            continue
        unordered = source.endswith("+ m") or source.startswith("(m).")
        problem = disagreement(expected, actual, unordered)
        if problem is not None:
            problems.append(f"{source}: {problem}")
    return problems


def test_every_binary_operator_on_every_pair_of_operand_types() -> None:
    sources = [f"{left} {op} {right}" for op in BINARY for left in OPERANDS for right in OPERANDS]
    assert disagreements(sources) == []


def test_every_unary_operator_on_every_operand() -> None:
    sources = [f"{op}{operand}" for op in ("!", "-", "!!", "--") for operand in OPERANDS]
    sources += [f"{op}({operand})" for op in ("!", "-") for operand in OPERANDS]
    assert disagreements(sources) == []


def test_every_ternary_condition_type() -> None:
    assert disagreements([f"{operand} ? 'yes' : 'no'" for operand in OPERANDS]) == []


def test_every_conversion_and_size_on_every_operand() -> None:
    functions = ["size", "int", "double", "string", "dyn", "bool"]
    sources = [f"{function}({operand})" for function in functions for operand in OPERANDS]
    sources += [f"({operand}).size()" for operand in OPERANDS]
    assert disagreements(sources) == []


def test_every_member_and_index_access_on_every_operand() -> None:
    sources = [f"({operand}).a" for operand in OPERANDS]
    sources += [f"has(({operand}).a)" for operand in OPERANDS]
    sources += [f"({container})[{key}]" for container in OPERANDS for key in OPERANDS]
    assert disagreements(sources) == []


def test_every_string_method_on_every_pair_of_operands() -> None:
    methods = ["startsWith", "endsWith", "contains"]
    sources = [f"({left}).{method}({right})" for method in methods for left in OPERANDS for right in OPERANDS]
    sources += [f"contains({left}, {right})" for left in OPERANDS for right in OPERANDS]
    sources += [f"({operand}).matches('a')" for operand in OPERANDS]
    assert disagreements(sources) == []


def test_every_comprehension_over_every_operand() -> None:
    bodies = {
        "all": "v == 1",
        "exists": "v == 1",
        "exists_one": "v == 1",
        "filter": "v != 'b'",
        "map": "v",
    }
    sources = [f"({operand}).{macro}(v, {body})" for macro, body in bodies.items() for operand in OPERANDS]
    sources += [f"({operand}).map(v, v != 'b', [v])" for operand in OPERANDS]
    sources += [f"({operand}).all(v, v)" for operand in OPERANDS]
    sources += [f"({operand}).exists(v, v)" for operand in OPERANDS]
    assert disagreements(sources) == []
