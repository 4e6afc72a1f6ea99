"""``matches()``: CEL's regular expressions, which are RE2's, evaluated by RE2 itself (``google-re2``).

Why RE2 and not Python's ``re`` or the ``cel`` library's own engine: CEL defines ``matches`` by RE2
syntax and semantics, and RE2 runs in time linear in the text whatever the pattern. Python's
backtracking ``re`` takes seconds on a few thousand characters for patterns such as ``(a+)+$``, and
both ``re`` and Rust's ``regex`` crate (inside the ``cel`` library) read some patterns differently from
RE2 (``\\w`` and ``\\d`` are Unicode there and ASCII in RE2; case folding and ``$`` differ). Both
evaluation paths, the compiled fast path and the ``cel`` library, call :func:`re2_matches`, so a
policy means the same thing on both and the same thing it means in Kubernetes' own CEL.

A ``matches`` is a partial match (``search``), as in CEL. An invalid pattern or a non-string argument
is a one-line error. Compiled patterns are cached (policies use a handful of patterns over and over).
"""

from __future__ import annotations

import functools
from typing import Any

import re2

_CACHE_SIZE = 512


class RegexError(ValueError):
    """A pattern RE2 cannot compile, or ``matches`` applied to something that is not a string."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would otherwise print parse errors on stderr
    return options


_OPTIONS = _options()


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 program for ``pattern``; raise :class:`RegexError` when it is not valid RE2."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(f"invalid regular expression {pattern!r}: {reason}") from None


def re2_matches(text: object, pattern: object) -> bool:
    """CEL ``text.matches(pattern)``: whether RE2 finds ``pattern`` anywhere in ``text``."""
    if type(text) is not str or type(pattern) is not str:
        raise RegexError(f"no such overload: matches({_type(text)}, {_type(pattern)})")
    return compile_pattern(pattern).search(text) is not None


def _type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "double", str: "string", list: "list", dict: "map"}.get(
        type(value), type(value).__name__
    )
