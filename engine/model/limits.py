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

from engine.model.jsonvalue import JSON, Path, render_path

MAX_NESTING_DEPTH = 64
MAX_PLUGINS_BYTES = 256 * 1024
MAX_JOB_BYTES = 512 * 1024
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def json_problem(value: JSON, reserved_keys: frozenset[str] = frozenset()) -> str | None:
    """The first reason ``value`` is unusable (too deep, a number out of range, a reserved key), or
    ``None``. Iterative, so it is safe on any input ``json.loads`` returned."""
    stack: list[tuple[JSON, Path]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict | list) and len(path) >= MAX_NESTING_DEPTH:
            return f"nested more than {MAX_NESTING_DEPTH} levels deep (at {_where(path)})"
        if isinstance(item, dict):
            for key, member in item.items():
                if key in reserved_keys:
                    return f"{_where((*path, key))}: the key {key!r} is reserved for the stack"
                stack.append((member, (*path, key)))
        elif isinstance(item, list):
            stack.extend((member, (*path, index)) for index, member in enumerate(item))
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return f"{_where(path)}: the integer {item} does not fit in 64 bits"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{_where(path)}: the number {item} is not a finite number"
    return None


def refuse_constant(name: str) -> float:
    """``json.loads(parse_constant=...)``: ``NaN`` and ``Infinity`` are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def size_in_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _where(path: Path) -> str:
    return render_path(path) or "the top level"
