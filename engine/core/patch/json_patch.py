"""JSON Patch (RFC 6902) with JSON Pointers (RFC 6901), returning the new document and its changes.

Rules use ``jsonPatch`` for what a strategic merge cannot say (append to an atomic list, act on one
list position, test a value first). Operations apply in order, each to the result of the previous
one, so every change path is valid in the document as it was right after that operation. The input
is never mutated: each operation rebuilds only the containers on its path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NoReturn

from engine.core.patch.strategic import json_equal
from engine.model.jsonvalue import JSON, Change, Path

_OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")


class JsonPatchError(ValueError):
    """An operation that cannot be applied; the message names the operation's index, op and path."""


def apply_json_patch(doc: JSON, operations: list[dict[str, JSON]]) -> tuple[JSON, list[Change]]:
    """Apply RFC 6902 ``operations`` to ``doc``; the whole patch fails if any operation does."""
    if not isinstance(operations, list):
        raise JsonPatchError("a JSON patch must be a list of operations")
    changes: list[Change] = []
    for index, operation in enumerate(operations):
        doc = _Operation(index, operation).apply(doc, changes)
    return doc, changes


class _Operation:
    """One operation of the patch, with what it needs to explain a failure."""

    __slots__ = ("index", "label", "operation")

    def __init__(self, index: int, operation: JSON) -> None:
        self.index = index
        self.operation = operation
        self.label = f"operation {index}"
        if not isinstance(operation, dict):
            self.fail('must be an object with "op" and "path"')
        op = operation.get("op")
        if op not in _OPERATIONS:
            self.fail(f"unknown op {op!r} (expected one of {', '.join(_OPERATIONS)})")
        pointer = operation.get("path")
        if not isinstance(pointer, str):
            self.label = f"operation {index} ({op})"
            self.fail('needs a "path" string')
        shown = pointer if pointer else '""'
        self.label = f"operation {index} ({op} {shown})"

    def fail(self, reason: str) -> NoReturn:
        raise JsonPatchError(f"{self.label}: {reason}")

    def member(self, name: str) -> JSON:
        if name not in self.operation:
            self.fail(f'needs a "{name}" member')
        return self.operation[name]

    def apply(self, doc: JSON, changes: list[Change]) -> JSON:
        op = self.operation["op"]
        tokens = self.parse(self.operation["path"])
        if op == "add":
            return self.add(doc, tokens, self.member("value"), changes)
        if op == "remove":
            return self.remove(doc, tokens, changes)
        if op == "replace":
            return self.replace(doc, tokens, self.member("value"), changes)
        if op == "test":
            self.test(doc, tokens, self.member("value"))
            return doc
        source = self.member("from")
        if not isinstance(source, str):
            self.fail('"from" must be a JSON pointer string')
        from_tokens = self.parse(source)
        value = self.get(doc, from_tokens, what='"from" path')
        if op == "copy":
            return self.add(doc, tokens, value, changes)
        if tokens == from_tokens:
            return doc
        if tokens[: len(from_tokens)] == from_tokens:
            self.fail("cannot move a value into one of its own children")
        doc = self.remove(doc, from_tokens, changes)
        return self.add(doc, tokens, value, changes)

    # --- the operations ----------------------------------------------------------------------------

    def add(self, doc: JSON, tokens: tuple[str, ...], value: JSON, changes: list[Change]) -> JSON:
        if not tokens:
            return self.replace_root(doc, value, changes)

        def insert(container: JSON, token: str, path: Path) -> JSON:
            if isinstance(container, dict):
                if token in container:
                    if json_equal(container[token], value):
                        return container
                    changes.append(Change("replace", (*path, token), container[token], value))
                else:
                    changes.append(Change("add", (*path, token), None, value))
                return {**container, token: value}
            position = (
                len(container) if token == "-" else self.list_index(token, len(container), for_insert=True)
            )
            changes.append(Change("add", (*path, position), None, value))
            return [*container[:position], value, *container[position:]]

        return self.update(doc, tokens, insert)

    def remove(self, doc: JSON, tokens: tuple[str, ...], changes: list[Change]) -> JSON:
        if not tokens:
            self.fail("cannot remove the whole document")

        def delete(container: JSON, token: str, path: Path) -> JSON:
            if isinstance(container, dict):
                if token not in container:
                    self.fail("path does not exist")
                changes.append(Change("remove", (*path, token), container[token], None))
                return {key: value for key, value in container.items() if key != token}
            position = self.list_index(token, len(container))
            changes.append(Change("remove", (*path, position), container[position], None))
            return [*container[:position], *container[position + 1 :]]

        return self.update(doc, tokens, delete)

    def replace(self, doc: JSON, tokens: tuple[str, ...], value: JSON, changes: list[Change]) -> JSON:
        if not tokens:
            return self.replace_root(doc, value, changes)

        def swap(container: JSON, token: str, path: Path) -> JSON:
            if isinstance(container, dict):
                if token not in container:
                    self.fail("path does not exist")
                if json_equal(container[token], value):
                    return container
                changes.append(Change("replace", (*path, token), container[token], value))
                return {**container, token: value}
            position = self.list_index(token, len(container))
            if json_equal(container[position], value):
                return container
            changes.append(Change("replace", (*path, position), container[position], value))
            return [*container[:position], value, *container[position + 1 :]]

        return self.update(doc, tokens, swap)

    def test(self, doc: JSON, tokens: tuple[str, ...], expected: JSON) -> None:
        actual = self.get(doc, tokens, what="path")
        if not json_equal(actual, expected):
            self.fail(f"test failed: the value is {_short(actual)}, expected {_short(expected)}")

    @staticmethod
    def replace_root(doc: JSON, value: JSON, changes: list[Change]) -> JSON:
        if json_equal(doc, value):
            return doc
        changes.append(Change("replace", (), doc, value))
        return value

    # --- pointers ----------------------------------------------------------------------------------

    def parse(self, pointer: str) -> tuple[str, ...]:
        """RFC 6901: ``""`` is the whole document, ``/a/b`` two tokens, ``~1`` is ``/``, ``~0`` is ``~``."""
        if pointer == "":
            return ()
        if not pointer.startswith("/"):
            self.fail(f'invalid JSON pointer {pointer!r}: it must be empty or start with "/"')
        tokens = pointer[1:].split("/")
        if "~" not in pointer:
            return tuple(tokens)
        for token in tokens:
            rest = token.replace("~0", "").replace("~1", "")
            if "~" in rest:
                self.fail(f'invalid JSON pointer {pointer!r}: "~" must be followed by 0 or 1')
        return tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)

    def list_index(self, token: str, length: int, *, for_insert: bool = False) -> int:
        """A list position from a pointer token: digits without leading zeros, inside the list.

        ``for_insert`` also allows ``length`` itself (insert at the end), as ``add`` does.
        """
        if token == "-":
            self.fail('"-" (after the last element) only names a place to add')
        if not (token.isdigit() and token.isascii()) or (token != "0" and token.startswith("0")):
            self.fail(f"{token!r} is not a list index")
        position = int(token)
        if position > length or (position == length and not for_insert):
            self.fail(f"index {position} is out of range (the list has {length} elements)")
        return position

    def get(self, doc: JSON, tokens: tuple[str, ...], what: str) -> JSON:
        value = doc
        for token in tokens:
            if isinstance(value, dict):
                if token not in value:
                    self.fail(f"{what} does not exist")
                value = value[token]
            elif isinstance(value, list):
                value = value[self.list_index(token, len(value))]
            else:
                self.fail(f"{what} does not exist")
        return value

    def update(self, doc: JSON, tokens: tuple[str, ...], leaf: Callable[[JSON, str, Path], JSON]) -> JSON:
        """Rebuild the containers from the root to the parent of ``tokens[-1]``; ``leaf`` edits the parent."""
        return self._update(doc, tokens, 0, (), leaf)

    def _update(
        self,
        container: JSON,
        tokens: tuple[str, ...],
        depth: int,
        path: Path,
        leaf: Callable[[JSON, str, Path], JSON],
    ) -> JSON:
        if not isinstance(container, dict | list):
            self.fail("path does not exist")
        token = tokens[depth]
        if depth == len(tokens) - 1:
            return leaf(container, token, path)
        if isinstance(container, dict):
            if token not in container:
                self.fail("path does not exist")
            child = container[token]
            new_child = self._update(child, tokens, depth + 1, (*path, token), leaf)
            return container if new_child is child else {**container, token: new_child}
        position = self.list_index(token, len(container))
        child = container[position]
        new_child = self._update(child, tokens, depth + 1, (*path, position), leaf)
        if new_child is child:
            return container
        return [*container[:position], new_child, *container[position + 1 :]]


def _short(value: JSON) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
