"""The one module that binds CEL: compiling expressions and evaluating them against a job.

The binding is ``common-expression-language`` (module ``cel``, a Rust implementation). Measured on the
2-core CI machine it evaluates a simple expression from a prepared context in well under a
microsecond, where cel-python needs hundreds; see README "Expression engine". Everything CEL-specific
lives here so the engine could switch implementation by changing this file only.

Three costs shape this module, all measured:

* converting Python values into CEL values is ~0.7 µs per object, so a context root is converted only
  when an expression actually references it, and only again after it changed;
* a member access that yields a large list or map copies it, so expressions that only *name* a value
  (``vars.sharedEnv``, ``plugin.podSpec``) are resolved by a plain dictionary walk instead of CEL;
* ``vars.<name>`` is rewritten to a top-level identifier per variable, so defining one variable never
  re-converts the others.

Helper functions raise Python exceptions for bad arguments; the wrapper turns them into evaluation
errors without letting the CEL runtime print anything (the engine never prints).

``matches()`` is RE2's, on both paths (:mod:`engine.core.regex`): the library's own ``x.matches(p)``
(Rust's regex engine) is rewritten, for the library only, to a registered function calling RE2.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _import_cel_without_its_cli() -> None:
    """Import ``cel`` without the interactive shell its ``__init__`` loads (prompt_toolkit, pygments,
    rich, asyncio: about 100 ms, most of ``engine test``'s start-up). The engine never uses it; a
    placeholder stands in while the package loads and is removed after, so ``import cel.cli`` still
    works for anyone who wants the shell."""
    if "cel" in sys.modules or "cel.cli" in sys.modules:
        return
    placeholder = types.ModuleType("cel.cli")
    sys.modules["cel.cli"] = placeholder
    try:
        import cel as package  # noqa: PLC0415
    finally:
        if sys.modules.get("cel.cli") is placeholder:
            del sys.modules["cel.cli"]
    if getattr(package, "cli", None) is placeholder:
        del package.cli


_import_cel_without_its_cli()

import cel  # noqa: E402
from cel.stdlib import STDLIB_FUNCTIONS  # noqa: E402

from engine.core.cel_fast import CelError, FastProgram, Unsupported, compile_fast  # noqa: E402
from engine.core.regex import re2_matches  # noqa: E402
from engine.model.jsonvalue import JSON  # noqa: E402

CONTEXT_ROOTS = (
    "job",
    "tags",
    "pipeline",
    "build",
    "step",
    "plugin",
    "config",
    "stack",
    "vars",
    "manifest",
    "pod",
    "container",
    "index",
    "podTemplates",
)
"""Names an expression may start from. ``vars`` is only valid as ``vars.<name>``."""

_VAR_PREFIX = "__v_"
_VAR_REFERENCE = re.compile(r"(?<![\w.])vars\s*\.\s*([A-Za-z_]\w*)")
_BARE_VARS = re.compile(r"(?<![\w.])vars(?![\w])")
_STRING_LITERAL = re.compile(
    r"""[rR]?[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
)
_COMPREHENSION_VAR = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_MEMBER_CHAIN = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*)\s*$")
_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")
_MATCHES_METHOD = re.compile(r"\.\s*matches\s*\(")
LIBRARY_MATCHES = "__re2_matches"
"""What the ``cel`` library calls for ``x.matches(p)``: RE2, like the fast path (see the module doc)."""

# Functions built into the CEL runtime itself (macros are not functions and need no entry).
_NATIVE_FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string",
        "bytes", "timestamp", "duration", "dyn", "type", "has", "exists", "exists_one", "all", "map",
        "filter", "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek",
        "getHours", "getMinutes", "getSeconds", "getMilliseconds", "optional.of", "optional.none",
        "optional.ofNonZeroValue", "hasValue", "value", "or", "orValue", "max", "min",
    }
)  # fmt: skip


class ExpressionError(ValueError):
    """A CEL expression that does not compile. ``line``/``column`` are 1-based within the expression."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class EvaluationError(RuntimeError):
    """An expression failed for one job (missing key, wrong type, a helper rejecting its input)."""


class _HelperFailed:
    """Returned by a failing helper: CEL cannot convert it, so evaluation stops without printing."""

    __slots__ = ()


_HELPER_FAILED = _HelperFailed()


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A compiled CEL expression and what it reads, so an activation can prepare exactly that."""

    source: str
    program: Any
    roots: tuple[str, ...]
    member_chain: tuple[str, ...] | None
    fast: FastProgram | None = None


def _mask_strings(source: str) -> str:
    """Blank out string literals so pattern matching sees only code."""
    return _STRING_LITERAL.sub(lambda m: " " * len(m.group(0)), source)


def _substitute(source: str, pattern: re.Pattern[str], replacement: Callable[[re.Match[str]], str]) -> str:
    """``source`` with each match of ``pattern`` outside string literals replaced."""
    masked = _mask_strings(source)
    out: list[str] = []
    last = 0
    for match in pattern.finditer(masked):
        out.append(source[last : match.start()])
        out.append(replacement(match))
        last = match.end()
    out.append(source[last:])
    return "".join(out)


def _rewrite_vars(source: str) -> str:
    return _substitute(source, _VAR_REFERENCE, lambda match: _VAR_PREFIX + match.group(1))


def compile_expression(source: str, registry: HelperRegistry) -> CompiledExpression:
    """Compile one expression, checking that every variable and function it names exists.

    ``registry`` holds the helpers available besides CEL's own. An unknown name is reported here,
    when policies load, rather than on the first job that reaches the expression. The expression is
    also compiled to a Python closure when it is in the subset ``engine.core.cel_fast`` supports
    (nearly every policy expression): that runs on the job's plain data with no conversion, and the
    CEL library remains the reference and the fallback.
    """
    functions = registry.names
    masked = _mask_strings(source)
    bare = _BARE_VARS.search(_VAR_REFERENCE.sub(lambda m: " " * len(m.group(0)), masked))
    if bare is not None:
        line, column = _line_column(source, bare.start())
        raise ExpressionError("'vars' can only be used as vars.<name>", line, column)
    rewritten = _rewrite_vars(source)
    try:
        program = cel.compile(library_source(rewritten))
    except ValueError as exc:
        raise _syntax_error(str(exc)) from None
    bound = set(_COMPREHENSION_VAR.findall(masked))
    namespaces = {name.split(".", 1)[0] for name in functions if "." in name} | {"optional"}
    members = {name.split(".", 1)[1] for name in functions if "." in name} | {"of", "none", "ofNonZeroValue"}
    roots: list[str] = []
    for name in program.variables():
        if name.startswith(_VAR_PREFIX) or name in CONTEXT_ROOTS:
            roots.append(name)
        elif name not in bound and name not in namespaces:
            line, column = _locate(source, name)
            known = ", ".join(r for r in CONTEXT_ROOTS)
            raise ExpressionError(f"unknown variable '{name}' (known: {known})", line, column)
    for name in program.functions():
        if _is_operator(name) or name in _NATIVE_FUNCTIONS or name in functions or name in members:
            continue
        if name == LIBRARY_MATCHES:
            continue
        if name in bound or name in CONTEXT_ROOTS:
            continue
        line, column = _locate(source, name)
        raise ExpressionError(f"unknown function '{name}'", line, column)
    chain_match = _MEMBER_CHAIN.match(source)
    chain: tuple[str, ...] | None = None
    if chain_match is not None:
        parts = tuple(p.strip() for p in chain_match.group(1).split("."))
        if parts[0] in CONTEXT_ROOTS and parts[0] != "vars":
            chain = parts
        elif parts[0] == "vars" and len(parts) > 1:
            chain = (_VAR_PREFIX + parts[1], *parts[2:])
    fast: FastProgram | None = None
    if registry.fast and chain is None:
        try:
            fast = compile_fast(rewritten, registry.callables)
        except Unsupported:
            fast = None
    return CompiledExpression(
        source=source, program=program, roots=tuple(roots), member_chain=chain, fast=fast
    )


def library_source(source: str) -> str:
    """``source`` as the ``cel`` library must run it: every ``x.matches(p)`` calls RE2 instead of the
    library's own regex engine (string literals are left alone)."""
    return _substitute(source, _MATCHES_METHOD, lambda _match: f".{LIBRARY_MATCHES}(")


def referenced_variables(expression: CompiledExpression) -> tuple[str, ...]:
    """The ``vars.<name>`` names an expression reads (without the prefix)."""
    return tuple(r[len(_VAR_PREFIX) :] for r in expression.roots if r.startswith(_VAR_PREFIX))


def var_root(name: str) -> str:
    """The activation key of policy variable ``name``."""
    return _VAR_PREFIX + name


def _is_operator(name: str) -> bool:
    return name.startswith(("_", "@", "!")) or name.endswith("_")


def _syntax_error(text: str) -> ExpressionError:
    match = _POSITION.search(text)
    if match is None:
        return ExpressionError(text.splitlines()[0] if text else "invalid expression")
    message = match.group(3).strip()
    return ExpressionError(message.replace(_VAR_PREFIX, "vars."), int(match.group(1)), int(match.group(2)))


def _line_column(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return line, column


def _locate(source: str, name: str) -> tuple[int, int]:
    match = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", _mask_strings(source))
    return _line_column(source, match.start()) if match else (1, 1)


class HelperRegistry:
    """The functions expressions can call: CEL's extended standard library plus the engine's helpers."""

    def __init__(self, helpers: Mapping[str, Callable[..., Any]], *, fast: bool = True) -> None:
        self._helpers = dict(helpers)
        self.names = frozenset(STDLIB_FUNCTIONS) | frozenset(self._helpers)
        self.callables: dict[str, Callable[..., Any]] = {**STDLIB_FUNCTIONS, **self._helpers}
        self.fast = fast
        """Compile to Python closures where possible; False sends every expression through CEL."""

    def bind(self, failures: list[str]) -> dict[str, Callable[..., Any]]:
        """Functions for one activation; a helper's exception is recorded in ``failures``."""
        bound: dict[str, Callable[..., Any]] = dict(STDLIB_FUNCTIONS)
        for name, func in self._helpers.items():
            bound[name] = _guarded(name, func, failures)
        matches = _guarded("matches", re2_matches, failures)
        bound[LIBRARY_MATCHES] = matches  # x.matches(p), rewritten by library_source
        bound["matches"] = matches  # the global form matches(x, p)
        return bound


def _guarded(name: str, func: Callable[..., Any], failures: list[str]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return func(*args)
        except Exception as exc:
            failures.append(f"{name}(): {exc}")
            return _HELPER_FAILED

    return call


class Activation:
    """The variables of one job's evaluation, synchronised into a CEL context on demand.

    Values are plain JSON; :meth:`set` replaces one and marks it stale, and :meth:`evaluate` converts
    only the stale roots an expression reads. One activation serves one job on one thread.
    """

    __slots__ = ("_context", "_failures", "_synced", "_values")

    def __init__(self, values: Mapping[str, JSON], registry: HelperRegistry) -> None:
        self._values: dict[str, JSON] = dict(values)
        self._synced: set[str] = set()
        self._failures: list[str] = []
        self._context = cel.Context(functions=registry.bind(self._failures))

    def set(self, name: str, value: JSON) -> None:
        self._values[name] = value
        self._synced.discard(name)

    def get(self, name: str) -> JSON:
        return self._values.get(name)

    def has(self, name: str) -> bool:
        return name in self._values

    def evaluate(self, expression: CompiledExpression) -> JSON:
        """Evaluate; raise :class:`EvaluationError` with a one-line reason on failure."""
        if expression.member_chain is not None:
            return self._walk(expression)
        if expression.fast is not None:
            for root in expression.roots:
                if root not in self._values:
                    raise EvaluationError(f"{_display(root)} is not defined for this job")
            try:
                return expression.fast(self._values)
            except CelError as exc:
                raise EvaluationError(str(exc).replace(_VAR_PREFIX, "vars.")) from None
        for root in expression.roots:
            if root not in self._synced:
                if root not in self._values:
                    raise EvaluationError(f"{_display(root)} is not defined for this job")
                self._context.add_variable(root, self._values[root])
                self._synced.add(root)
        self._failures.clear()
        try:
            result = expression.program.execute(self._context)
        except Exception as exc:
            if self._failures:
                raise EvaluationError(self._failures[-1]) from None
            raise EvaluationError(_clean_runtime_message(exc)) from None
        return _from_cel(result)

    def _walk(self, expression: CompiledExpression) -> JSON:
        chain = expression.member_chain
        assert chain is not None
        root = chain[0]
        if root not in self._values:
            raise EvaluationError(f"{_display(root)} is not defined for this job")
        value = self._values[root]
        walked = _display(root)
        for key in chain[1:]:
            if not isinstance(value, dict):
                kind = "null" if value is None else type(value).__name__
                raise EvaluationError(f"{walked} is {kind}, so it has no field '{key}'")
            if key not in value:
                raise EvaluationError(f"no such key: '{key}' in {walked}")
            value = value[key]
            walked = f"{walked}.{key}"
        return value


def _display(root: str) -> str:
    return "vars." + root[len(_VAR_PREFIX) :] if root.startswith(_VAR_PREFIX) else root


def _clean_runtime_message(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0]!r}" if exc.args else "no such key"
    text = str(exc).replace(_VAR_PREFIX, "vars.")
    first = text.split(". Check ", 1)[0].split(". CEL does not coerce", 1)[0]
    return first.strip().rstrip(".") or type(exc).__name__


def _from_cel(value: Any) -> JSON:
    """Normalise a CEL result to plain JSON: maps with sorted keys (CEL's own map order is random
    per process), optionals unwrapped, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _from_cel(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_from_cel(v) for v in value]
    if isinstance(value, cel.OptionalValue):
        return _from_cel(value.value()) if value.has_value() else None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
