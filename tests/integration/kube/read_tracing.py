"""Record which fields code reads from a wire-shape object, and check another object has them too.

:func:`traced` copies a JSON object into ``dict``/``list`` subclasses that note every read: a key
looked up (``obj["k"]``, ``obj.get("k")``, ``"k" in obj``), a dict's keys iterated, a list's items
iterated or counted. Code that reads objects through :mod:`engine.kube.objects` (or plainly) runs on
them unchanged, since they are still dicts and lists.

:func:`missing_reads` then says which of those reads would have seen something different in another
object (the informer-transformed one): a value that differs or is absent, keys that differ, a list of
another length. An empty answer means the code could not tell the two objects apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]
_ABSENT = object()


@dataclass
class Reads:
    """What was read: values by path (for a dict or list value: only that it is one), dicts whose keys
    were listed, lists whose items were iterated or counted."""

    values: set[Path] = field(default_factory=set)
    keys: set[Path] = field(default_factory=set)
    lengths: set[Path] = field(default_factory=set)


class TracedDict(dict[str, Any]):
    def __init__(self, data: dict[str, Any], reads: Reads, path: Path) -> None:
        super().__init__({key: _wrap(value, reads, (*path, key)) for key, value in data.items()})
        self._reads = reads
        self._path = path

    def _note(self, key: str) -> None:
        self._reads.values.add((*self._path, key))

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._note(key)
        return dict.__contains__(self, key)

    def _listed(self) -> None:
        self._reads.keys.add(self._path)
        for key in dict.keys(self):
            self._reads.values.add((*self._path, key))

    def __iter__(self) -> Iterator[str]:
        self._listed()
        return dict.__iter__(self)

    def keys(self) -> Any:
        self._listed()
        return dict.keys(self)

    def items(self) -> Any:
        self._listed()
        return dict.items(self)

    def values(self) -> Any:
        self._listed()
        return dict.values(self)

    def __len__(self) -> int:
        self._reads.keys.add(self._path)
        return dict.__len__(self)


class TracedList(list[Any]):
    def __init__(self, data: list[Any], reads: Reads, path: Path) -> None:
        super().__init__(_wrap(value, reads, (*path, index)) for index, value in enumerate(data))
        self._reads = reads
        self._path = path

    def __iter__(self) -> Iterator[Any]:
        self._reads.lengths.add(self._path)
        return list.__iter__(self)

    def __len__(self) -> int:
        self._reads.lengths.add(self._path)
        return list.__len__(self)

    def __getitem__(self, index: Any) -> Any:
        self._reads.lengths.add(self._path)
        return list.__getitem__(self, index)


def _wrap(value: Any, reads: Reads, path: Path) -> Any:
    if isinstance(value, dict):
        return TracedDict(value, reads, path)
    if isinstance(value, list):
        return TracedList(value, reads, path)
    return value


def traced(obj: dict[str, Any], reads: Reads) -> TracedDict:
    """A copy of ``obj`` that records every read into ``reads``."""
    return TracedDict(obj, reads, ())


def _at(obj: Any, path: Path) -> Any:
    current = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return _ABSENT
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return _ABSENT
            current = current[step]
    return current


def missing_reads(reads: Reads, full: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Reads that would have seen something else in ``other`` than in ``full`` (see module doc)."""
    problems = []
    for path in sorted(reads.values, key=repr):
        if not _same_read(_at(full, path), _at(other, path)):
            problems.append(f"value at {_render(path)}")
    for path in sorted(reads.keys, key=repr):
        mine, theirs = _at(full, path), _at(other, path)
        if not isinstance(theirs, dict) or set(mine) != set(theirs):
            problems.append(f"keys of {_render(path)}")
    for path in sorted(reads.lengths, key=repr):
        mine, theirs = _at(full, path), _at(other, path)
        if not isinstance(theirs, list) or len(mine) != len(theirs):
            problems.append(f"length of {_render(path)}")
    return problems


def _same_read(mine: Any, theirs: Any) -> bool:
    """What a reader sees at one path: for containers only their kind (their content is read further
    down, and recorded there), otherwise the value (or its absence)."""
    if isinstance(mine, dict):
        return isinstance(theirs, dict)
    if isinstance(mine, list):
        return isinstance(theirs, list)
    return bool(mine == theirs) and type(mine) is type(theirs)


def _render(path: Path) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path) or "(root)"
