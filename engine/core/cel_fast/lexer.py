"""Tokens of CEL source, following the lexical rules of the CEL grammar (as cel-rust accepts them).

Anything the grammar does not allow, and anything this evaluator does not model (bytes and uint
literals), raises :class:`Unsupported`, so such an expression is left to the ``cel`` library, which
reports the syntax error or evaluates the feature itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.core.cel_fast.errors import Unsupported

# Token kinds besides the punctuation, which is its own kind ("==", "(", ...).
INT = "int"
FLOAT = "float"
STRING = "string"
IDENT = "ident"
EOF = "eof"

KEYWORDS = frozenset({"true", "false", "null", "in"})
# Reserved words lex as identifiers: the reference accepts them as field and method names after a
# dot, and rejects them as plain names (the parser's job).
RESERVED = frozenset(
    {
        "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop",
        "package", "namespace", "return", "var", "void", "while",
    }
)  # fmt: skip

_PUNCTUATION = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":")
_SINGLE = frozenset(".,()[]{}")
_WHITESPACE = frozenset(" \t\n\r\f")
_IDENT_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_IDENT_PART = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: Any
    offset: int


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``EOF`` token."""
    return _Lexer(source).run()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0
        self.tokens: list[Token] = []

    def fail(self, why: str) -> Unsupported:
        return Unsupported(f"{why} at offset {self.pos}")

    def run(self) -> list[Token]:
        text = self.source
        while True:
            self._skip_space()
            if self.pos >= len(text):
                self.tokens.append(Token(EOF, None, self.pos))
                return self.tokens
            char = text[self.pos]
            if char in _DIGITS or (char == "." and text[self.pos + 1 : self.pos + 2] in _DIGITS):
                self._number()
            elif char in _IDENT_START:
                self._word()
            elif char in "'\"":
                self._string(raw=False, start=self.pos)
            elif char in _SINGLE:
                self.tokens.append(Token(char, char, self.pos))
                self.pos += 1
            else:
                self._operator()

    def _skip_space(self) -> None:
        text = self.source
        while self.pos < len(text):
            if text[self.pos] in _WHITESPACE:
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            else:
                return

    def _operator(self) -> None:
        for op in _PUNCTUATION:
            if self.source.startswith(op, self.pos):
                self.tokens.append(Token(op, op, self.pos))
                self.pos += len(op)
                return
        raise self.fail(f"unexpected character {self.source[self.pos]!r}")

    def _word(self) -> None:
        text = self.source
        start = self.pos
        while self.pos < len(text) and text[self.pos] in _IDENT_PART:
            self.pos += 1
        word = text[start : self.pos]
        quote_follows = self.pos < len(text) and text[self.pos] in "'\""
        if quote_follows and word in ("r", "R"):
            self._string(raw=True, start=start)
            return
        if quote_follows and word.lower() in ("b", "br"):
            raise self.fail("bytes literals are not supported")
        kind = word if word in KEYWORDS else IDENT
        self.tokens.append(Token(kind, word, start))

    def _number(self) -> None:
        text = self.source
        start = self.pos
        if text.startswith("0x", start) and text[start + 2 : start + 3] in _HEX:
            self.pos = start + 2
            while self.pos < len(text) and text[self.pos] in _HEX:
                self.pos += 1
            self._integer(int(text[start + 2 : self.pos], 16), start)
            return
        self._digits()
        is_float = False
        if text[self.pos : self.pos + 1] == "." and text[self.pos + 1 : self.pos + 2] in _DIGITS:
            is_float = True
            self.pos += 1
            self._digits()
        if text[self.pos : self.pos + 1] in ("e", "E"):
            mark = self.pos
            self.pos += 1
            if text[self.pos : self.pos + 1] in ("+", "-"):
                self.pos += 1
            if text[self.pos : self.pos + 1] in _DIGITS:
                is_float = True
                self._digits()
            else:
                self.pos = mark  # not an exponent: the letter starts the next token
        lexeme = text[start : self.pos]
        if is_float:
            value = float(lexeme)
            if value in (math.inf, -math.inf):
                raise self.fail("double literal out of range")
            self.tokens.append(Token(FLOAT, value, start))
        else:
            self._integer(int(lexeme), start)

    def _integer(self, value: int, start: int) -> None:
        if self.source[self.pos : self.pos + 1] in ("u", "U"):
            raise self.fail("uint literals are not supported")
        self.tokens.append(Token(INT, value, start))

    def _digits(self) -> None:
        text = self.source
        while self.pos < len(text) and text[self.pos] in _DIGITS:
            self.pos += 1

    def _string(self, raw: bool, start: int) -> None:
        text = self.source
        quote = text[self.pos]
        triple = text.startswith(quote * 3, self.pos)
        closing = quote * 3 if triple else quote
        self.pos += len(closing)
        chars: list[str] = []
        while True:
            if self.pos >= len(text):
                raise self.fail("unterminated string")
            if text.startswith(closing, self.pos):
                self.pos += len(closing)
                break
            char = text[self.pos]
            if not triple and char in "\r\n":
                raise self.fail("newline in a single-quoted string")
            if char == "\\" and not raw:
                chars.append(self._escape())
            elif char == "\r":  # only in triple quotes: \r\n and a lone \r are read as \n
                chars.append("\n")
                self.pos += 2 if text.startswith("\r\n", self.pos) else 1
            else:
                chars.append(char)
                self.pos += 1
        self.tokens.append(Token(STRING, "".join(chars), start))

    def _escape(self) -> str:
        text = self.source
        kind = text[self.pos + 1 : self.pos + 2]
        if kind in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[kind]
        if kind in ("x", "X", "u", "U"):
            width = {"x": 2, "X": 2, "u": 4, "U": 8}[kind]
            digits = text[self.pos + 2 : self.pos + 2 + width]
            if len(digits) != width or not all(d in _HEX for d in digits):
                raise self.fail("malformed escape")
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail("escape is not a Unicode scalar value")
            self.pos += 2 + width
            return chr(code)
        digits = text[self.pos + 1 : self.pos + 4]
        if len(digits) == 3 and digits[0] in "0123" and all(d in _OCTAL for d in digits):
            self.pos += 4
            return chr(int(digits, 8))
        raise self.fail("unknown escape sequence")
