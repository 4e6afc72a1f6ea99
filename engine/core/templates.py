"""Computed values inside policy YAML: ``${{ <CEL> }}`` strings, interpolation and list splicing.

Why this syntax: ``${{ }}`` cannot occur in ordinary Kubernetes values by accident, reads like the CI
templating admins already know, and survives YAML without quoting in most positions.

* A string that is exactly ``${{ expr }}`` becomes the expression's value, with its type (a list, a
  map, a number...).
* A string with text around expressions is interpolated: ``buildkite-${{ job.uuid }}``.
* A list item that is exactly ``...${{ expr }}`` splices the expression's list into the surrounding list
  (``null`` splices nothing), so a policy can write an env list as fixed entries plus shared ones.
* ``$${{`` stands for a literal ``${{``.
* A map entry whose *computed* value is ``null`` is left out, so ``envFrom: ${{ nonEmpty(x) }}``
  adds the key only when there is something to add. A literal YAML ``null`` is kept, because in a
  strategic merge patch it means "delete this key".

Templates compile once, when policies load; static sub-trees are kept as the original objects and
returned as-is at evaluation, so rendering costs only what is actually computed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from engine.core.expressions import Activation, CompiledExpression, EvaluationError, ExpressionError
from engine.model.jsonvalue import JSON, Path

_OPEN = "${{"
_SPLICE = "..." + _OPEN


class TemplateCompileError(ValueError):
    """An expression inside a template does not compile; ``path`` locates the string in the value."""

    def __init__(self, path: Path, error: ExpressionError) -> None:
        super().__init__(error.message)
        self.path = path
        self.error = error


class Template:
    """A value that may contain expressions. ``static`` templates render to their original object."""

    static: bool = False

    def render(self, activation: Activation) -> JSON:
        raise NotImplementedError

    def expressions(self) -> list[CompiledExpression]:
        """Every expression in the template (for load-time checks such as undefined variables)."""
        return []


@dataclass(frozen=True, slots=True)
class _Static(Template):
    value: JSON
    static = True

    def render(self, activation: Activation) -> JSON:
        return self.value


@dataclass(frozen=True, slots=True)
class _Expression(Template):
    expression: CompiledExpression

    def render(self, activation: Activation) -> JSON:
        return activation.evaluate(self.expression)

    def expressions(self) -> list[CompiledExpression]:
        return [self.expression]


@dataclass(frozen=True, slots=True)
class _Interpolation(Template):
    parts: tuple[str | CompiledExpression, ...]

    def render(self, activation: Activation) -> JSON:
        out: list[str] = []
        for part in self.parts:
            out.append(part if isinstance(part, str) else to_text(activation.evaluate(part)))
        return "".join(out)

    def expressions(self) -> list[CompiledExpression]:
        return [p for p in self.parts if not isinstance(p, str)]


@dataclass(frozen=True, slots=True)
class _Map(Template):
    items: tuple[tuple[str, Template], ...]

    def render(self, activation: Activation) -> JSON:
        out: dict[str, JSON] = {}
        for key, item in self.items:
            value = item.render(activation)
            if value is None and not item.static:
                continue  # a computed null means "absent"; a literal null stays (SMP deletes with it)
            out[key] = value
        return out

    def expressions(self) -> list[CompiledExpression]:
        return [e for _, item in self.items for e in item.expressions()]


@dataclass(frozen=True, slots=True)
class _List(Template):
    items: tuple[tuple[Template, bool], ...]

    def render(self, activation: Activation) -> JSON:
        out: list[JSON] = []
        for item, splice in self.items:
            value = item.render(activation)
            if not splice:
                out.append(value)
            elif value is None:
                continue
            elif isinstance(value, list):
                out.extend(value)
            else:
                raise EvaluationError(f"'...${{{{ }}}}' must give a list, got {type(value).__name__}")
        return out

    def expressions(self) -> list[CompiledExpression]:
        return [e for item, _ in self.items for e in item.expressions()]


Compiler = Callable[[str], CompiledExpression]


def compile_template(value: JSON, compiler: Compiler, path: Path = ()) -> Template:
    """Compile ``value`` (any YAML-loaded value) into a :class:`Template`."""
    if isinstance(value, str):
        return _compile_string(value, compiler, path)
    if isinstance(value, dict):
        items = tuple((str(k), compile_template(v, compiler, (*path, str(k)))) for k, v in value.items())
        if all(item.static for _, item in items):
            return _Static(value)
        return _Map(items)
    if isinstance(value, list):
        list_items: list[tuple[Template, bool]] = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item.startswith(_SPLICE) and _is_single_expression(item[3:]):
                list_items.append((_compile_string(item[3:], compiler, (*path, index)), True))
            else:
                list_items.append((compile_template(item, compiler, (*path, index)), False))
        if all(item.static and not splice for item, splice in list_items):
            return _Static(value)
        return _List(tuple(list_items))
    return _Static(value)


def _compile_string(text: str, compiler: Compiler, path: Path) -> Template:
    if _OPEN not in text:
        return _Static(text)
    pieces = _split(text, path)
    if len(pieces) == 1 and not isinstance(pieces[0], str):
        return _Expression(_compile(pieces[0][0], compiler, path))
    parts: list[str | CompiledExpression] = []
    for piece in pieces:
        parts.append(piece if isinstance(piece, str) else _compile(piece[0], compiler, path))
    if all(isinstance(p, str) for p in parts):
        return _Static("".join(p for p in parts if isinstance(p, str)))
    return _Interpolation(tuple(parts))


def _compile(source: str, compiler: Compiler, path: Path) -> CompiledExpression:
    try:
        return compiler(source)
    except ExpressionError as exc:
        raise TemplateCompileError(path, exc) from None


def _is_single_expression(text: str) -> bool:
    try:
        pieces = _split(text, ())
    except TemplateCompileError:
        return False
    return len(pieces) == 1 and not isinstance(pieces[0], str)


def _split(text: str, path: Path) -> list[str | tuple[str]]:
    """Split into literal strings and 1-tuples holding expression sources."""
    pieces: list[str | tuple[str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$" + _OPEN, i):
            literal.append(_OPEN)
            i += 1 + len(_OPEN)
            continue
        if text.startswith(_OPEN, i):
            end = _closing(text, i + len(_OPEN))
            if end < 0:
                raise TemplateCompileError(path, ExpressionError("'${{' without a matching '}}'", 1, i + 1))
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append((text[i + len(_OPEN) : end].strip(),))
            i = end + 2
            continue
        literal.append(text[i])
        i += 1
    if literal:
        pieces.append("".join(literal))
    return pieces


def _closing(text: str, start: int) -> int:
    """Index of the ``}}`` closing an expression, skipping braces and strings inside the CEL."""
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0 and text.startswith("}}", i):
                return i
            depth -= 1
        i += 1
    return -1


def to_text(value: JSON) -> str:
    """How a computed value reads inside a string: JSON for structures, ``true``/``false``, ``""``
    for null."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
