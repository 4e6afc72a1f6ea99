"""Field paths as the explain view prints them, and back: ``spec.template.spec.containers[0].env[3]``.

The printed form is :func:`engine.model.jsonvalue.render_path`'s (keys joined by dots, ``[N]`` for list
indices, ``["odd.key"]`` for keys that are not plain names). Suites name fields the same way in
``setBy``, and may also pick a list item by one of its fields, ``containers[name=agent]``, because an
index into a list the default policies build is not something a suite author should have to count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.model.jsonvalue import JSON, Path

_KEY = re.compile(r"[A-Za-z_$][\w$-]*")
_SELECTOR = re.compile(r"([A-Za-z_$][\w$-]*)=([^\]]*)")


class PathSyntaxError(ValueError):
    """A path that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Select:
    """``[field=value]``: the list item whose ``field`` is the string ``value``."""

    field: str
    value: str


Step = str | int | Select


def parse_path(text: str) -> tuple[Step, ...]:
    """Parse a printed path (optionally with ``[field=value]`` selectors) into its steps."""
    steps: list[Step] = []
    i = 0
    expect_key = True
    while i < len(text):
        char = text[i]
        if char == ".":
            if expect_key:
                raise PathSyntaxError(f"unexpected '.' at character {i + 1} of {text!r}")
            expect_key = True
            i += 1
            continue
        if char == "[":
            end, step = _bracket(text, i)
            steps.append(step)
            i = end
            expect_key = False
            continue
        if not expect_key:
            raise PathSyntaxError(f"expected '.' or '[' at character {i + 1} of {text!r}")
        match = _KEY.match(text, i)
        if match is None:
            raise PathSyntaxError(f"expected a field name at character {i + 1} of {text!r}")
        steps.append(match.group(0))
        i = match.end()
        expect_key = False
    if expect_key and steps:
        raise PathSyntaxError(f"{text!r} ends with '.'")
    return tuple(steps)


def _bracket(text: str, start: int) -> tuple[int, Step]:
    if text.startswith('["', start):
        end = text.find('"]', start + 2)
        if end < 0:
            raise PathSyntaxError(f"unclosed '[\"' at character {start + 1} of {text!r}")
        return end + 2, text[start + 2 : end]
    end = text.find("]", start)
    if end < 0:
        raise PathSyntaxError(f"unclosed '[' at character {start + 1} of {text!r}")
    inner = text[start + 1 : end]
    if inner.isdigit():
        return end + 1, int(inner)
    selector = _SELECTOR.fullmatch(inner)
    if selector is None:
        raise PathSyntaxError(f"'[{inner}]' in {text!r} is neither an index nor field=value")
    return end + 1, Select(selector.group(1), selector.group(2).strip().strip("'\""))


def resolve(document: JSON, steps: tuple[Step, ...]) -> Path | None:
    """Turn selectors into indices by looking at ``document``; ``None`` when a step finds nothing."""
    out: list[str | int] = []
    current = document
    for step in steps:
        if isinstance(step, Select):
            if not isinstance(current, list):
                return None
            found = [
                i
                for i, item in enumerate(current)
                if isinstance(item, dict) and item.get(step.field) == step.value
            ]
            if len(found) != 1:
                return None
            out.append(found[0])
            current = current[found[0]]
        elif isinstance(step, int):
            if not isinstance(current, list) or not 0 <= step < len(current):
                return None
            out.append(step)
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return None
            out.append(step)
            current = current[step]
    return tuple(out)
