"""Who set each field of a Job: the decision's trace replayed onto a shadow of the manifest.

The engine records one :class:`~engine.model.decision.TraceRecord` per change, with paths relative to
the document at that moment and in an order in which they can be replayed (the patch modules promise
this). Replaying them onto a tree whose nodes remember their writers gives, for every field of the
final Job, the rule that set it last and the ones before it:

* an ``add`` builds a new sub-tree whose every node is written by that rule (inserted into a list at
  its index, as JSON Patch and the strategic merge record it);
* a ``replace`` keeps what did not change: equal sub-trees keep their writers, list items are matched
  to the old items (equal, else same ``name``/``mountPath``/``containerPort``) before anything is
  called new, so a patch that reorders containers does not claim every field in them;
* a ``remove`` is remembered in :attr:`Blame.removed`.

Rule bodies splice the very objects policy variables hold, so a list item or a whole list that is one
of them is also attributed to the variable it came from (``via``): an env entry the ``bootstrap`` rule
added is shown as coming from ``vars.sharedEnv`` of ``shared-env-and-mounts``.

The replay is checked against the decision's manifest; anything that differs (a change made without a
trace record) is attributed to :data:`UNRECORDED` rather than to a rule that did not make it. The
engine's internal ``$role`` markers never appear.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.core.patch.strategic import json_equal as _equal
from engine.model.decision import Decision, TraceRecord
from engine.model.jsonvalue import JSON, Path

INTERNAL_KEYS = frozenset({"$role"})
"""Keys the engine uses internally and strips from every Job it returns."""

UNRECORDED = "(unrecorded)"
"""The policy name given to changes no trace record explains."""

_IDENTITY_KEYS = ("name", "mountPath", "containerPort", "devicePath", "ip", "key")


@dataclass(frozen=True, slots=True)
class Via:
    """The policy variable a value was spliced from."""

    policy: str
    variable: str

    def render(self) -> str:
        return f"{self.policy}/vars.{self.variable}"


@dataclass(frozen=True, slots=True)
class Writer:
    """One rule that wrote a field: by adding it, replacing it, or adding what contains it."""

    policy: str
    rule: str
    op: str
    via: Via | None = None

    @property
    def label(self) -> str:
        return f"{self.policy}/{self.rule}"

    def render(self) -> str:
        return self.label + (f" via {self.via.render()}" if self.via is not None else "")


@dataclass(slots=True)
class Node:
    """A field of the Job under replay: its value (for scalars) or children, and its writers."""

    writers: tuple[Writer, ...]
    value: JSON = None
    mapping: dict[str, Node] | None = None
    items: list[Node] | None = None

    def to_json(self) -> JSON:
        if self.mapping is not None:
            return {key: child.to_json() for key, child in self.mapping.items()}
        if self.items is not None:
            return [child.to_json() for child in self.items]
        return self.value


@dataclass(frozen=True, slots=True)
class Removed:
    """A field that a rule removed: where it was, who had written it and who removed it."""

    path: str
    writers: tuple[Writer, ...]
    removed_by: Writer


@dataclass(slots=True)
class Blame:
    """The replayed Job: ``root`` mirrors ``Decision.manifest`` node for node."""

    root: Node
    removed: list[Removed] = field(default_factory=list)

    def fields(self) -> Iterator[tuple[Path, Node]]:
        """Every node in document order, the root (path ``()``) first."""
        yield from _walk(self.root, ())

    def node_at(self, path: Path) -> Node | None:
        node: Node | None = self.root
        for step in path:
            if node is None:
                return None
            if isinstance(step, int):
                node = node.items[step] if node.items is not None and 0 <= step < len(node.items) else None
            else:
                node = node.mapping.get(step) if node.mapping is not None else None
        return node


def blame(decision: Decision) -> Blame:
    """Replay ``decision.trace`` and reconcile the result with ``decision.manifest``."""
    origins = _variable_origins(decision)
    state = Blame(Node(writers=(), mapping={}))
    for record in decision.trace:
        _apply(state, record, origins)
    _strip_internal(state.root)
    state.root = _merge(state.root, decision.manifest, Writer(UNRECORDED, UNRECORDED, "replace"), {})
    return state


def _walk(node: Node, path: Path) -> Iterator[tuple[Path, Node]]:
    yield path, node
    if node.mapping is not None:
        for key, child in node.mapping.items():
            yield from _walk(child, (*path, key))
    elif node.items is not None:
        for index, child in enumerate(node.items):
            yield from _walk(child, (*path, index))


def _variable_origins(decision: Decision) -> dict[int, Via]:
    """``id()`` of every list or map a variable held (itself and its items) → the first variable."""
    origins: dict[int, Via] = {}
    for variable in decision.variables:
        via = Via(variable.policy, variable.name)
        value = variable.value
        if isinstance(value, dict | list):
            origins.setdefault(id(value), via)
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict | list):
                    origins.setdefault(id(item), via)
    return origins


def _build(value: JSON, writer: Writer, origins: dict[int, Via]) -> Node:
    own = writer
    if isinstance(value, dict | list) and id(value) in origins:
        own = Writer(writer.policy, writer.rule, writer.op, origins[id(value)])
    if isinstance(value, dict):
        return Node(
            writers=(own,),
            mapping={str(k): _build(v, own, origins) for k, v in value.items() if k not in INTERNAL_KEYS},
        )
    if isinstance(value, list):
        return Node(writers=(own,), items=[_build(v, own, origins) for v in value])
    return Node(writers=(own,), value=value)


def _merge(old: Node, new: JSON, writer: Writer, origins: dict[int, Via]) -> Node:
    """``new`` written over ``old`` by ``writer``: unchanged parts keep their writers."""
    if _equal(old.to_json(), new):
        return old
    if isinstance(new, dict) and old.mapping is not None:
        mapping: dict[str, Node] = {}
        for key, value in new.items():
            if key in INTERNAL_KEYS:
                continue
            before = old.mapping.get(key)
            mapping[key] = (
                _build(value, writer, origins) if before is None else _merge(before, value, writer, origins)
            )
        changed_keys = set(mapping) != set(old.mapping)
        writers = (*old.writers, writer) if changed_keys else old.writers
        return Node(writers=writers, mapping=mapping)
    if isinstance(new, list) and old.items is not None:
        unused = list(range(len(old.items)))
        items: list[Node] = []
        for value in new:
            match = _matching_item(old.items, unused, value)
            if match is None:
                items.append(_build(value, writer, origins))
            else:
                unused.remove(match)
                items.append(_merge(old.items[match], value, writer, origins))
        return Node(writers=(*old.writers, writer), items=items)
    rebuilt = _build(new, writer, origins)
    rebuilt.writers = (*old.writers, *rebuilt.writers)
    return rebuilt


def _matching_item(old: list[Node], unused: list[int], value: JSON) -> int | None:
    for index in unused:
        if _equal(old[index].to_json(), value):
            return index
    if isinstance(value, dict):
        for key in _IDENTITY_KEYS:
            if key not in value:
                continue
            for index in unused:
                candidate = old[index]
                mapping = candidate.mapping
                if mapping is not None and key in mapping and _equal(mapping[key].to_json(), value[key]):
                    return index
            break
    return None


def _apply(state: Blame, record: TraceRecord, origins: dict[int, Via]) -> None:
    path = record.segments
    writer = Writer(record.policy, record.rule, record.op)
    if not path:
        if record.op == "remove":
            state.root = Node(writers=(writer,), mapping={})
        else:
            state.root = _merge(state.root, record.new, writer, origins)
        return
    parent = _parent(state.root, path, writer)
    if parent is None:
        return
    last = path[-1]
    if parent.items is not None and isinstance(last, int):
        _apply_to_list(state, parent.items, last, record, writer, path, origins)
    elif parent.mapping is not None and isinstance(last, str):
        if last in INTERNAL_KEYS:
            return
        current = parent.mapping.get(last)
        if record.op == "remove":
            if current is not None:
                del parent.mapping[last]
                state.removed.append(Removed(record.path, current.writers, writer))
        elif current is None:
            parent.mapping[last] = _build(record.new, writer, origins)
        else:
            parent.mapping[last] = _merge(current, record.new, writer, origins)


def _apply_to_list(
    state: Blame,
    items: list[Node],
    index: int,
    record: TraceRecord,
    writer: Writer,
    path: Path,
    origins: dict[int, Via],
) -> None:
    if record.op == "add":
        items.insert(min(max(index, 0), len(items)), _build(record.new, writer, origins))
    elif not 0 <= index < len(items):
        return
    elif record.op == "remove":
        removed = items.pop(index)
        state.removed.append(Removed(record.path, removed.writers, writer))
    else:
        items[index] = _merge(items[index], record.new, writer, origins)


def _parent(root: Node, path: Path, writer: Writer) -> Node | None:
    """The node holding ``path[-1]``, creating maps and lists no record created (an ``append`` to a
    list that did not exist records only its items)."""
    node = root
    for position, step in enumerate(path[:-1]):
        if isinstance(step, int):
            if node.items is None or not 0 <= step < len(node.items):
                return None
            node = node.items[step]
        else:
            if node.mapping is None:
                return None
            child = node.mapping.get(step)
            if child is None:
                below = path[position + 1]
                child = (
                    Node(writers=(writer,), items=[])
                    if isinstance(below, int)
                    else Node(writers=(writer,), mapping={})
                )
                node.mapping[step] = child
            node = child
    return node


def _strip_internal(node: Node) -> None:
    if node.mapping is not None:
        for key in INTERNAL_KEYS & node.mapping.keys():
            del node.mapping[key]
        for child in node.mapping.values():
            _strip_internal(child)
    elif node.items is not None:
        for child in node.items:
            _strip_internal(child)
