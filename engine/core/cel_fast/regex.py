"""RE2 patterns (what ``matches()`` means in cel-rust) turned into equivalent Python ``re`` patterns.

Only a conservative subset is translated; everything else raises :class:`Unsupported` so the ``cel``
library (Rust's RE2-like engine) evaluates the expression. Decisions, each checked against the
library:

* ``$`` without the ``m`` flag is the end of the text in RE2 but "end, or before a final newline" in
  Python, so it becomes ``\\Z``; ``\\z`` also becomes ``\\Z``.
* ``\\s`` is Unicode White_Space in RE2 but also matches ``\\x1c``-``\\x1f`` in Python, so it becomes an
  explicit class.
* ``\\w``, ``\\W``, ``\\b`` and ``\\B`` are refused: RE2 counts combining marks as word characters and
  Python does not, and the other way round for characters such as ``²``.
* Lookaround, backreferences, ``\\p{..}``, POSIX and nested classes, class set operations and
  possessive or stacked quantifiers do not exist in one engine or the other; they are refused.
* A group repeated more than once (``*``, ``+``, ``{n,m}`` with ``m > 1``) that itself contains a
  quantifier or an alternation is refused: Python's backtracking can take exponential time on it,
  where RE2 is linear. (``(...)?`` is fine.)
"""

from __future__ import annotations

import re

from engine.core.cel_fast.errors import Unsupported

_SPACE_CLASS = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_CONTROL_ESCAPES = {"n": "\\n", "t": "\\t", "r": "\\r", "f": "\\x0c", "v": "\\x0b", "a": "\\x07"}
_HEX = frozenset("0123456789abcdefABCDEF")
_QUANTIFIERS = frozenset("*+?{")
_FLAG_GROUP = re.compile(r"\(\?([ims]+)\)")
_BOUNDED_REPEAT = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")
_GROUP_NAME = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")


def compile_re2(pattern: str) -> re.Pattern[str]:
    """A Python pattern whose ``search`` agrees with RE2's ``is_match`` for ``pattern``."""
    translated = _Translator(pattern).run()
    try:
        return re.compile(translated)
    except re.error as exc:
        raise Unsupported(f"regular expression {pattern!r}: {exc}") from None


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.out: list[str] = []
        self.multiline = False
        # One entry per open group: does it contain a quantifier or an alternation?
        self.groups: list[bool] = []
        self.last_atom_complex = False  # the last atom was a group containing repetition/choice
        self.can_repeat = False  # the previous item is an atom a quantifier may follow

    def refuse(self, why: str) -> Unsupported:
        return Unsupported(f"regular expression {self.pattern!r}: {why}")

    def run(self) -> str:
        flags = _FLAG_GROUP.match(self.pattern)
        if flags is not None:
            self.multiline = "m" in flags.group(1)
            self.out.append(flags.group(0))
            self.pos = flags.end()
        while self.pos < len(self.pattern):
            self.step()
        if self.groups:
            raise self.refuse("unclosed group")
        return "".join(self.out)

    def atom(self, text: str, complex_group: bool = False) -> None:
        self.out.append(text)
        self.can_repeat = True
        self.last_atom_complex = complex_group

    def mark_structure(self) -> None:
        """Record, in every enclosing group, that it contains repetition or alternation."""
        self.groups = [True] * len(self.groups)

    def step(self) -> None:
        char = self.pattern[self.pos]
        if char == "\\":
            self.atom(self.escape(in_class=False))
        elif char == "[":
            self.atom(self.char_class())
        elif char == "(":
            self.open_group()
        elif char == ")":
            if not self.groups:
                raise self.refuse("unbalanced ')'")
            complex_group = self.groups.pop()
            self.pos += 1
            self.atom(")", complex_group)
        elif char == "|":
            self.mark_structure()
            self.pos += 1
            self.out.append("|")
            self.can_repeat = False
        elif char in _QUANTIFIERS:
            self.quantifier()
        elif char == "^":
            self.pos += 1
            self.out.append("^")
            self.can_repeat = False
        elif char == "$":
            self.pos += 1
            self.out.append("$" if self.multiline else "\\Z")
            self.can_repeat = False
        else:
            self.pos += 1
            self.atom(char if char == "." else re.escape(char))

    def open_group(self) -> None:
        rest = self.pattern[self.pos :]
        if rest.startswith("(?:"):
            self.pos += 3
            self.out.append("(?:")
        elif rest.startswith("(?"):
            name = _GROUP_NAME.match(rest)
            if name is None:
                raise self.refuse("only (, (?: and (?P<name> groups are supported")
            self.pos += name.end()
            self.out.append(name.group(0))
        else:
            self.pos += 1
            self.out.append("(")
        self.groups.append(False)
        self.can_repeat = False

    def quantifier(self) -> None:
        if not self.can_repeat:
            raise self.refuse("a quantifier must follow an atom")
        rest = self.pattern[self.pos :]
        at_most_once = rest[0] == "?"
        if rest[0] == "{":
            bounded = _BOUNDED_REPEAT.match(rest)
            if bounded is None:
                raise self.refuse("malformed {n,m} repetition")
            low = int(bounded.group(1))
            if bounded.group(2) is None:  # {n}
                high: int | None = low
            else:  # {n,} or {n,m}
                high = int(bounded.group(3)) if bounded.group(3) else None
            if high is not None and high < low:
                raise self.refuse("invalid {n,m} repetition")
            at_most_once = high is not None and high <= 1
            text = bounded.group(0)
        else:
            text = rest[0]
        if self.last_atom_complex and not at_most_once:
            raise self.refuse("a repeated group containing repetition or alternation")
        self.pos += len(text)
        if self.pattern[self.pos : self.pos + 1] == "?":
            text += "?"
            self.pos += 1
        self.out.append(text)
        self.mark_structure()
        self.can_repeat = False  # so a stacked or possessive quantifier (a**, a*+) is refused

    def escape(self, in_class: bool) -> str:
        pattern = self.pattern
        kind = pattern[self.pos + 1 : self.pos + 2]
        if not kind:
            raise self.refuse("trailing backslash")
        self.pos += 2
        if kind in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[kind]
        if kind in ("d", "D"):
            return "\\" + kind
        if kind == "s":
            return _SPACE_CLASS if in_class else f"[{_SPACE_CLASS}]"
        if kind == "S" and not in_class:
            return f"[^{_SPACE_CLASS}]"
        if kind in ("A", "z") and not in_class:
            return "\\A" if kind == "A" else "\\Z"
        if kind == "x":
            return self.hex_escape()
        if kind == "u":
            digits = pattern[self.pos : self.pos + 4]
            if len(digits) != 4 or not all(d in _HEX for d in digits):
                raise self.refuse("malformed \\u escape")
            self.pos += 4
            return _code_point(int(digits, 16))
        if kind.isascii() and not kind.isalnum() and kind not in "<>":
            return re.escape(kind)
        raise self.refuse(f"unsupported escape \\{kind}")

    def hex_escape(self) -> str:
        pattern = self.pattern
        if pattern[self.pos : self.pos + 1] == "{":
            end = pattern.find("}", self.pos)
            digits = pattern[self.pos + 1 : end] if end > 0 else ""
            consumed = len(digits) + 2
        else:
            digits = pattern[self.pos : self.pos + 2]
            consumed = 2
            if len(digits) != 2:
                digits = ""
        if not digits or len(digits) > 8 or not all(d in _HEX for d in digits):
            raise self.refuse("malformed \\x escape")
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise self.refuse("\\x escape is not a Unicode scalar value")
        self.pos += consumed
        return _code_point(code)

    def char_class(self) -> str:
        """``[...]``: plain characters, ranges and the escapes above; nothing Rust-only or
        ambiguous between the engines (nesting, ``&&``, ``--``, ``~~``, ``||``, a leading ``]``)."""
        pattern = self.pattern
        self.pos += 1
        parts = ["["]
        if pattern[self.pos : self.pos + 1] == "^":
            parts.append("^")
            self.pos += 1
        if pattern[self.pos : self.pos + 1] == "]":
            raise self.refuse("']' first in a class")
        while True:
            if self.pos >= len(pattern):
                raise self.refuse("unclosed class")
            char = pattern[self.pos]
            if char == "]":
                self.pos += 1
                parts.append("]")
                return "".join(parts)
            if char == "[":
                raise self.refuse("nested or POSIX classes")
            if pattern.startswith(("&&", "--", "~~", "||"), self.pos):
                raise self.refuse("class set operations")
            if char == "\\":
                parts.append(self.escape(in_class=True))
            elif char == "-":
                parts.append("-")
                self.pos += 1
            else:
                parts.append(re.escape(char))
                self.pos += 1


def _code_point(code: int) -> str:
    return f"\\U{code:08x}"
