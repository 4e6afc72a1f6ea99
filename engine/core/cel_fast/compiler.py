"""Syntax tree → nested Python closures that evaluate CEL directly on plain JSON values.

Every node becomes one ``Evaluator(activation, frame)``. ``activation`` maps root names to values;
``frame`` is a per-evaluation list holding the comprehension variables, one slot per comprehension,
so a compiled program can be shared between threads. Common shapes are specialised (a member chain
from a root is one loop, constant operands are not re-evaluated) because each closure call costs
tens of nanoseconds and typical expressions have only a handful of nodes.

Functions follow the ``cel`` library's dispatch: CEL's own ``size``, ``int``, ``double``, ``string``,
``dyn``, ``startsWith``, ``endsWith``, ``matches`` and string ``contains`` are built in; any other
name is looked up in the ``functions`` mapping, ``x.f(a)`` meaning ``f(x, a)`` and ``ns.f(a)``
meaning the function registered as ``"ns.f"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.core.cel_fast import values
from engine.core.cel_fast.errors import CelError, Unsupported
from engine.core.cel_fast.nodes import (
    Binary,
    Call,
    Comprehension,
    Conditional,
    Has,
    Ident,
    Index,
    ListLiteral,
    Literal,
    MapLiteral,
    Node,
    Select,
    Unary,
)
from engine.core.regex import RegexError, compile_pattern, re2_matches

Frame = list[Any]
Evaluator = Callable[[Mapping[str, Any], Frame], Any]

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": values.add,
    "-": values.subtract,
    "*": values.multiply,
    "/": values.divide,
    "%": values.modulo,
    "<": values.less,
    "<=": values.less_equal,
    ">": values.greater,
    ">=": values.greater_equal,
    "in": values.contained_in,
}
_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "size": values.size,
    "int": values.to_int,
    "double": values.to_double,
    "string": values.to_string,
}
_STRING_PREDICATES: dict[str, Callable[[str, str], bool]] = {
    "startsWith": str.startswith,
    "endsWith": str.endswith,
}
_BUILT_IN = frozenset({"size", "int", "double", "string", "dyn", "startsWith", "endsWith", "matches"})
# Built into cel-rust with semantics (uint, bytes, time, optionals, types) this evaluator does not
# model. (cel-rust's own min/max are not modelled either, but a registered Python min/max wins over
# them in the library, so those names are simply looked up in ``functions``.)
_NOT_MODELLED = frozenset(
    {
        "uint", "bytes", "timestamp", "duration", "type", "getFullYear", "getMonth", "getDayOfYear",
        "getDayOfMonth", "getDate", "getDayOfWeek", "getHours", "getMinutes", "getSeconds",
        "getMilliseconds", "optional.of", "optional.none", "optional.ofNonZeroValue", "hasValue",
        "value", "or", "orValue",
    }
)  # fmt: skip
# Registered functions whose results (optionals, bytes) are not plain JSON values.
_NON_JSON_RESULTS = frozenset({"first", "last", "base64.decode"})


class Compiler:
    """Compiles one syntax tree; ``slots`` is the frame size its evaluators need."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions = functions
        self.scope: dict[str, int] = {}
        self.slots = 0

    def compile(self, node: Node) -> Evaluator:
        if isinstance(node, Literal):
            return _constant(node.value)
        if isinstance(node, Ident):
            return self.identifier(node.name)
        if isinstance(node, Select):
            return self.select(node)
        if isinstance(node, Has):
            return self.has(node)
        if isinstance(node, Index):
            return _apply2(values.index, self.compile(node.operand), self.compile(node.key))
        if isinstance(node, ListLiteral):
            return self.list_literal(node)
        if isinstance(node, MapLiteral):
            return self.map_literal(node)
        if isinstance(node, Unary):
            operand = self.compile(node.operand)
            return _apply1(values.logical_not if node.operator == "!" else values.negate, operand)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Conditional):
            return _conditional(
                self.compile(node.condition), self.compile(node.if_true), self.compile(node.if_false)
            )
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Comprehension):
            return self.comprehension(node)
        raise Unsupported(f"unknown syntax node {type(node).__name__}")

    # -- names and members -----------------------------------------------------------------------

    def identifier(self, name: str) -> Evaluator:
        slot = self.scope.get(name)
        if slot is not None:
            return lambda activation, frame: frame[slot]
        return _root(name)

    def select(self, node: Select) -> Evaluator:
        fields: list[str] = []
        operand: Node = node
        while isinstance(operand, Select):
            fields.append(operand.field)
            operand = operand.operand
        fields.reverse()
        if isinstance(operand, Ident) and operand.name not in self.scope:
            return _root_chain(operand.name, tuple(fields))
        base = self.compile(operand)
        return _chain(base, tuple(fields))

    def has(self, node: Has) -> Evaluator:
        field = node.field
        if isinstance(node.operand, Ident) and node.operand.name not in self.scope:
            return _has_on_root(node.operand.name, field)
        operand = self.compile(node.operand)

        def has(activation: Mapping[str, Any], frame: Frame) -> bool:
            value = operand(activation, frame)
            if type(value) is dict:
                return field in value
            return values.has_field(value, field)

        return has

    # -- literals --------------------------------------------------------------------------------

    def list_literal(self, node: ListLiteral) -> Evaluator:
        if all(isinstance(item, Literal) for item in node.items):
            constants = [_literal_value(item) for item in node.items]
            return lambda activation, frame: constants.copy()  # a new list each time
        items = tuple(self.compile(item) for item in node.items)
        if len(items) == 1:
            (only,) = items
            return lambda activation, frame: [only(activation, frame)]
        return lambda activation, frame: [item(activation, frame) for item in items]

    def map_literal(self, node: MapLiteral) -> Evaluator:
        if not node.entries:
            return lambda activation, frame: {}
        literal_key_types = {type(key.value) for key, _ in node.entries if isinstance(key, Literal)}
        if {bool, int} <= literal_key_types:
            raise Unsupported("a map with both bool and int keys has no Python dict equivalent")
        keys = [_literal_value(key) if isinstance(key, Literal) else None for key, _ in node.entries]
        if all(type(key) is str for key in keys) and len(set(keys)) == len(keys):
            return self.string_keyed_map(node)
        entries = tuple((self.compile(key), self.compile(value)) for key, value in node.entries)
        return lambda activation, frame: values.build_map(
            [(key(activation, frame), value(activation, frame)) for key, value in entries]
        )

    def string_keyed_map(self, node: MapLiteral) -> Evaluator:
        """``{"name": "X", "value": expr}``: a copy of the constant part, then the computed values
        filled in (the template keeps the literal's key order)."""
        template: dict[str, Any] = {}
        computed: list[tuple[str, Evaluator]] = []
        for key_node, value_node in node.entries:
            key = _literal_value(key_node)
            if isinstance(value_node, Literal) and not isinstance(value_node.value, list | dict):
                template[key] = value_node.value
            else:
                template[key] = None
                computed.append((key, self.compile(value_node)))
        if len(computed) == 1:
            ((only_key, only_value),) = computed

            def one_computed(activation: Mapping[str, Any], frame: Frame) -> dict[str, Any]:
                result = template.copy()
                result[only_key] = only_value(activation, frame)
                return result

            return one_computed

        def filled(activation: Mapping[str, Any], frame: Frame) -> dict[str, Any]:
            result = template.copy()
            for key, value in computed:
                result[key] = value(activation, frame)
            return result

        return filled

    # -- operators -------------------------------------------------------------------------------

    def binary(self, node: Binary) -> Evaluator:
        operator = node.operator
        left = self.compile(node.left)
        right = self.compile(node.right)
        if operator == "&&":
            return _logical_and(left, right)
        if operator == "||":
            return _logical_or(left, right)
        if operator in ("==", "!="):
            return _equality(left, right, node.right, negate=operator == "!=")
        if operator == "+":
            return _add(left, right)
        return _apply2(_BINARY[operator], left, right)

    # -- calls -----------------------------------------------------------------------------------

    def call(self, node: Call) -> Evaluator:
        name = node.function
        if node.target is None:
            return self.global_call(name, node.args)
        qualified = _qualified_name(node.target, self.scope)
        if qualified is not None and f"{qualified}.{name}" in self.functions:
            return self.python_call(f"{qualified}.{name}", node.args)
        return self.method_call(name, node.target, node.args)

    def global_call(self, name: str, args: tuple[Node, ...]) -> Evaluator:
        if name in _BUILT_IN:
            if name in self.functions or len(args) != 1 or name in _STRING_PREDICATES or name == "matches":
                raise Unsupported(f"{name}() in this form")
            operand = self.compile(args[0])
            if name == "dyn":
                return operand
            return _apply1(_CONVERSIONS[name], operand)
        if name == "contains" and len(args) == 2:
            return self.contains(args[0], args[1])
        return self.python_call(name, args)

    def method_call(self, name: str, target: Node, args: tuple[Node, ...]) -> Evaluator:
        if name in _BUILT_IN:
            if name in self.functions:
                raise Unsupported(f"{name}() is both built in and registered")
            if name == "size" and not args:
                return _apply1(values.size, self.compile(target))
            if name in _STRING_PREDICATES and len(args) == 1:
                return _string_predicate(name, self.compile(target), self.compile(args[0]))
            if name == "matches" and len(args) == 1:
                return self.matches(target, args[0])
            raise Unsupported(f"{name}() in this form")
        if name == "contains" and len(args) == 1:
            return self.contains(target, args[0])
        return self.python_call(name, (target, *args))

    def contains(self, container: Node, item: Node) -> Evaluator:
        """String ``contains`` is built in; other operands go to a registered ``contains``."""
        fallback = self.functions.get("contains")
        return _contains(self.compile(container), self.compile(item), fallback)

    def matches(self, target: Node, pattern: Node) -> Evaluator:
        """RE2, as in the ``cel`` library path (both call :mod:`engine.core.regex`); a literal pattern
        is compiled once, here, and one RE2 does not accept is left to the library to report."""
        subject = self.compile(target)
        if isinstance(pattern, Literal) and type(pattern.value) is str:
            try:
                regex = compile_pattern(pattern.value)
            except RegexError as exc:
                raise Unsupported(str(exc)) from None

            def matches_literal(activation: Mapping[str, Any], frame: Frame) -> bool:
                text = subject(activation, frame)
                if type(text) is str:
                    return regex.search(text) is not None
                raise values.no_overload("matches", text, pattern.value)

            return matches_literal
        computed = self.compile(pattern)

        def matches_computed(activation: Mapping[str, Any], frame: Frame) -> bool:
            try:
                return re2_matches(subject(activation, frame), computed(activation, frame))
            except RegexError as exc:
                raise CelError(str(exc)) from None

        return matches_computed

    def python_call(self, name: str, args: tuple[Node, ...]) -> Evaluator:
        if name in _NOT_MODELLED or name in _NON_JSON_RESULTS:
            raise Unsupported(f"{name}() is not supported")
        function = self.functions.get(name)
        if function is None:
            raise Unsupported(f"unknown function {name}()")
        return _python_call(name, function, tuple(self.compile(arg) for arg in args))

    # -- comprehensions --------------------------------------------------------------------------

    def comprehension(self, node: Comprehension) -> Evaluator:
        source = self.compile(node.range)
        slot = self.slots
        self.slots += 1
        shadowed = self.scope.get(node.variable)
        self.scope[node.variable] = slot
        try:
            predicate = None if node.predicate is None else self.compile(node.predicate)
            transform = None if node.transform is None else self.compile(node.transform)
        finally:
            if shadowed is None:
                del self.scope[node.variable]
            else:
                self.scope[node.variable] = shadowed
        if node.kind == "map":
            assert transform is not None
            return _map(source, slot, predicate, transform)
        assert predicate is not None
        return _PREDICATE_COMPREHENSIONS[node.kind](source, slot, predicate)


# ---------------------------------------------------------------------------------------------
# Evaluator factories (module level so each closure captures only what it needs)
# ---------------------------------------------------------------------------------------------


def _constant(value: Any) -> Evaluator:
    return lambda activation, frame: value


def _literal_value(node: Node) -> Any:
    assert isinstance(node, Literal)
    return node.value


def _root(name: str) -> Evaluator:
    def root(activation: Mapping[str, Any], frame: Frame) -> Any:
        try:
            return activation[name]
        except KeyError:
            raise CelError(f"undeclared reference to {name!r}") from None

    return root


def _has_on_root(name: str, field: str) -> Evaluator:
    def has(activation: Mapping[str, Any], frame: Frame) -> bool:
        try:
            value = activation[name]
        except KeyError:
            raise CelError(f"undeclared reference to {name!r}") from None
        if type(value) is dict:
            return field in value
        return values.has_field(value, field)

    return has


def _root_chain(name: str, fields: tuple[str, ...]) -> Evaluator:
    """``root.a.b.c`` as one loop: the most common expression shape in policies."""
    if len(fields) == 1:
        (field,) = fields

        def member(activation: Mapping[str, Any], frame: Frame) -> Any:
            try:
                value = activation[name]
            except KeyError:
                raise CelError(f"undeclared reference to {name!r}") from None
            if type(value) is dict:
                try:
                    return value[field]
                except KeyError:
                    raise CelError(f"no such key: {field!r}") from None
            return values.select(value, field)

        return member

    def chain(activation: Mapping[str, Any], frame: Frame) -> Any:
        try:
            value = activation[name]
        except KeyError:
            raise CelError(f"undeclared reference to {name!r}") from None
        for field in fields:
            if type(value) is dict:
                try:
                    value = value[field]
                except KeyError:
                    raise CelError(f"no such key: {field!r}") from None
            else:
                value = values.select(value, field)
        return value

    return chain


def _chain(base: Evaluator, fields: tuple[str, ...]) -> Evaluator:
    def chain(activation: Mapping[str, Any], frame: Frame) -> Any:
        value = base(activation, frame)
        for field in fields:
            value = values.select(value, field)
        return value

    return chain


def _qualified_name(node: Node, scope: Mapping[str, int]) -> str | None:
    """``a.b.c`` when ``node`` is a chain of plain names (a possible function namespace)."""
    parts: list[str] = []
    while isinstance(node, Select):
        parts.append(node.field)
        node = node.operand
    if not isinstance(node, Ident) or node.name in scope:
        return None
    parts.append(node.name)
    return ".".join(reversed(parts))


def _apply1(function: Callable[[Any], Any], operand: Evaluator) -> Evaluator:
    return lambda activation, frame: function(operand(activation, frame))


def _apply2(function: Callable[[Any, Any], Any], left: Evaluator, right: Evaluator) -> Evaluator:
    return lambda activation, frame: function(left(activation, frame), right(activation, frame))


def _add(left: Evaluator, right: Evaluator) -> Evaluator:
    """``+`` with the list and string cases inline (concatenating env lists is the common use)."""
    add = values.add

    def plus(activation: Mapping[str, Any], frame: Frame) -> Any:
        a = left(activation, frame)
        b = right(activation, frame)
        kind = type(a)
        if kind is type(b) and (kind is list or kind is str):
            return a + b
        return add(a, b)

    return plus


def _equality(left: Evaluator, right: Evaluator, right_node: Node, negate: bool) -> Evaluator:
    if isinstance(right_node, Literal) and type(right_node.value) is str:
        text = right_node.value
        if negate:
            return lambda activation, frame: not _is_text(left(activation, frame), text)
        return lambda activation, frame: _is_text(left(activation, frame), text)
    if isinstance(right_node, Literal) and right_node.value is None:
        if negate:
            return lambda activation, frame: left(activation, frame) is not None
        return lambda activation, frame: left(activation, frame) is None
    if negate:
        return lambda activation, frame: not values.equals(left(activation, frame), right(activation, frame))
    return lambda activation, frame: values.equals(left(activation, frame), right(activation, frame))


def _is_text(value: Any, text: str) -> bool:
    return type(value) is str and value == text


def _logical_and(left: Evaluator, right: Evaluator) -> Evaluator:
    """CEL ``&&``: ``false`` on either side wins over an error or a non-bool on the other."""

    def logical_and(activation: Mapping[str, Any], frame: Frame) -> bool:
        try:
            first: Any = left(activation, frame)
        except CelError as exc:
            first = exc
        if first is False:
            return False
        second = right(activation, frame) if first is True else _absorbing(right, activation, frame)
        if second is False:
            return False
        if first is True and second is True:
            return True
        raise _logical_error("&&", first, second)

    return logical_and


def _logical_or(left: Evaluator, right: Evaluator) -> Evaluator:
    """CEL ``||``: ``true`` on either side wins over an error or a non-bool on the other."""

    def logical_or(activation: Mapping[str, Any], frame: Frame) -> bool:
        try:
            first: Any = left(activation, frame)
        except CelError as exc:
            first = exc
        if first is True:
            return True
        second = right(activation, frame) if first is False else _absorbing(right, activation, frame)
        if second is True:
            return True
        if first is False and second is False:
            return False
        raise _logical_error("||", first, second)

    return logical_or


def _absorbing(evaluator: Evaluator, activation: Mapping[str, Any], frame: Frame) -> Any:
    """The right operand after the left failed: its own error is only reported if it cannot win."""
    try:
        return evaluator(activation, frame)
    except CelError as exc:
        return exc


def _logical_error(operator: str, first: Any, second: Any) -> CelError:
    if isinstance(first, CelError):
        return first
    if isinstance(second, CelError):
        return second
    return values.no_overload(f"_{operator}_", first, second)


def _conditional(condition: Evaluator, if_true: Evaluator, if_false: Evaluator) -> Evaluator:
    def conditional(activation: Mapping[str, Any], frame: Frame) -> Any:
        decided = condition(activation, frame)
        if decided is True:
            return if_true(activation, frame)
        if decided is False:
            return if_false(activation, frame)
        raise CelError(f"the condition of ?: must be a bool, got {values.type_name(decided)}")

    return conditional


def _string_predicate(name: str, target: Evaluator, argument: Evaluator) -> Evaluator:
    test = _STRING_PREDICATES[name]

    def predicate(activation: Mapping[str, Any], frame: Frame) -> bool:
        text = target(activation, frame)
        other = argument(activation, frame)
        if type(text) is str and type(other) is str:
            return test(text, other)
        raise values.no_overload(name, text, other)

    return predicate


def _contains(container: Evaluator, item: Evaluator, fallback: Callable[..., Any] | None) -> Evaluator:
    def contains(activation: Mapping[str, Any], frame: Frame) -> Any:
        haystack = container(activation, frame)
        needle = item(activation, frame)
        if type(haystack) is str and type(needle) is str:
            return needle in haystack
        if fallback is None:
            raise values.no_overload("contains", haystack, needle)
        return values.call_python("contains", fallback, (haystack, needle))

    return contains


def _python_call(name: str, function: Callable[..., Any], args: tuple[Evaluator, ...]) -> Evaluator:
    """Arguments evaluated left to right, the function called with plain values, its result checked
    (inline for the JSON types helpers return, so the common path costs one call)."""
    from_python = values.from_python

    def failed(exc: Exception) -> CelError:
        lines = str(exc).splitlines()
        return CelError(f"{name}(): {lines[0] if lines else type(exc).__name__}")

    if len(args) == 1:
        (first,) = args

        def call1(activation: Mapping[str, Any], frame: Frame) -> Any:
            a = first(activation, frame)
            try:
                result = function(a)
            except Exception as exc:
                raise failed(exc) from None
            kind = type(result)
            if kind is str or kind is list or kind is dict or kind is bool or result is None:
                return result
            return from_python(name, result)

        return call1
    if len(args) == 2:
        first, second = args

        def call2(activation: Mapping[str, Any], frame: Frame) -> Any:
            a = first(activation, frame)
            b = second(activation, frame)
            try:
                result = function(a, b)
            except Exception as exc:
                raise failed(exc) from None
            kind = type(result)
            if kind is str or kind is list or kind is dict or kind is bool or result is None:
                return result
            return from_python(name, result)

        return call2
    if len(args) == 3:
        first, second, third = args

        def call3(activation: Mapping[str, Any], frame: Frame) -> Any:
            a = first(activation, frame)
            b = second(activation, frame)
            c = third(activation, frame)
            try:
                result = function(a, b, c)
            except Exception as exc:
                raise failed(exc) from None
            kind = type(result)
            if kind is str or kind is list or kind is dict or kind is bool or result is None:
                return result
            return from_python(name, result)

        return call3

    def call(activation: Mapping[str, Any], frame: Frame) -> Any:
        return values.call_python(name, function, tuple(arg(activation, frame) for arg in args))

    return call


def _iterable(value: Any, kind: str) -> list[Any] | dict[Any, Any]:
    """What a comprehension ranges over: a list's elements or a map's keys."""
    if type(value) is list or isinstance(value, list | dict):
        return value
    raise values.no_overload(kind, value)


def _not_bool(kind: str, value: Any) -> CelError:
    return CelError(f"{kind}() predicate must give a bool, got {values.type_name(value)}")


def _all(source: Evaluator, slot: int, predicate: Evaluator) -> Evaluator:
    def all_(activation: Mapping[str, Any], frame: Frame) -> bool:
        for element in _iterable(source(activation, frame), "all"):
            frame[slot] = element
            result = predicate(activation, frame)
            if result is False:
                return False
            if result is not True:
                raise _not_bool("all", result)
        return True

    return all_


def _exists(source: Evaluator, slot: int, predicate: Evaluator) -> Evaluator:
    def exists(activation: Mapping[str, Any], frame: Frame) -> bool:
        for element in _iterable(source(activation, frame), "exists"):
            frame[slot] = element
            result = predicate(activation, frame)
            if result is True:
                return True
            if result is not False:
                raise _not_bool("exists", result)
        return False

    return exists


def _exists_one(source: Evaluator, slot: int, predicate: Evaluator) -> Evaluator:
    """cel-rust evaluates every element (no early exit), so a later error still surfaces."""

    def exists_one(activation: Mapping[str, Any], frame: Frame) -> bool:
        count = 0
        for element in _iterable(source(activation, frame), "exists_one"):
            frame[slot] = element
            result = predicate(activation, frame)
            if result is True:
                count += 1
            elif result is not False:
                raise _not_bool("exists_one", result)
        return count == 1

    return exists_one


def _filter(source: Evaluator, slot: int, predicate: Evaluator) -> Evaluator:
    def filter_(activation: Mapping[str, Any], frame: Frame) -> list[Any]:
        kept: list[Any] = []
        for element in _iterable(source(activation, frame), "filter"):
            frame[slot] = element
            result = predicate(activation, frame)
            if result is True:
                kept.append(element)
            elif result is not False:
                raise _not_bool("filter", result)
        return kept

    return filter_


def _map(source: Evaluator, slot: int, predicate: Evaluator | None, transform: Evaluator) -> Evaluator:
    if predicate is None:

        def map_(activation: Mapping[str, Any], frame: Frame) -> list[Any]:
            mapped: list[Any] = []
            for element in _iterable(source(activation, frame), "map"):
                frame[slot] = element
                mapped.append(transform(activation, frame))
            return mapped

        return map_

    def filter_map(activation: Mapping[str, Any], frame: Frame) -> list[Any]:
        mapped: list[Any] = []
        for element in _iterable(source(activation, frame), "map"):
            frame[slot] = element
            result = predicate(activation, frame)
            if result is True:
                mapped.append(transform(activation, frame))
            elif result is not False:
                raise _not_bool("map", result)
        return mapped

    return filter_map


_PREDICATE_COMPREHENSIONS: dict[str, Callable[[Evaluator, int, Evaluator], Evaluator]] = {
    "all": _all,
    "exists": _exists,
    "exists_one": _exists_one,
    "filter": _filter,
}
