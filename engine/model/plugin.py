"""Type-checking the ``kubernetes`` plugin's config the way upstream's Go decoder does.

Upstream decodes a step's plugin config with Go's ``encoding/json`` into typed structs: unknown fields
are ignored, ``null`` decodes to a zero value anywhere, but a value of the wrong JSON type fails the
Buildkite job ("failed parsing Kubernetes plugin: ..."). The engine works on plain JSON, so it gets
that guarantee from :func:`check_plugin` instead, which walks the config against the type table
generated from Kubernetes' own definitions (``engine.model.k8s_types``) and names the exact path of
every problem. :func:`unknown_plugin_fields` reports what the lenient decode silently drops (typos,
fields of newer releases), for warnings and ``engine lint``.

This runs for every job that uses the plugin, so the table is compiled once, at import, into small
checker objects; the walk allocates a path tuple per object or list, never per scalar.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence

from engine.model import k8s_types
from engine.model.jsonvalue import JSON, Path, PathSegment, render_path

KUBERNETES_PLUGIN_KEY = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"
"""The key Buildkite gives the ``kubernetes`` plugin in a job's ``BUILDKITE_PLUGINS``."""

_ROOT_LABEL = "kubernetes plugin"
_QUANTITY = re.compile(k8s_types.QUANTITY_PATTERN)
_TIME = re.compile(k8s_types.TIME_PATTERN)
_QUANTITY_HINT = 'a number or a string like "500m" or "1Gi"'
_MAX_SHOWN_STRING = 60


class PluginTypeError(ValueError):
    """A plugin config that upstream's decoder would reject; ``str()`` is one line naming each path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def check_plugin(config: JSON, *, head: bool = False) -> list[str]:
    """Type problems of a plugin config, ``[]`` when Go would decode it. Unknown fields are ignored.

    ``head``: decode like agent-stack-k8s v0.47 (the fields of ``k8s_types.HEAD_FIELDS`` are known);
    otherwise like v0.20.2, to which they are unknown fields."""
    problems: list[str] = []
    (_PLUGIN_HEAD if head else _PLUGIN).check(config, (), None, problems)
    return problems


def validate_plugin(config: JSON) -> None:
    """Raise :class:`PluginTypeError` listing every problem :func:`check_plugin` finds."""
    problems = check_plugin(config)
    if problems:
        raise PluginTypeError(problems)


def unknown_plugin_fields(config: JSON, *, head: bool = False) -> list[str]:
    """Paths (``podSpec.containers[0].imagee``) of fields neither the plugin nor Kubernetes defines."""
    return [path for path, _ in unknown_plugin_field_problems(config, head=head)]


def unknown_plugin_field_problems(config: JSON, *, head: bool = False) -> list[tuple[str, str]]:
    """``(path, message)`` for every unknown field, the message with a "did you mean" when a known
    field of the same object is close (the words ``engine lint`` uses); ``head`` as for
    :func:`check_plugin`."""
    found: list[tuple[str, str]] = []
    (_PLUGIN_HEAD if head else _PLUGIN).unknown(config, (), found, False)
    return found


_PATCH_ROOT = "podSpecPatch"
"""The plugin field that is a strategic merge patch: its directives are fields the engine applies."""
_LIST_DIRECTIVE_PREFIXES = ("$setElementOrder/", "$deleteFromPrimitiveList/")


def _is_patch_directive(key: str, fields: dict[str, _Checker]) -> bool:
    """Whether ``key`` is a strategic merge patch directive of an object with ``fields``: ``$patch``,
    ``$retainKeys``, or ``$setElementOrder/F`` / ``$deleteFromPrimitiveList/F`` for a list field F
    (the engine applies these as ``kubectl patch`` does, so they are not dropped)."""
    if key in ("$patch", "$retainKeys"):
        return True
    for prefix in _LIST_DIRECTIVE_PREFIXES:
        if key.startswith(prefix):
            return isinstance(fields.get(key.removeprefix(prefix)), _List)
    return False


def plugin_warnings(config: JSON, *, head: bool = False) -> list[str]:
    """The run-time warnings for a job's plugin: each field upstream's decoder silently ignores."""
    return [
        f"kubernetes plugin: {path}: {message}; it is ignored, so the pod is built without it"
        for path, message in unknown_plugin_field_problems(config, head=head)
    ]


def unknown_field_message(key: str, known: Sequence[str]) -> str:
    """``unknown field`` plus ``(did you mean "x"?)`` when one of ``known`` is close to ``key``."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return f'unknown field (did you mean "{close[0]}"?)' if close else "unknown field"


def describe_value(value: JSON) -> str:
    """How a problem message names a JSON value: ``the number 0``, ``the string "x"``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN_STRING else value[: _MAX_SHOWN_STRING - 3] + "..."
        return f"the string {json.dumps(shown, ensure_ascii=False)}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def invalid_quantity_message(text: str) -> str:
    """The problem with a string that is not a Kubernetes quantity (shared with ``engine lint``)."""
    return f"invalid quantity {json.dumps(text)} (expected {_QUANTITY_HINT})"


def invalid_time_message(text: str) -> str:
    """The problem with a string that is not an RFC 3339 time (shared with ``engine lint``)."""
    return f'invalid time {json.dumps(text)} (expected RFC 3339 like "2006-01-02T15:04:05Z")'


def _problem(parent: Path, key: PathSegment | None, message: str) -> str:
    path = parent if key is None else (*parent, key)
    return f"{render_path(path) or _ROOT_LABEL}: {message}"


def _is_integer(value: JSON) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- checkers compiled from the type table ----------------------------------------------------------
# Each checker checks one value: ``parent`` + ``key`` is the value's path (``key`` is None at the
# root), problems are appended to ``problems``. ``None`` is always accepted (Go's zero value).


class _Checker:
    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        raise NotImplementedError

    def unknown(self, value: JSON, path: Path, found: list[tuple[str, str]], patch: bool) -> None:
        """Scalars hold no fields, so nothing here is unknown. ``patch``: ``value`` is inside a
        strategic merge patch, where directives are known keys."""


class _Any(_Checker):
    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        return


class _String(_Checker):
    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is not None and not isinstance(value, str):
            problems.append(_problem(parent, key, f"expected a string, got {describe_value(value)}"))


class _Boolean(_Checker):
    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is not None and not isinstance(value, bool):
            problems.append(_problem(parent, key, f"expected a boolean, got {describe_value(value)}"))


class _Integer(_Checker):
    """Go rejects any number literal with a fraction or exponent for an int field, even ``1.0``."""

    __slots__ = ("bits", "high", "low")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.low = -(2 ** (bits - 1))
        self.high = 2 ** (bits - 1) - 1

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None or (_is_integer(value) and self.low <= value <= self.high):
            return
        expected = f"a {self.bits}-bit integer" if _is_integer(value) else "an integer"
        problems.append(_problem(parent, key, f"expected {expected}, got {describe_value(value)}"))


class _Number(_Checker):
    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(_problem(parent, key, f"expected a number, got {describe_value(value)}"))


class _IntOrString(_Checker):
    """``intstr.IntOrString``: a string, or a number that fits an int32."""

    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None or isinstance(value, str):
            return
        if _is_integer(value) and -(2**31) <= value < 2**31:
            return
        expected = "a 32-bit integer or a string" if _is_integer(value) else "an integer or a string"
        problems.append(_problem(parent, key, f"expected {expected}, got {describe_value(value)}"))


class _Quantity(_Checker):
    """``resource.Quantity``: any number, or a string ``ParseQuantity`` accepts."""

    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            return
        if isinstance(value, str):
            if _QUANTITY.match(value) is None:
                problems.append(_problem(parent, key, invalid_quantity_message(value)))
            return
        message = f"expected a quantity ({_QUANTITY_HINT}), got {describe_value(value)}"
        problems.append(_problem(parent, key, message))


class _Time(_Checker):
    """``metav1.Time``: an RFC 3339 string."""

    __slots__ = ()

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            problems.append(_problem(parent, key, f"expected an RFC 3339 time, got {describe_value(value)}"))
        elif _TIME.match(value) is None:
            problems.append(_problem(parent, key, invalid_time_message(value)))


class _Enum(_Checker):
    __slots__ = ("title", "values")

    def __init__(self, title: str, values: tuple[str, ...]) -> None:
        self.title = title
        self.values = frozenset(values)

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None:
            return
        if isinstance(value, str):
            if value not in self.values:
                valid = ", ".join(json.dumps(v) for v in sorted(self.values))
                problems.append(
                    _problem(parent, key, f"invalid {self.title} {json.dumps(value)} (valid: {valid})")
                )
        else:
            problems.append(_problem(parent, key, f"expected a string, got {describe_value(value)}"))


class _List(_Checker):
    __slots__ = ("item",)

    def __init__(self, item: _Checker) -> None:
        self.item = item

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            problems.append(_problem(parent, key, f"expected a list, got {describe_value(value)}"))
            return
        path = parent if key is None else (*parent, key)
        item = self.item
        for index, element in enumerate(value):
            if element is not None:
                item.check(element, path, index, problems)

    def unknown(self, value: JSON, path: Path, found: list[tuple[str, str]], patch: bool) -> None:
        if isinstance(value, list):
            for index, element in enumerate(value):
                self.item.unknown(element, (*path, index), found, patch)


class _Map(_Checker):
    __slots__ = ("item",)

    def __init__(self, item: _Checker) -> None:
        self.item = item

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            problems.append(_problem(parent, key, f"expected an object, got {describe_value(value)}"))
            return
        path = parent if key is None else (*parent, key)
        item = self.item
        for name, element in value.items():
            if element is not None:
                item.check(element, path, name, problems)

    def unknown(self, value: JSON, path: Path, found: list[tuple[str, str]], patch: bool) -> None:
        if isinstance(value, dict):
            for name, element in value.items():
                self.item.unknown(element, (*path, name), found, patch)


class _Struct(_Checker):
    """A Go struct: known fields are checked, unknown ones ignored (reported only by ``unknown``)."""

    __slots__ = ("fields", "name", "nested")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[str, _Checker] = {}
        self.nested: dict[str, _Checker] = {}
        """The fields whose values can hold struct fields: the only ones ``unknown`` descends into."""

    def set_fields(self, fields: dict[str, _Checker]) -> None:
        self.fields = fields
        self.nested = {name: checker for name, checker in fields.items() if _holds_structs(checker)}

    def check(self, value: JSON, parent: Path, key: PathSegment | None, problems: list[str]) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            problems.append(_problem(parent, key, f"expected an object, got {describe_value(value)}"))
            return
        path = parent if key is None else (*parent, key)
        fields = self.fields
        for name, element in value.items():
            if element is not None:
                field = fields.get(name)
                if field is not None:
                    field.check(element, path, name, problems)

    def unknown(self, value: JSON, path: Path, found: list[tuple[str, str]], patch: bool) -> None:
        if not isinstance(value, dict):
            return
        fields, nested = self.fields, self.nested
        for name, element in value.items():
            if name not in fields:
                if not (patch and _is_patch_directive(str(name), fields)):
                    found.append((render_path((*path, name)), unknown_field_message(str(name), list(fields))))
            elif name in nested:
                in_patch = patch or (not path and name == _PATCH_ROOT)
                nested[name].unknown(element, (*path, name), found, in_patch)


def _holds_structs(checker: _Checker) -> bool:
    if isinstance(checker, _List | _Map):
        return _holds_structs(checker.item)
    return isinstance(checker, _Struct)


_SCALARS: dict[str, _Checker] = {
    "any": _Any(),
    "string": _String(),
    "boolean": _Boolean(),
    "int32": _Integer(32),
    "int64": _Integer(64),
    "number": _Number(),
    "int-or-string": _IntOrString(),
    "quantity": _Quantity(),
    "time": _Time(),
}


def _compile(structs: dict[str, dict[str, str]], enums: dict[str, tuple[str, tuple[str, ...]]]) -> _Struct:
    """Turn the generated table into checkers; structs are created first so types may refer to each
    other in any order (and recursively)."""
    struct_checkers = {name: _Struct(name) for name in structs}
    named: dict[str, _Checker] = dict(struct_checkers)
    named.update({name: _Enum(title, values) for name, (title, values) in enums.items()})

    def resolve(expression: str) -> _Checker:
        if expression.startswith("[") and expression.endswith("]"):
            return _List(resolve(expression[1:-1]))
        if expression.startswith("{") and expression.endswith("}"):
            return _Map(resolve(expression[1:-1]))
        checker = _SCALARS.get(expression) or named.get(expression)
        if checker is None:
            raise ValueError(f"k8s_types: unknown type expression {expression!r}")
        return checker

    for name, fields in structs.items():
        struct_checkers[name].set_fields({field: resolve(expression) for field, expression in fields.items()})
    return struct_checkers[k8s_types.ROOT]


def _without_head_fields(structs: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The table as agent-stack-k8s v0.20.2 knew it: without the fields later releases added."""
    later = k8s_types.HEAD_FIELDS
    return {
        name: {field: t for field, t in fields.items() if field not in later.get(name, ())}
        for name, fields in structs.items()
    }


_PLUGIN = _compile(_without_head_fields(k8s_types.STRUCTS), k8s_types.ENUMS)
_PLUGIN_HEAD = _compile(k8s_types.STRUCTS, k8s_types.ENUMS)
