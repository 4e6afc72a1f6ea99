"""A recursive-descent parser for CEL expressions, mirroring the precedence of the CEL grammar.

Precedence, loosest first: ``? :`` (right-associative, its middle operand an ``||`` expression),
``||``, ``&&``, the relations ``== != < <= > >= in`` (one level, left-associative), ``+ -``,
``* / %``, the unary ``!``/``-`` runs (an even run cancels out), then member access, calls and
indexing. A single ``-`` directly before a number is part of the literal (so
``-9223372036854775808`` is a valid int), as in the grammar.

Syntax errors and constructs outside the supported subset raise :class:`Unsupported`; the ``cel``
library then reports or evaluates them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from engine.core.cel_fast.errors import Unsupported
from engine.core.cel_fast.lexer import EOF, FLOAT, IDENT, INT, RESERVED, STRING, Token, tokenize
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
from engine.core.cel_fast.values import INT_MAX, INT_MIN

_Item = TypeVar("_Item")

_RELATIONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})
_MACROS = {"all": (2,), "exists": (2,), "exists_one": (2,), "filter": (2,), "map": (2, 3)}


def parse(source: str) -> Node:
    """Parse one CEL expression into a syntax tree."""
    return _Parser(tokenize(source)).parse_all()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    # -- token helpers -------------------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.pos]  # never past the final EOF token: advance() stops there

    def peek_next(self) -> Token:
        return self.tokens[min(self.pos + 1, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != EOF:
            self.pos += 1
        return token

    def accept(self, kind: str) -> bool:
        if self.tokens[self.pos].kind == kind:
            self.advance()
            return True
        return False

    def expect(self, kind: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise Unsupported(f"syntax: expected {kind!r} at offset {token.offset}, found {token.value!r}")
        return self.advance()

    # -- grammar -------------------------------------------------------------------------------

    def parse_all(self) -> Node:
        node = self.expression()
        self.expect(EOF)
        return node

    def expression(self) -> Node:
        condition = self.logical_or()
        if not self.accept("?"):
            return condition
        if_true = self.logical_or()
        self.expect(":")
        return Conditional(condition, if_true, self.expression())

    def logical_or(self) -> Node:
        node = self.logical_and()
        while self.accept("||"):
            node = Binary("||", node, self.logical_and())
        return node

    def logical_and(self) -> Node:
        node = self.relation()
        while self.accept("&&"):
            node = Binary("&&", node, self.relation())
        return node

    def relation(self) -> Node:
        node = self.additive()
        while self.peek().kind in _RELATIONS:
            operator = self.advance().kind
            node = Binary(operator, node, self.additive())
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek().kind in ("+", "-"):
            operator = self.advance().kind
            node = Binary(operator, node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.peek().kind in ("*", "/", "%"):
            operator = self.advance().kind
            node = Binary(operator, node, self.unary())
        return node

    def unary(self) -> Node:
        kind = self.peek().kind
        if kind == "-" and self.peek_next().kind in (INT, FLOAT):
            return self.member()  # the sign belongs to the literal
        if kind not in ("!", "-"):
            return self.member()
        count = 0
        while self.accept(kind):
            count += 1
        node = self.member()
        # As in the reference parser, a run of an even number of the same operator cancels out
        # entirely (``!!x`` is ``x`` even when ``x`` is not a bool) and an odd run is one operator.
        return node if count % 2 == 0 else Unary(kind, node)

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                name = self.expect(IDENT).value
                is_call = self.accept("(")
                node = self.method(node, name, self.arguments()) if is_call else Select(node, name)
            elif self.accept("["):
                node = Index(node, self.expression())
                self.expect("]")
            elif self.peek().kind == "{":
                raise Unsupported("message construction is not supported")
            else:
                return node

    def primary(self) -> Node:
        token = self.advance()
        kind = token.kind
        if kind == INT:
            return Literal(_int_literal(token.value))
        if kind in (FLOAT, STRING):
            return Literal(token.value)
        if kind == "-" and self.peek().kind in (INT, FLOAT):
            number = self.advance()
            if number.kind == INT:
                return Literal(_int_literal(-number.value))
            return Literal(-number.value)
        if kind in ("true", "false"):
            return Literal(kind == "true")
        if kind == "null":
            return Literal(None)
        if kind == IDENT:
            if token.value in RESERVED:
                raise Unsupported(f"syntax: reserved identifier {token.value!r}")
            if self.accept("("):
                return self.global_call(token.value, self.arguments())
            return Ident(token.value)
        if kind == "(":
            node = self.expression()
            self.expect(")")
            return node
        if kind == "[":
            return ListLiteral(tuple(self.sequence("]", self.expression)))
        if kind == "{":
            return MapLiteral(tuple(self.sequence("}", self.map_entry)))
        raise Unsupported(f"syntax: unexpected {token.value!r} at offset {token.offset}")

    # -- pieces --------------------------------------------------------------------------------

    def arguments(self) -> tuple[Node, ...]:
        """Call arguments after ``(``: a comma-separated list without a trailing comma."""
        args: list[Node] = []
        if self.accept(")"):
            return ()
        args.append(self.expression())
        while self.accept(","):
            args.append(self.expression())
        self.expect(")")
        return tuple(args)

    def sequence(self, closing: str, item: Callable[[], _Item]) -> list[_Item]:
        """List or map literal items after the opening bracket; a trailing comma is allowed (the
        grammar even accepts a lone ``,``, as in ``[,]``)."""
        items: list[_Item] = []
        if self.accept(closing):
            return items
        if not self.accept(","):
            items.append(item())
            while self.accept(","):
                if self.peek().kind == closing:
                    break
                items.append(item())
        self.expect(closing)
        return items

    def map_entry(self) -> tuple[Node, Node]:
        if self.peek().kind == "?":
            raise Unsupported("optional map entries are not supported")
        key = self.expression()
        self.expect(":")
        return key, self.expression()

    def global_call(self, name: str, args: tuple[Node, ...]) -> Node:
        if name == "has":
            if len(args) != 1 or not isinstance(args[0], Select):
                raise Unsupported("syntax: has() needs a field selection")
            return Has(args[0].operand, args[0].field)
        return Call(name, None, args)

    def method(self, target: Node, name: str, args: tuple[Node, ...]) -> Node:
        arities = _MACROS.get(name)
        if arities is None or len(args) not in arities:
            return Call(name, target, args)
        variable = args[0]
        if not isinstance(variable, Ident):
            raise Unsupported(f"syntax: the first argument of {name}() must be a simple name")
        if name == "map":
            if len(args) == 3:
                return Comprehension("map", target, variable.name, args[1], args[2])
            return Comprehension("map", target, variable.name, None, args[1])
        return Comprehension(name, target, variable.name, args[1], None)


def _int_literal(value: int) -> int:
    if value > INT_MAX or value < INT_MIN:
        raise Unsupported(f"int literal {value} is out of range")
    return value
