"""A fast evaluator for the subset of CEL that policies use, on plain JSON-shaped Python values.

Why it exists: the ``cel`` library converts every Python value into a CEL value (~2 µs per object)
and rebuilds its context after each new variable, so a job's ~90 evaluations cost ~3 ms. Policy
expressions mostly shuffle JSON, which Python closures over the same dicts and lists do in about a
microsecond with no conversion at all.

``compile_fast`` either returns a program that gives exactly the ``cel`` library's result (or raises
:class:`CelError` where the library fails), or raises :class:`Unsupported` at compile time, and the
caller keeps using the ``cel`` library for that expression. ``tests/unit/cel_fast`` checks the "exactly"
differentially against the library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.core.cel_fast.compiler import Compiler
from engine.core.cel_fast.errors import CelError, Unsupported
from engine.core.cel_fast.parser import parse

__all__ = ["CelError", "FastProgram", "Unsupported", "compile_fast"]

FastProgram = Callable[[Mapping[str, Any]], Any]
"""Evaluates against an activation mapping root names to values; raises :class:`CelError`."""


def compile_fast(source: str, functions: Mapping[str, Callable[..., Any]]) -> FastProgram:
    """Compile CEL ``source`` into a Python closure, or raise :class:`Unsupported`.

    ``functions`` maps CEL function names (dotted ones such as ``lists.range`` included) to the Python
    callables the ``cel`` library would call; ``x.f(a)`` calls ``f(x, a)``. The program never mutates
    the activation and may return parts of it (JSON values are treated as immutable). Its ints are
    expected in the signed 64-bit range, as JSON data is; any failure surfaces as :class:`CelError`.
    """
    compiler = Compiler(functions)
    evaluate = compiler.compile(parse(source))
    slots = compiler.slots

    def program(activation: Mapping[str, Any]) -> Any:
        try:
            return evaluate(activation, [None] * slots if slots else _NO_VARIABLES)
        except CelError:
            raise
        except Exception as exc:  # e.g. an int beyond 64 bits in the activation, which CEL has not
            raise CelError(f"cannot evaluate {source!r}: {type(exc).__name__}: {exc}") from None

    return program


_NO_VARIABLES: list[Any] = []  # the frame of expressions without comprehensions: never written
