"""How large and how deep a job's input may be, and the one walk that checks parsed JSON against it.

Why limits at all: everything the engine does with a job is proportional to its size and, for JSON,
recursive in its depth. A pipeline author controls the job's env and the whole ``kubernetes`` plugin
block, so without limits one job could make an evaluation take seconds or raise ``RecursionError``
(a 20,000-deep plugin used to fail every poll, forever). The limits are far above anything a real
job needs and below what could ever become a Job the API server stores (etcd keeps objects up to
1.5 MiB, and the job's env is copied into three containers):

* :data:`MAX_NESTING_DEPTH` levels of JSON nesting in ``BUILDKITE_PLUGINS`` (a pod spec needs ~12);
* :data:`MAX_PLUGINS_BYTES` of ``BUILDKITE_PLUGINS``;
* :data:`MAX_JOB_BYTES` of env (names and values) and command together.

Numbers must be what both CEL evaluators and Kubernetes agree on: integers in the signed 64-bit range
and finite doubles. JSON allows more (``1e400``, ``123456789012345678901234``; Python even reads
``NaN``); such a number is refused here rather than meaning different things on different paths.
"""

from __future__ import annotations

import math
from typing import TypeAlias

from engine.model.jsonvalue import JSON, Path, render_path

MAX_NESTING_DEPTH = 64
MAX_PLUGINS_BYTES = 256 * 1024
MAX_JOB_BYTES = 512 * 1024
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def json_problem(value: JSON, reserved_keys: frozenset[str] = frozenset()) -> str | None:
    """The first reason ``value`` is unusable (too deep, a number out of range, a reserved key), or
    ``None``. Iterative, so it is safe on any input ``json.loads`` returned.

    It runs on every job's plugins, so only maps and lists go on the walk's stack (scalars are judged
    where they are met), each with its depth and a crumb ``(parent's crumb, key)`` from which a path
    is spelt out only for a problem."""
    if not isinstance(value, dict | list):
        return _scalar_problem(value, None)
    stack: list[tuple[JSON, int, _Crumb]] = [(value, 0, None)]
    while stack:
        item, depth, where = stack.pop()
        if depth >= MAX_NESTING_DEPTH:
            return f"nested more than {MAX_NESTING_DEPTH} levels deep (at {_where(_path(where))})"
        members = item.items() if isinstance(item, dict) else enumerate(item)
        for key, member in members:
            if key in reserved_keys and isinstance(item, dict):
                return f"{_where(_path((where, key)))}: the key {key!r} is reserved for the stack"
            if isinstance(member, dict | list):
                stack.append((member, depth + 1, (where, key)))
            elif not (member is None or isinstance(member, str | bool)):
                problem = _scalar_problem(member, (where, key))
                if problem is not None:
                    return problem
    return None


_Crumb: TypeAlias = "tuple[_Crumb, str | int] | None"


def _path(where: _Crumb) -> Path:
    segments: list[str | int] = []
    while where is not None:
        where, segment = where
        segments.append(segment)
    return tuple(reversed(segments))


def _scalar_problem(item: JSON, where: _Crumb) -> str | None:
    if isinstance(item, bool) or item is None or isinstance(item, str):
        return None
    if isinstance(item, int):
        if not INT64_MIN <= item <= INT64_MAX:
            return f"{_where(_path(where))}: the integer {item} does not fit in 64 bits"
    elif isinstance(item, float) and not math.isfinite(item):
        return f"{_where(_path(where))}: the number {item} is not a finite number"
    return None


def refuse_constant(name: str) -> float:
    """``json.loads(parse_constant=...)``: ``NaN`` and ``Infinity`` are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def size_in_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _where(path: Path) -> str:
    return render_path(path) or "the top level"
