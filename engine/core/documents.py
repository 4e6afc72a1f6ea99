"""Reading and replacing values inside immutable JSON documents.

``set_in`` copies only the containers along the path (structural sharing), which is what keeps a
targeted rule on one container from copying the whole Job.
"""

from __future__ import annotations

from engine.model.jsonvalue import JSON, Path

POD_SPEC_PATH: Path = ("spec", "template", "spec")


def get_in(document: JSON, path: Path, default: JSON = None) -> JSON:
    current = document
    for key in path:
        if isinstance(key, int):
            if not isinstance(current, list) or not -len(current) <= key < len(current):
                return default
            current = current[key]
        else:
            if not isinstance(current, dict) or key not in current:
                return default
            current = current[key]
    return current


def set_in(document: JSON, path: Path, value: JSON) -> JSON:
    """A copy of ``document`` with ``value`` at ``path``; missing maps along the way are created."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        if not isinstance(document, list) or not 0 <= key < len(document):
            raise IndexError(f"index {key} out of range")
        items = list(document)
        items[key] = set_in(items[key], rest, value)
        return items
    base = dict(document) if isinstance(document, dict) else {}
    base[key] = set_in(base.get(key), rest, value)
    return base


def pointer_to_path(pointer: str) -> tuple[str, ...]:
    """RFC 6901 JSON pointer → path tuple (numeric segments stay strings; callers resolve lists)."""
    if pointer in ("", "/"):
        return () if pointer == "" else ("",)
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/"))


def resolve_path(document: JSON, pointer: str) -> Path:
    """A pointer as a path whose list indices are ints, following the document's actual shape."""
    out: list[str | int] = []
    current = document
    for part in pointer_to_path(pointer):
        if isinstance(current, list) and part.isdigit():
            out.append(int(part))
            current = current[int(part)] if int(part) < len(current) else None
        else:
            out.append(part)
            current = current.get(part) if isinstance(current, dict) else None
    return tuple(out)
