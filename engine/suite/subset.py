"""Deep subset matching of an expected partial Job against the real one, with a minimal diff.

* a map matches when every expected key matches the actual value under it; an expected ``null``
  means the key must be absent (or null);
* a list matches when each expected item matches a different actual item, in the same order (other
  items may sit between), so ``containers: [{name: agent, image: x}]`` finds the agent container
  wherever the policies put it;
* anything else matches an equal JSON value (``1`` equals ``1.0``; ``true`` is not ``1``).

A mismatch is reported where it is, not as "the manifests differ": one line per differing field, and
for a list item that matches nothing, the closest actual item and what differs in it.
"""

from __future__ import annotations

import json

from engine.core.patch.strategic import json_equal
from engine.model.jsonvalue import JSON, Path, render_path


def subset_mismatches(expected: JSON, actual: JSON, path: Path = ()) -> list[str]:
    """Every way ``actual`` fails to contain ``expected``; ``[]`` when it does."""
    where = render_path(path) or "(the Job)"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a map, got {show(actual)}"]
        out: list[str] = []
        for key, value in expected.items():
            child = (*path, key)
            if key not in actual or actual[key] is None:
                if value is not None:
                    out.append(f"{render_path(child)}: expected {show(value)}, got nothing")
                continue
            if value is None:
                out.append(f"{render_path(child)}: expected no value, got {show(actual[key])}")
                continue
            out.extend(subset_mismatches(value, actual[key], child))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {show(actual)}"]
        return _list_mismatches(expected, actual, path)
    if not json_equal(expected, actual):
        return [f"{where}: expected {show(expected)}, got {show(actual)}"]
    return []


def _list_mismatches(expected: list[JSON], actual: list[JSON], path: Path) -> list[str]:
    out: list[str] = []
    start = 0
    for index, item in enumerate(expected):
        found = next(
            (i for i in range(start, len(actual)) if not subset_mismatches(item, actual[i], (*path, i))), None
        )
        if found is not None:
            start = found + 1
            continue
        where = render_path(path)
        if not actual[start:]:
            out.append(f"{where}: expected item {index} {show(item)}, but no items are left to match it")
            continue
        candidates = [(subset_mismatches(item, actual[i], (*path, i)), i) for i in range(start, len(actual))]
        closest, at = min(candidates, key=lambda c: (len(c[0]), c[1]))
        out.append(f"{where}: no item matches expected item {index} {show(item)}; closest is {where}[{at}]:")
        out.extend(f"  {line}" for line in closest)
    return out


def show(value: JSON) -> str:
    """A value as one line of JSON, whole."""
    if value is None:
        return "nothing"
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
