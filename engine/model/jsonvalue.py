"""The JSON value vocabulary every layer shares.

Manifests, patches and expression results are plain JSON-shaped Python values (dict, list, str, int,
float, bool, None). The engine treats them as immutable: functions that "change" a document return
a new one that may share unchanged sub-trees with the input, so no caller ever needs a deep copy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

JSON: TypeAlias = Any
"""Any JSON-shaped value. ``Any`` because mypy cannot express recursive JSON usefully here."""

JSONObject: TypeAlias = dict[str, Any]

PathSegment: TypeAlias = str | int
Path: TypeAlias = tuple[PathSegment, ...]

ChangeOp = Literal["add", "replace", "remove"]


@dataclass(frozen=True, slots=True)
class Change:
    """One observable change to a document, as produced by a patch operation.

    ``path`` is relative to the document the operation was applied to; ``old`` is ``None`` for an
    ``add`` and ``new`` is ``None`` for a ``remove``. A whole new sub-tree is one change, not one per
    leaf, so a trace stays readable.
    """

    op: ChangeOp
    path: Path
    old: JSON
    new: JSON


def render_path(path: Path) -> str:
    """Render a path as ``spec.template.spec.containers[0].env[3].value`` for humans.

    Every change of every job is traced with its rendered path, and jobs share their shapes, so the
    renderings are cached (bounded)."""
    try:
        return _render_cached(path)
    except TypeError:  # a segment that is not hashable: render it without the cache
        return _render(path)


@functools.lru_cache(maxsize=8192)
def _render_cached(path: Path) -> str:
    return _render(path)


def _render(path: Path) -> str:
    out: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif out:
            out.append("." + seg if _is_plain_key(seg) else f'["{seg}"]')
        else:
            out.append(seg if _is_plain_key(seg) else f'["{seg}"]')
    return "".join(out)


def _is_plain_key(key: str) -> bool:
    return key.replace("_", "a").replace("-", "a").isalnum() and not key[:1].isdigit()
