"""What an enforce rule owns: exactly the leaf values it set, so only a rule touching one of them conflicts.

A rule that adds ``resources: {limits: {memory: 8Gi}}`` owns ``resources.limits.memory``, not the
``limits`` map: a later enforce rule may still set ``resources.limits.cpu``. A leaf is a scalar, a list
(set as a whole) or an empty map, or a key the rule removed. A later rule conflicts when applying it
would change the value of any leaf an earlier enforce rule owns (including by removing or replacing a
map above it); it is then skipped, so an enforcement cannot be undone by a rule that runs after it.

Leaves are remembered by a *stable* path: a list element that has a ``name`` (containers, env,
volumes) or a ``mountPath`` is identified by it rather than by its index, so a rule that inserts a
container or an env entry elsewhere does not look as if it changed what another rule set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.core.patch.strategic import json_equal
from engine.model.jsonvalue import JSON, Change, Path, render_path

_IDENTITY_KEYS = ("name", "mountPath")


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()

StableSegment = str | int | tuple[str, str]
"""A map key, a list index, or ``(identity key, value)`` naming a list element."""


@dataclass(frozen=True, slots=True)
class Lock:
    """One leaf an enforce rule set: where, its value afterwards (``ABSENT`` if removed), and whose."""

    path: tuple[StableSegment, ...]
    value: JSON | _Absent
    owner: str


def locks_for(before: JSON, after: JSON, changes: Sequence[tuple[Change, Path]], owner: str) -> list[Lock]:
    """The leaves ``owner`` set by these (absolute-path) changes, read from the document ``after`` them."""
    locks: list[Lock] = []
    for change, path in changes:
        if change.op == "remove":
            locks.append(Lock(stable_path(before, path), ABSENT, owner))
            continue
        # below ``path`` a leaf is reached through map keys only, which a stable path keeps as they
        # are: the stable path and the value (by index, the same element) are found once, then each
        # leaf's keys are followed
        base = stable_path(after, path)
        node = read(after, path)
        for leaf in _leaves((), change.new):
            value = node
            for key in leaf:
                value = value.get(key, ABSENT) if isinstance(value, dict) else ABSENT
            locks.append(Lock((*base, *leaf), value, owner))
    return locks


def first_conflict(
    locks: Sequence[Lock],
    before: JSON,
    candidate: JSON,
    changes: Sequence[tuple[Change, Path]],
    owner: str,
) -> tuple[str, str] | None:
    """``(path, owning rule)`` of the first lock of another rule whose value ``candidate`` (the document
    after the rule, which ``before`` was before it) would change; ``path`` is the rule's own change."""
    for lock in locks:
        if lock.owner == owner or _untouched(before, candidate, lock.path):
            continue
        now = read(candidate, lock.path)
        if now is lock.value or (
            now is not ABSENT and lock.value is not ABSENT and json_equal(now, lock.value)
        ):
            continue
        return _shown(lock, before, changes), lock.owner
    return None


def _untouched(before: JSON, after: JSON, path: Sequence[StableSegment]) -> bool:
    """Whether the rule left everything on the way to ``path`` as it was: JSON documents share the
    sub-trees a change does not touch, so meeting the same object in both means the value there is
    the one the lock was checked against. Most locks are decided in a step or two this way."""
    for segment in path:
        if before is after:
            return True
        if isinstance(segment, tuple):
            if not (isinstance(before, list) and isinstance(after, list)):
                return False
            key, value = segment
            before = next((e for e in before if isinstance(e, dict) and e.get(key) == value), ABSENT)
            after = next((e for e in after if isinstance(e, dict) and e.get(key) == value), ABSENT)
        elif isinstance(segment, int):
            if not (isinstance(before, list) and isinstance(after, list)):
                return False
            before = before[segment] if 0 <= segment < len(before) else ABSENT
            after = after[segment] if 0 <= segment < len(after) else ABSENT
        else:
            if not (isinstance(before, dict) and isinstance(after, dict)):
                return False
            before = before.get(segment, ABSENT)
            after = after.get(segment, ABSENT)
    return before is after


def stable_path(document: JSON, path: Path) -> tuple[StableSegment, ...]:
    """``path`` with each list index replaced by the element's identity where it has a unique one."""
    out: list[StableSegment] = []
    current = document
    for segment in path:
        if isinstance(segment, int) and isinstance(current, list) and 0 <= segment < len(current):
            element = current[segment]
            out.append(_identity(current, element) or segment)
            current = element
        else:
            out.append(segment)
            current = current.get(segment) if isinstance(current, dict) else None
    return tuple(out)


def read(document: JSON, path: Sequence[StableSegment]) -> JSON | _Absent:
    """The value at a stable path, or ``ABSENT``."""
    current = document
    for segment in path:
        if isinstance(segment, tuple):
            if not isinstance(current, list):
                return ABSENT
            key, value = segment
            current = next((e for e in current if isinstance(e, dict) and e.get(key) == value), ABSENT)
            if current is ABSENT:
                return ABSENT
        elif isinstance(segment, int):
            if not isinstance(current, list) or not 0 <= segment < len(current):
                return ABSENT
            current = current[segment]
        else:
            if not isinstance(current, dict) or segment not in current:
                return ABSENT
            current = current[segment]
    return current


def _identity(items: list[JSON], element: JSON) -> tuple[str, str] | None:
    if not isinstance(element, dict):
        return None
    for key in _IDENTITY_KEYS:
        value = element.get(key)
        if isinstance(value, str):
            same = sum(1 for e in items if isinstance(e, dict) and e.get(key) == value)
            return (key, value) if same == 1 else None
    return None


def _leaves(path: Path, value: JSON) -> Iterator[Path]:
    stack: list[tuple[Path, JSON]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict) and item:
            stack.extend(((*where, key), member) for key, member in item.items())
        else:
            yield where


def _shown(lock: Lock, before: JSON, changes: Sequence[tuple[Change, Path]]) -> str:
    """The rule's own change that touches the lock (what the rule's author wrote), else the leaf."""
    for _, path in changes:
        stable = stable_path(before, path)
        shorter = min(len(stable), len(lock.path))
        if stable[:shorter] == lock.path[:shorter]:
            return render_path(path)
    return render_path(tuple(f"{s[0]}={s[1]}" if isinstance(s, tuple) else s for s in lock.path))
