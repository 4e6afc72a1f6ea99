"""The syntax tree the parser builds and the compiler turns into closures.

Macros (``has``, ``all``, ``exists``, ``exists_one``, ``map``, ``filter``) get their own nodes, as in
CEL, because they bind variables and evaluate their arguments lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Node:
    """Base of every syntax-tree node."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class Ident(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Select(Node):
    operand: Node
    field: str


@dataclass(frozen=True, slots=True)
class Has(Node):
    operand: Node
    field: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    operand: Node
    key: Node


@dataclass(frozen=True, slots=True)
class ListLiteral(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLiteral(Node):
    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    operator: str  # "!" or "-"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    operator: str  # arithmetic, comparison, "in", "&&" or "||"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    condition: Node
    if_true: Node
    if_false: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    """``function(args)`` when ``target`` is None, else the method form ``target.function(args)``."""

    function: str
    target: Node | None
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Comprehension(Node):
    """``range.<kind>(variable, ...)``; ``predicate`` filters (``filter``, 3-argument ``map``) or
    decides (``all``, ``exists``, ``exists_one``); ``transform`` is the ``map`` result."""

    kind: str
    range: Node
    variable: str
    predicate: Node | None
    transform: Node | None
