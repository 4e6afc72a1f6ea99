"""``defaults`` rules: fill in what a document leaves out, never overriding what it says.

A policy uses defaults for "GPU steps get a GPU limit unless they chose one": keys absent from the
document are added, maps present on both sides are filled key by key, and anything the document
already has (a scalar, a list, even a different type) wins. ``null`` in the defaults means "no
default" and is dropped, also inside the sub-trees it adds. A key whose value is ``null`` in the
document counts as absent, because Kubernetes reads ``null`` as "not set".
"""

from __future__ import annotations

from engine.model.jsonvalue import JSON, Change, Path


class DefaultsError(ValueError):
    """Defaults that cannot be applied (they, and the document, must be objects)."""


def apply_defaults(doc: JSON, defaults: JSON) -> tuple[JSON, list[Change]]:
    """Add the keys of ``defaults`` that ``doc`` lacks, recursively through maps both sides have."""
    if not isinstance(defaults, dict):
        raise DefaultsError(f"defaults must be an object, not {type(defaults).__name__}")
    if not isinstance(doc, dict):
        raise DefaultsError(f"defaults apply to an object, not {type(doc).__name__}")
    changes: list[Change] = []
    return _fill(doc, defaults, (), changes), changes


def _fill(
    doc: dict[str, JSON], defaults: dict[str, JSON], path: Path, changes: list[Change]
) -> dict[str, JSON]:
    updates: dict[str, JSON] | None = None
    for key, default in defaults.items():
        if default is None:
            continue
        current = doc.get(key)
        if current is None:
            value = _without_nulls(default)
            if key in doc:
                changes.append(Change("replace", (*path, key), None, value))
            else:
                changes.append(Change("add", (*path, key), None, value))
        elif isinstance(current, dict) and isinstance(default, dict):
            value = _fill(current, default, (*path, key), changes)
            if value is current:
                continue
        else:
            continue
        if updates is None:
            updates = {}
        updates[key] = value
    return doc if updates is None else {**doc, **updates}


def _without_nulls(value: JSON) -> JSON:
    """``value`` without ``null`` object members at any depth; the same object if it has none."""
    if isinstance(value, dict):
        out: dict[str, JSON] | None = None
        for key, member in value.items():
            if member is None:
                if out is None:
                    out = dict(value)
                del out[key]
                continue
            cleaned = _without_nulls(member)
            if cleaned is not member:
                if out is None:
                    out = dict(value)
                out[key] = cleaned
        return value if out is None else out
    if isinstance(value, list):
        items = [_without_nulls(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
