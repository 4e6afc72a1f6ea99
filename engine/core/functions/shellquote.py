"""Shell quoting byte-compatible with Go's ``github.com/kballard/go-shellquote`` ``Join``.

Upstream builds ``BUILDKITE_COMMAND`` with that library, and the command string is visible to users
(in logs and in the pod), so the exact bytes matter, not just the meaning to ``/bin/sh``. The rules:

* the empty word is written ``''``;
* a word containing a space, tab or newline is single-quoted, each ``'`` inside written as ``\\'``
  outside the quotes (``don't stop`` → ``'don'\\''t stop'``);
* otherwise each shell-special character (``\\ ' " ` $ { [ | & ; < > ( ) * ? !``) is escaped with a
  backslash, as is ``~`` when it is the first character; everything else (``=``, ``%``, ``]``, ``}``,
  ``#``, non-ASCII) is left as it is.

Python's ``shlex.quote`` differs (it single-quotes anything unusual), which is why this exists.
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_CHARACTERS = frozenset("\\'\"`${[|&;<>()*?!")
"""Escaped with a backslash anywhere in a word without whitespace."""

WHITESPACE_CHARACTERS = frozenset(" \t\n")
"""Any of these makes the whole word single-quoted (backslashes cannot escape them readably)."""

LEADING_SPECIAL_CHARACTERS = frozenset("~")
"""Escaped only as the first character (tilde expansion happens only there)."""


def shell_quote(word: str) -> str:
    """One word, quoted so ``/bin/sh`` reads it back unchanged; bare when nothing needs quoting."""
    if word == "":
        return "''"
    if any(char in WHITESPACE_CHARACTERS for char in word):
        return "\\'".join(f"'{part}'" if part else "" for part in word.split("'"))
    escaped: list[str] = []
    for index, char in enumerate(word):
        if char in SPECIAL_CHARACTERS or (index == 0 and char in LEADING_SPECIAL_CHARACTERS):
            escaped.append("\\")
        escaped.append(char)
    return "".join(escaped)


def shell_join(words: Iterable[str]) -> str:
    """Quote each word and join them with single spaces (go-shellquote's ``Join``)."""
    return " ".join(shell_quote(word) for word in words)
