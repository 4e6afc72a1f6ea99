"""Differential checks of ``engine.core.cel_fast`` against the ``cel`` library it must agree with.

The reference is the library exactly as the engine runs it: ``matches()`` rewritten to call RE2
(``engine.core.expressions.library_source``), since both paths must mean RE2.

Shared by the test modules here: :func:`run_reference` evaluates with the library, :func:`run_fast`
with the fast compiler, and :func:`assert_agrees` requires the same value (compared type-strictly,
so ``1``, ``1.0`` and ``True`` differ) or an error from both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cel
from cel.stdlib import STDLIB_FUNCTIONS

from engine.core.cel_fast import CelError, Unsupported, compile_fast
from engine.core.expressions import LIBRARY_MATCHES, library_source
from engine.core.function_registry import HELPERS
from engine.core.regex import re2_matches

FUNCTIONS: dict[str, Callable[..., Any]] = {**STDLIB_FUNCTIONS, **HELPERS}
"""What the engine registers: the ``cel`` extended standard library plus the policy helpers."""
LIBRARY_ONLY: dict[str, Callable[..., Any]] = {LIBRARY_MATCHES: re2_matches, "matches": re2_matches}
"""What the engine adds for the library path only: ``matches`` is RE2 there too."""


@dataclass(frozen=True)
class Outcome:
    """A value, or ``error`` set to the failure's message."""

    value: Any = None
    error: str | None = None

    def describe(self) -> str:
        return f"error: {self.error}" if self.error is not None else f"value: {self.value!r}"


class ReferenceCompileError(Exception):
    """The ``cel`` library does not compile the expression."""


def run_reference(
    source: str, activation: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]] = FUNCTIONS
) -> Outcome:
    try:
        program = cel.compile(library_source(source))
    except Exception as exc:
        raise ReferenceCompileError(str(exc)) from None
    context = cel.Context(variables=dict(activation), functions={**functions, **LIBRARY_ONLY})
    try:
        return Outcome(value=program.execute(context))
    except Exception as exc:
        return Outcome(error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


def run_fast(
    source: str, activation: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]] = FUNCTIONS
) -> Outcome:
    """Raises :class:`Unsupported` when the expression is outside the subset."""
    program = compile_fast(source, functions)
    try:
        return Outcome(value=program(activation))
    except CelError as exc:
        message = str(exc)
        assert "\n" not in message, f"multi-line error message: {message!r}"
        return Outcome(error=message)


def strict_equal(left: Any, right: Any, unordered: bool = False) -> bool:
    """Equality that tells ``1``, ``1.0`` and ``True`` apart, NaN equal to NaN, ``-0.0`` from ``0.0``.

    Map order never matters; with ``unordered`` neither does list order (for results built by
    iterating a map, whose order the ``cel`` library does not keep).
    """
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return left == right and math.copysign(1.0, left) == math.copysign(1.0, right)
    if isinstance(left, list):
        if len(left) != len(right):
            return False
        if not unordered:
            return all(strict_equal(a, b) for a, b in zip(left, right, strict=True))
        remaining = list(right)
        for item in left:
            match = next((i for i, other in enumerate(remaining) if strict_equal(item, other)), None)
            if match is None:
                return False
            remaining.pop(match)
        return True
    if isinstance(left, dict):
        if len(left) != len(right):
            return False
        for key, value in left.items():
            twin = next((k for k in right if type(k) is type(key) and k == key), _ABSENT)
            if twin is _ABSENT or not strict_equal(value, right[twin]):
                return False
        return True
    return bool(left == right)


_ABSENT = object()


def disagreement(expected: Outcome, actual: Outcome, unordered: bool = False) -> str | None:
    """Why two outcomes differ (value against error, or unequal values), or None when they agree."""
    if expected.error is not None and actual.error is not None:
        return None
    both_values = expected.error is None and actual.error is None
    if both_values and strict_equal(expected.value, actual.value, unordered):
        return None
    return f"cel gave {expected.describe()}, fast gave {actual.describe()}"


def assert_agrees(
    source: str,
    activation: Mapping[str, Any] | None = None,
    functions: Mapping[str, Callable[..., Any]] = FUNCTIONS,
    unordered: bool = False,
) -> Outcome:
    """Both evaluators give the same value, or both fail. Returns the fast outcome."""
    activation = {} if activation is None else activation
    actual = run_fast(source, activation, functions)
    problem = disagreement(run_reference(source, activation, functions), actual, unordered)
    assert problem is None, f"{problem}\n  expression: {source}\n  activation: {activation!r}"
    return actual


def assert_unsupported(source: str, functions: Mapping[str, Callable[..., Any]] = FUNCTIONS) -> str:
    """The fast compiler refuses ``source``; returns its reason."""
    try:
        compile_fast(source, functions)
    except Unsupported as exc:
        return str(exc)
    raise AssertionError(f"expected Unsupported for {source!r}")
