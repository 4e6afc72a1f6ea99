"""CEL's operators and conversions applied directly to plain JSON-shaped Python values.

The ``cel`` library (cel-rust) is the reference for every rule here, including where it departs from
the CEL specification; each departure is named where it is implemented. Python's own operators are
not used blindly because they disagree with CEL in ways that matter: ``True == 1``, ``1 + 1.5``,
``-7 // 2`` and ``[True] == [1]`` all differ.

Value mapping: CEL int is a Python ``int`` within the signed 64-bit range, double is ``float``, bool is
``bool`` (never treated as an int), string is ``str``, null is ``None``, list is ``list`` and map is
``dict``. uint and bytes never reach this module (the compiler rejects them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.core.cel_fast.errors import CelError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_INT_LIMIT_AS_DOUBLE = 9223372036854775808.0  # 2**63, exact as a double
_MISSING = object()


def type_name(value: Any) -> str:
    """The CEL name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def no_overload(operator: str, *operands: Any) -> CelError:
    kinds = ", ".join(type_name(v) for v in operands)
    return CelError(f"no such overload: {operator}({kinds})")


def _overflow(operator: str, left: int, right: int) -> CelError:
    return CelError(f"integer overflow in {left} {operator} {right}")


# ---------------------------------------------------------------------------------------------
# Equality and ordering
# ---------------------------------------------------------------------------------------------

_SCALARS = (str, int, float, bool, type(None))


def equals(left: Any, right: Any) -> bool:
    """CEL ``==``: never an error; different types are unequal except int/double, compared the way
    cel-rust does (the int converted to a double), and containers compare element-wise."""
    lt = type(left)
    rt = type(right)
    if lt is rt and lt in _SCALARS:
        return bool(left == right)
    if lt is int and rt is float:
        return bool(float(left) == right)
    if lt is float and rt is int:
        return bool(left == float(right))
    if isinstance(left, list):
        if not isinstance(right, list) or len(left) != len(right):
            return False
        return all(equals(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        if not isinstance(right, dict) or len(left) != len(right):
            return False
        for key, value in left.items():
            other = map_get(right, key)
            if other is _MISSING or not equals(value, other):
                return False
        return True
    return False


def _ordered_pair(operator: str, left: Any, right: Any) -> tuple[Any, Any]:
    """The operands of an ordering comparison, int/double mixes converted to doubles.

    cel-rust orders int, double, string and bool values; anything involving NaN is an error there
    (its comparison has no ordering), not ``false`` as in IEEE.
    """
    lt = type(left)
    rt = type(right)
    if lt is rt and (lt is int or lt is str or lt is bool):
        return left, right
    if (lt is float or lt is int) and (rt is float or rt is int):
        a = float(left)
        b = float(right)
        if math.isnan(a) or math.isnan(b):
            raise CelError(f"no such overload: NaN is not ordered ({operator})")
        return a, b
    raise no_overload(operator, left, right)


def less(left: Any, right: Any) -> bool:
    if type(left) is int and type(right) is int:
        return left < right
    a, b = _ordered_pair("<", left, right)
    return bool(a < b)


def less_equal(left: Any, right: Any) -> bool:
    if type(left) is int and type(right) is int:
        return left <= right
    a, b = _ordered_pair("<=", left, right)
    return bool(a <= b)


def greater(left: Any, right: Any) -> bool:
    if type(left) is int and type(right) is int:
        return left > right
    a, b = _ordered_pair(">", left, right)
    return bool(a > b)


def greater_equal(left: Any, right: Any) -> bool:
    if type(left) is int and type(right) is int:
        return left >= right
    a, b = _ordered_pair(">=", left, right)
    return bool(a >= b)


# ---------------------------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------------------------


def add(left: Any, right: Any) -> Any:
    lt = type(left)
    if lt is type(right):
        if lt is int:
            result = left + right
            if result > INT_MAX or result < INT_MIN:
                raise _overflow("+", left, right)
            return result
        if lt is str or lt is float or lt is list:
            return left + right
    elif lt is list and type(right) is dict:
        return [*left, *right]
    if isinstance(left, list) and isinstance(right, list | dict):
        # cel-rust appends a map's keys to a list (in its own, unspecified order); reproduced.
        return [*left, *right]
    raise no_overload("_+_", left, right)


def subtract(left: Any, right: Any) -> Any:
    lt = type(left)
    if lt is type(right):
        if lt is int:
            result = left - right
            if result > INT_MAX or result < INT_MIN:
                raise _overflow("-", left, right)
            return result
        if lt is float:
            return left - right
    raise no_overload("_-_", left, right)


def multiply(left: Any, right: Any) -> Any:
    lt = type(left)
    if lt is type(right):
        if lt is int:
            result = left * right
            if result > INT_MAX or result < INT_MIN:
                raise _overflow("*", left, right)
            return result
        if lt is float:
            return left * right
    raise no_overload("_*_", left, right)


def divide(left: Any, right: Any) -> Any:
    """Integer division truncates toward zero (Rust), unlike Python's ``//``; double division by
    zero gives an infinity or NaN, as IEEE says, instead of raising."""
    lt = type(left)
    if lt is type(right):
        if lt is int:
            if right == 0:
                raise CelError("division by zero")
            if left == INT_MIN and right == -1:
                raise _overflow("/", left, right)
            quotient = abs(left) // abs(right)
            return quotient if (left < 0) == (right < 0) else -quotient
        if lt is float:
            if right == 0.0:
                if left == 0.0 or math.isnan(left):
                    return math.nan
                return math.copysign(math.inf, left) * math.copysign(1.0, right)
            return left / right
    raise no_overload("_/_", left, right)


def modulo(left: Any, right: Any) -> Any:
    """Integer remainder with the sign of the dividend (Rust); cel-rust has no double modulo."""
    if type(left) is int and type(right) is int:
        if right == 0:
            raise CelError("modulo by zero")
        if left == INT_MIN and right == -1:
            raise _overflow("%", left, right)
        remainder = abs(left) % abs(right)
        return -remainder if left < 0 else remainder
    raise no_overload("_%_", left, right)


def negate(value: Any) -> Any:
    """Unary minus. cel-rust wraps ``-(-2^63)`` to itself instead of failing, and negates a bool
    (``-true`` is ``false``); both reproduced as they are."""
    vt = type(value)
    if vt is int:
        return value if value == INT_MIN else -value
    if vt is float:
        return -value
    if vt is bool:
        return not value
    raise no_overload("-_", value)


def logical_not(value: Any) -> bool:
    if type(value) is bool:
        return not value
    raise no_overload("!_", value)


# ---------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------


def map_get(mapping: dict[Any, Any], key: Any) -> Any:
    """The value under ``key`` compared the CEL way (``true`` and ``1`` are different keys), or
    ``_MISSING``. Python dicts conflate them, so non-string keys are checked for their exact type."""
    value = mapping.get(key, _MISSING)
    if value is _MISSING or type(key) is str:
        return value
    for stored, stored_value in mapping.items():
        if type(stored) is type(key) and stored == key:
            return stored_value
    return _MISSING


def check_map_key(key: Any) -> None:
    """Map keys are int, uint, bool or string in CEL; anything else is an error."""
    kt = type(key)
    if kt is not str and kt is not int and kt is not bool:
        raise CelError(f"a {type_name(key)} cannot be used as a map key")


def select(operand: Any, field: str) -> Any:
    """``operand.field``: a map entry; a missing key or a non-map operand is an error."""
    if isinstance(operand, dict):
        value = operand.get(field, _MISSING)
        if value is _MISSING:
            raise CelError(f"no such key: {field!r}")
        return value
    raise CelError(f"no such field {field!r} on a {type_name(operand)}")


def has_field(operand: Any, field: str) -> bool:
    """``has(operand.field)``: key presence (a null value counts); an error unless a map."""
    if isinstance(operand, dict):
        return field in operand
    raise CelError(f"has() needs a map, got {type_name(operand)} (field {field!r})")


def index(operand: Any, key: Any) -> Any:
    """``operand[key]``: a list element by int index or a map value by key."""
    if isinstance(operand, list):
        if type(key) is not int:
            raise CelError(f"list index must be int, got {type_name(key)}")
        if key < 0 or key >= len(operand):
            raise CelError(f"index out of bounds: {key}")
        return operand[key]
    if isinstance(operand, dict):
        check_map_key(key)
        value = map_get(operand, key)
        if value is _MISSING:
            raise CelError(f"no such key: {key!r}")
        return value
    raise no_overload("_[_]", operand, key)


def contained_in(item: Any, container: Any) -> bool:
    """``item in container``: CEL equality against list elements, or key presence in a map."""
    if isinstance(container, list):
        if type(item) is str:
            return item in container  # a str only ever equals a str, so Python's test agrees
        return any(equals(item, element) for element in container)
    if isinstance(container, dict):
        check_map_key(item)
        return map_get(container, item) is not _MISSING
    raise no_overload("@in", item, container)


def build_map(entries: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A map literal; a repeated key keeps the last value, as cel-rust does.

    A map holding both ``true`` and ``1`` (distinct CEL keys) cannot be a Python dict; that case is
    reported as an error instead of silently merging the two entries.
    """
    result: dict[Any, Any] = {}
    for key, value in entries:
        kt = type(key)
        if kt is not str:
            check_map_key(key)
            if key in result and map_get(result, key) is _MISSING:
                raise CelError("a map with both bool and int keys cannot be represented")
        result[key] = value
    return result


def size(value: Any) -> int:
    """``size()``: cel-rust counts a string's UTF-8 bytes (not code points, as the spec says)."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if isinstance(value, list | dict):
        return len(value)
    raise no_overload("size", value)


# ---------------------------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------------------------

_RUST_INT = re.compile(r"[+-]?[0-9]+")
_RUST_FLOAT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+|[0-9]+\.[0-9]*|[0-9]*\.[0-9]+)(?:e[+-]?[0-9]+)?)",
    re.IGNORECASE,
)


def to_int(value: Any) -> int:
    """``int()``: doubles truncate (strictly inside ±2^63), strings parse like Rust's ``i64``."""
    vt = type(value)
    if vt is int:
        return int(value)
    if vt is float:
        if math.isnan(value) or not -_INT_LIMIT_AS_DOUBLE < value < _INT_LIMIT_AS_DOUBLE:
            raise CelError(f"int() overflow: {value!r} is outside the int range")
        return int(value)
    if vt is str:
        if _RUST_INT.fullmatch(value) is None:
            raise CelError(f"int() cannot parse {value!r}")
        result = int(value)
        if result > INT_MAX or result < INT_MIN:
            raise CelError(f"int() cannot parse {value!r}: out of range")
        return result
    raise no_overload("int", value)


def to_double(value: Any) -> float:
    """``double()``: strings parse like Rust's ``f64`` (no spaces or underscores, unlike Python)."""
    vt = type(value)
    if vt is float:
        return float(value)
    if vt is int:
        return float(value)
    if vt is str:
        if _RUST_FLOAT.fullmatch(value) is None:
            raise CelError(f"double() cannot parse {value!r}")
        return float(value)
    raise no_overload("double", value)


def to_string(value: Any) -> str:
    """``string()``: cel-rust converts strings, ints and doubles only (not bools or null)."""
    vt = type(value)
    if vt is str:
        return str(value)
    if vt is int:
        return str(value)
    if vt is float:
        return format_double(value)
    raise no_overload("string", value)


def format_double(value: float) -> str:
    """A double the way Rust's ``Display`` prints it: the shortest digits that round-trip, never in
    exponent form, no trailing ``.0`` (``1e21`` → ``1000000000000000000000``, ``0.5`` → ``0.5``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# ---------------------------------------------------------------------------------------------
# Results of Python functions
# ---------------------------------------------------------------------------------------------


def from_python(name: str, value: Any) -> Any:
    """A helper's result as the ``cel`` library would see it after its own conversion.

    Tuples become lists; ints beyond 64 bits become doubles (as cel-rust converts them). Ints that
    only fit an unsigned 64-bit value would be uint there, which this evaluator does not model, and
    other Python objects are not CEL values: both are errors here.
    """
    vt = type(value)
    if vt is str or vt is bool or vt is float or value is None or vt is list or vt is dict:
        return value
    if vt is int:
        if INT_MIN <= value <= INT_MAX:
            return value
        if 0 <= value < 2**64:
            raise CelError(f"{name}(): returned {value}, an unsigned value this evaluator does not model")
        return float(value)
    if vt is tuple:
        return list(value)
    if isinstance(value, dict | list | str):
        return value
    raise CelError(f"{name}(): returned a {vt.__name__}, which is not a CEL value")


def call_python(name: str, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call a registered Python function; its exception becomes the one-line ``CelError``."""
    try:
        result = function(*args)
    except Exception as exc:
        lines = str(exc).splitlines()
        raise CelError(f"{name}(): {lines[0] if lines else type(exc).__name__}") from None
    return from_python(name, result)
