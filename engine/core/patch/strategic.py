"""Kubernetes strategic merge patch (SMP), as ``k8s.io/apimachinery`` v1.20 applies it, with a change trace.

Policies patch Jobs the way admins already patch them with ``kubectl``, so the result must be what the
API server would compute: maps merge, ``null`` deletes, lists tagged in :mod:`engine.core.patch.schema`
merge element by element in apimachinery's order, every other list is replaced. Each call returns the
new document and the :class:`~engine.model.jsonvalue.Change` records the trace shows.

Documents are immutable: nothing here mutates its inputs; only the containers along changed paths are
rebuilt, and an operation that changes nothing returns the original object itself with no changes.

Deliberate differences from apimachinery (each one where upstream produces something the API server
would reject, drop or misread):

* ``{"$patch": "delete"}`` on a map removes the key (upstream leaves ``{}``).
* ``$patch: merge`` is accepted as "merge as usual" (upstream rejects it as not implemented).
* Directives inside values new to the document are honoured too (upstream copies them verbatim), so
  directive keys and ``null`` members never reach the output.
* ``$deleteFromPrimitiveList/<f>`` with no ``<f>`` in the document deletes nothing (upstream sets
  ``<f>`` to the list of values to delete); it is applied before ``<f>`` itself merges (upstream: map
  order, i.e. random).
* Unknown fields merge as plain maps / replaced lists (upstream fails on nested unknown fields), and
  unknown ``$``-directives are errors rather than ordinary keys.

Change records: paths are relative to the patched document; list indices are those of the result,
except that a removed list element is named by its index in the list before the patch. Records come in
an order in which they could be replayed (removals from the back first, then additions front to back).
A list whose surviving elements change relative order is recorded as one ``replace`` of the list.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum

from engine.core.patch.schema import FieldSchema, TypeSchema
from engine.model.jsonvalue import JSON, Change, Path, render_path

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """A strategic merge patch that cannot be applied; the message starts with the patch path."""


class _Marker(Enum):
    DELETED = "deleted"
    """A map carried ``$patch: delete``: its key is removed."""


_DELETED = _Marker.DELETED


def strategic_merge(original: JSON, patch: JSON, schema: TypeSchema) -> tuple[JSON, list[Change]]:
    """Apply ``patch`` to ``original`` as a strategic merge patch for the type ``schema`` describes."""
    if not isinstance(original, dict):
        raise PatchError(f"(document): a strategic merge patch applies to an object, not {_kind(original)}")
    if not isinstance(patch, dict):
        raise PatchError(f"(patch): a strategic merge patch must be an object, not {_kind(patch)}")
    changes: list[Change] = []
    merged = _merge_map(original, patch, schema, (), changes)
    if merged is _DELETED:
        return ({}, [Change("replace", (), original, {})]) if original else (original, [])
    return merged, changes


def json_equal(left: JSON, right: JSON) -> bool:
    """Whether two JSON values are equal as JSON: ``true`` is not ``1``, while ``1`` equals ``1.0``."""
    if left is right:
        return True
    if isinstance(left, dict):
        if not isinstance(right, dict) or len(left) != len(right):
            return False
        return all(key in right and json_equal(value, right[key]) for key, value in left.items())
    if isinstance(left, list):
        if not isinstance(right, list) or len(left) != len(right):
            return False
        return all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(right, dict | list):
        return False
    return bool(left == right)


# --- maps -------------------------------------------------------------------------------------------


def _merge_map(
    original: dict[str, JSON] | None,
    patch: dict[str, JSON],
    schema: TypeSchema | None,
    path: Path,
    changes: list[Change] | None,
) -> dict[str, JSON] | _Marker:
    """Merge ``patch`` into ``original``; with ``original=None`` turn ``patch`` into a new value.

    The second mode ("materialize") resolves the patch's directives and drops its ``null`` members
    as if it were merged into nothing; it records no changes (the caller records one ``add``) and
    returns ``patch`` itself when there was nothing to resolve.
    """
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        body = {key: value for key, value in patch.items() if key != _DIRECTIVE}
        if directive == "delete":
            return _DELETED
        if directive == "replace":
            replacement = _merge_map(None, body, schema, path, None)
            assert replacement is not _DELETED  # body holds no $patch any more
            if original is None or changes is None or json_equal(original, replacement):
                return original if original is not None else replacement
            changes.append(Change("replace", path, original, replacement))
            return replacement
        if directive != "merge":
            raise _error(
                path, f'unknown "$patch" value {directive!r} (expected "replace", "delete" or "merge")'
            )
        patch = body
    return _MapMerge(original, patch, schema, path, changes).run()


class _MapMerge:
    """One map being merged: copy-on-write output, so an unchanged map is returned as itself.

    In materialize mode (no original, ``changes`` is ``None``) the output starts as the patch and
    only directive keys, ``null`` members and values that resolve differently are rewritten.
    """

    __slots__ = ("base", "changes", "patch", "path", "schema", "work")

    def __init__(
        self,
        original: dict[str, JSON] | None,
        patch: dict[str, JSON],
        schema: TypeSchema | None,
        path: Path,
        changes: list[Change] | None,
    ) -> None:
        self.base = patch if original is None else original
        self.work: dict[str, JSON] | None = None
        self.patch = patch
        self.schema = schema
        self.path = path
        self.changes = changes

    # copy-on-write access to the map being built

    def has(self, key: str) -> bool:
        return key in (self.base if self.work is None else self.work)

    def get(self, key: str) -> JSON:
        return (self.base if self.work is None else self.work)[key]

    def assign(self, key: str, value: JSON) -> None:
        if self.work is None:
            self.work = dict(self.base)
        self.work[key] = value

    def drop(self, key: str) -> None:
        if self.work is None:
            self.work = dict(self.base)
        del self.work[key]

    def record(self, change: Change) -> None:
        if self.changes is not None:
            self.changes.append(change)

    def run(self) -> dict[str, JSON]:
        start = len(self.changes) if self.changes is not None else 0
        result = self.merge()
        if self.changes is not None and result is not self.base and json_equal(result, self.base):
            # Net no-op (say, an element deleted and added back as it was): no changes to report.
            del self.changes[start:]
            return self.base
        return result

    def merge(self) -> dict[str, JSON]:
        patch = self.patch
        directives: list[str] = []
        for key in patch:
            if type(key) is not str:
                raise _error(self.path, f"object keys must be strings, not {_kind(key)}")
            if key[:1] == "$":
                directives.append(key)
        ordered: set[str] = set()
        if directives:
            ordered = self.directives(directives)
        materialize = self.changes is None
        fields = self.schema.fields if self.schema is not None else None
        for key, value in patch.items():
            if key[:1] == "$" or key in ordered:
                continue
            field = fields.get(key) if fields is not None else None
            if materialize:
                if value is None:
                    self.drop(key)
                else:
                    new = _new_value(value, field, (*self.path, key))
                    if new is _DELETED:
                        self.drop(key)
                    elif new is not value:
                        self.assign(key, new)
            else:
                self.member(key, value, field)
        return self.base if self.work is None else self.work

    def member(self, key: str, value: JSON, field: FieldSchema | None) -> None:
        """Merge one patch member into the map, recording what changed."""
        path = (*self.path, key)
        if value is None:
            if self.has(key):
                self.record(Change("remove", path, self.get(key), None))
                self.drop(key)
            return
        if not self.has(key):
            new = _new_value(value, field, path)
            if new is not _DELETED:
                self.record(Change("add", path, None, new))
                self.assign(key, new)
            return
        current = self.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged = _merge_map(current, value, field.schema if field else None, path, self.changes)
            if merged is _DELETED:
                self.record(Change("remove", path, current, None))
                self.drop(key)
            elif merged is not current:
                self.assign(key, merged)
            return
        if isinstance(value, list) and isinstance(current, list):
            merged_list = _merge_list(current, value, field, path, self.changes)
            if merged_list is not current:
                self.assign(key, merged_list)
            return
        new = _new_value(value, field, path)
        if new is _DELETED:
            self.record(Change("remove", path, current, None))
            self.drop(key)
        elif not json_equal(new, current):
            self.record(Change("replace", path, current, new))
            self.assign(key, new)

    def directives(self, directives: list[str]) -> set[str]:
        """Apply the map's directives; returns the lists ``$setElementOrder`` already merged.

        Order: ``$retainKeys`` clears, ``$deleteFromPrimitiveList`` removes, ``$setElementOrder``
        merges and orders its list; the ordinary members merge afterwards.
        """
        for key in directives:
            if not (key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith((_SET_ORDER, _DELETE_FROM))):
                raise _error(self.path, f'unknown directive "{key}"')
            if self.changes is None:
                self.drop(key)
        if _RETAIN_KEYS in self.patch:
            self.retain_keys(self.patch[_RETAIN_KEYS])
        for key in directives:
            if key.startswith(_DELETE_FROM):
                self.delete_from_primitive_list(key, self.patch[key])
        return {
            self.set_element_order(key, self.patch[key]) for key in directives if key.startswith(_SET_ORDER)
        }

    def retain_keys(self, retain: JSON) -> None:
        """``$retainKeys``: keep only the listed keys of the original; the patch may set only those."""
        if not isinstance(retain, list):
            raise _error(self.path, f'"$retainKeys" must be a list of keys, not {_kind(retain)}')
        kept = {key for key in retain if isinstance(key, str)}
        for key, value in self.patch.items():
            if value is None or key[:1] == "$":
                continue
            if key not in kept:
                raise _error(
                    self.path, f'"$retainKeys" must list every key the patch sets; "{key}" is missing'
                )
        if self.changes is None:
            return
        for key, value in list(self.base.items()):
            if key not in kept:
                self.record(Change("remove", (*self.path, key), value, None))
                self.drop(key)

    def list_field(self, name: str, directive: str) -> FieldSchema:
        field = self.schema.fields.get(name) if self.schema is not None else None
        if field is None or not field.merge_list:
            raise _error(
                self.path, f'"{directive}" needs a list Kubernetes merges, and "{name}" is replaced whole'
            )
        return field

    def delete_from_primitive_list(self, directive: str, values: JSON) -> None:
        """``$deleteFromPrimitiveList/<f>``: remove these values from the merged primitive list ``<f>``."""
        name = directive[len(_DELETE_FROM) :]
        field = self.list_field(name, directive)
        if field.merge_key is not None:
            raise _error(self.path, f'"{directive}" needs a list of primitives, and "{name}" holds objects')
        if not isinstance(values, list):
            raise _error(self.path, f'"{directive}" must be a list, not {_kind(values)}')
        doomed = {_primitive_key(value, (*self.path, directive)) for value in values}
        if self.changes is None or not self.has(name):
            return
        current = self.get(name)
        if not isinstance(current, list):
            return
        list_path = (*self.path, name)
        kept = [value for value in current if _primitive_key(value, list_path) not in doomed]
        if len(kept) == len(current):
            return
        for index in range(len(current) - 1, -1, -1):
            if _primitive_key(current[index], list_path) in doomed:
                self.record(Change("remove", (*list_path, index), current[index], None))
        self.assign(name, kept)

    def set_element_order(self, directive: str, order: JSON) -> str:
        """``$setElementOrder/<f>``: merge ``<f>`` and put its elements in the given order.

        Elements named in the order list come in that order; the document's other elements keep
        their relative order and are interleaved as apimachinery does. Returns ``<f>``.
        """
        name = directive[len(_SET_ORDER) :]
        field = self.list_field(name, directive)
        list_path = (*self.path, name)
        if not isinstance(order, list):
            raise _error(self.path, f'"{directive}" must be a list, not {_kind(order)}')
        order_path = (*self.path, directive)
        order_keys = [
            _element_key(element, field, (*order_path, index)) for index, element in enumerate(order)
        ]
        patch_list = self.patch.get(name)
        if name in self.patch and not isinstance(patch_list, list):
            raise _error(list_path, f'must be a list when "{directive}" is given, not {_kind(patch_list)}')
        materialize = self.changes is None
        current = self.get(name) if not materialize and self.has(name) else None
        if current is not None and not isinstance(current, list):
            raise _error(list_path, f"cannot order {_kind(current)}")
        if patch_list is None and current is None:
            return name
        if patch_list is not None:
            _check_patch_follows_order(patch_list, order_keys, field, list_path, directive)
        merge = _ListMerge(current, patch_list, field, list_path)
        merge.order_by(order_keys)
        if current is None:
            new = merge.values()
            self.record(Change("add", list_path, None, new))
            self.assign(name, new)
            return name
        assert self.changes is not None  # a document list exists only when merging
        result = merge.finish(self.changes)
        if result is not current:
            self.assign(name, result)
        return name


def _new_value(value: JSON, field: FieldSchema | None, path: Path) -> JSON:
    """A patch value placed where the document has nothing to merge it with, directives resolved."""
    if isinstance(value, dict):
        return _merge_map(None, value, field.schema if field else None, path, None)
    if isinstance(value, list):
        if field is not None and field.merge_list:
            return _merge_list(None, value, field, path, None)
        return _atomic_list(value, path)
    return value


def _atomic_list(values: list[JSON], path: Path) -> list[JSON]:
    """A list that replaces whatever was there; objects inside are resolved like any new value."""
    out: list[JSON] | None = None
    for index, element in enumerate(values):
        new = element
        if isinstance(element, dict):
            if _DIRECTIVE in element:
                if element[_DIRECTIVE] != "replace" or len(element) != 1:
                    directive = element[_DIRECTIVE]
                    raise _error(
                        (*path, index),
                        f'"$patch: {directive}" needs a list merged by key, not a replaced one',
                    )
                new = _DELETED
            else:
                new = _merge_map(None, element, None, (*path, index), None)
        elif isinstance(element, list):
            new = _atomic_list(element, (*path, index))
        if new is not element and out is None:
            out = list(values[:index])
        if out is not None and new is not _DELETED:
            out.append(new)
    return values if out is None else out


def _check_patch_follows_order(
    patch_list: list[JSON], order_keys: list[Hashable], field: FieldSchema, path: Path, directive: str
) -> None:
    """Upstream rule: the patch list's own elements must appear in the order list, in that order."""
    position = 0
    for index, element in enumerate(patch_list):
        candidate = element
        if isinstance(element, dict) and _DIRECTIVE in element:
            if element[_DIRECTIVE] in ("delete", "replace"):
                continue
            candidate = {key: value for key, value in element.items() if key != _DIRECTIVE}
            if not candidate:
                continue
        key = _element_key(candidate, field, (*path, index))
        while position < len(order_keys) and order_keys[position] != key:
            position += 1
        if position == len(order_keys):
            raise _error((*path, index), f'the patch list is not in the order "{directive}" gives')
        position += 1


# --- lists --------------------------------------------------------------------------------------------


def _merge_list(
    original: list[JSON] | None,
    patch: list[JSON],
    field: FieldSchema | None,
    path: Path,
    changes: list[Change] | None,
) -> list[JSON]:
    """Merge a patch list into a document list (``original=None``: build a new list)."""
    if field is None or not field.merge_list:
        new = _atomic_list(patch, path)
        if original is None or changes is None or json_equal(new, original):
            return original if original is not None else new
        changes.append(Change("replace", path, original, new))
        return new
    merge = _ListMerge(original, patch, field, path)
    merge.order_by_patch()
    if changes is None:
        return merge.values()
    return merge.finish(changes)


@dataclass(slots=True)
class _Slot:
    """One element of a list being merged: where it came from and what happened to it."""

    value: JSON
    key: Hashable
    origin: int | None
    """Index in the document's list, or ``None`` for an element the patch adds."""
    changes: list[Change] | None = None
    """Changes inside the element, with the patch index at the element's position in the path."""


class _ListMerge:
    """Merges a patch list into a keyed or set-like list and orders the result like apimachinery.

    Merging follows ``mergeSliceWithSpecialElements`` and ``mergeSliceWithoutSpecialElements``;
    ordering follows ``normalizeElementOrder``: elements the patch names come in patch order, the
    document's other elements keep their order, and the two sequences are interleaved by the
    document's order where both are known, a new element going first where it is not.
    """

    def __init__(
        self, original: list[JSON] | None, patch: list[JSON] | None, field: FieldSchema, path: Path
    ) -> None:
        """Merge ``patch`` into ``original``; ``patch=None`` (a bare ``$setElementOrder``) merges nothing."""
        self.original = original
        self.path = path
        self.field = field
        self.replaced = False
        self.removed: list[int] = []
        self.patch_keys: list[Hashable] = []
        self.appended: list[Hashable] = []
        """Keys of the elements the patch adds, in the order upstream appends them."""
        if field.merge_key is None:
            self.slots = self._merge_primitives(original or [], patch)
        else:
            self.slots = self._merge_objects(original or [], patch or [], field.merge_key, field.schema)

    def _merge_primitives(self, original: list[JSON], patch: list[JSON] | None) -> list[_Slot]:
        """Union of the two lists; upstream deduplicates only when there is a patch list."""
        slots: list[_Slot] = []
        seen: set[Hashable] = set()
        for index, value in enumerate(original):
            key = _primitive_key(value, (*self.path, index))
            if key in seen and patch is not None:
                self.removed.append(index)
            else:
                seen.add(key)
                slots.append(_Slot(value, key, index))
        for index, value in enumerate(patch or ()):
            key = _primitive_key(value, (*self.path, index))
            self.patch_keys.append(key)
            if key not in seen:
                seen.add(key)
                self.appended.append(key)
                slots.append(_Slot(value, key, None))
        return slots

    def _merge_objects(
        self, original: list[JSON], patch: list[JSON], merge_key: str, schema: TypeSchema | None
    ) -> list[_Slot]:
        plain, doomed = self._split_directives(patch, merge_key)
        slots: list[_Slot] = [] if self.replaced else self._document_slots(original, merge_key, doomed)
        position: dict[Hashable, int] = {}
        for slot_index, slot in enumerate(slots):
            position.setdefault(slot.key, slot_index)
        for index, element in plain:
            element_path = (*self.path, index)
            if merge_key not in element:
                raise _error(element_path, f'element needs the merge key "{merge_key}"')
            key = _scalar_key(element[merge_key], (*element_path, merge_key))
            self.patch_keys.append(key)
            found = position.get(key)
            if found is None:
                new = _merge_map(None, element, schema, element_path, None)
                position[key] = len(slots)
                self.appended.append(key)
                slots.append(_Slot(new, key, None))
                continue
            slot = slots[found]
            if slot.origin is None:
                merged = _merge_map(slot.value, element, schema, element_path, [])
            else:
                if slot.changes is None:
                    slot.changes = []
                merged = _merge_map(slot.value, element, schema, element_path, slot.changes)
            assert merged is not _DELETED  # list elements carry no map-level $patch
            slot.value = merged
        return slots

    def _split_directives(
        self, patch: list[JSON], merge_key: str
    ) -> tuple[list[tuple[int, dict[str, JSON]]], set[Hashable]]:
        """Separate the patch's list directives from its elements (``mergeSliceWithSpecialElements``).

        Returns the elements to merge with their patch index, and the merge keys to delete; a
        ``$patch: replace`` element sets ``self.replaced``.
        """
        plain: list[tuple[int, dict[str, JSON]]] = []
        doomed: set[Hashable] = set()
        for index, element in enumerate(patch):
            element_path = (*self.path, index)
            if not isinstance(element, dict):
                raise _error(element_path, f'elements of a list merged by "{merge_key}" must be objects')
            if _DIRECTIVE not in element:
                plain.append((index, element))
                continue
            directive = element[_DIRECTIVE]
            if directive == "delete":
                if merge_key not in element:
                    raise _error(element_path, f'"$patch: delete" element needs the merge key "{merge_key}"')
                doomed.add(_scalar_key(element[merge_key], (*element_path, merge_key)))
            elif directive == "replace":
                self.replaced = True
            elif directive == "merge":
                rest = {key: value for key, value in element.items() if key != _DIRECTIVE}
                if rest:
                    plain.append((index, rest))
            else:
                raise _error(
                    element_path,
                    f'unknown "$patch" value {directive!r} (expected "replace", "delete" or "merge")',
                )
        return plain, doomed

    def _document_slots(self, original: list[JSON], merge_key: str, doomed: set[Hashable]) -> list[_Slot]:
        """The document's elements that survive ``$patch: delete``; the others go to ``removed``."""
        slots: list[_Slot] = []
        for index, element in enumerate(original):
            if not isinstance(element, dict):
                raise _error(
                    (*self.path, index), f'elements of a list merged by "{merge_key}" must be objects'
                )
            key = self._document_key(element)
            if key in doomed:
                self.removed.append(index)
            else:
                slots.append(_Slot(element, key, index))
        return slots

    def order_by_patch(self) -> None:
        """``mergeSlice``'s ordering: patch elements by patch order, interleaved with the rest.

        The document order used to interleave is the document's list after ``$patch: delete``.
        """
        survivors = [slot.key for slot in sorted(self.slots, key=_origin) if slot.origin is not None]
        self._order(self.patch_keys, survivors)

    def order_by(self, order_keys: list[Hashable]) -> None:
        """``$setElementOrder``'s ordering: the given keys by rank, interleaved with the rest.

        Upstream interleaves using the document's list *as its slice sees it after merging*: the
        merge deleted elements in place and appended new ones into the same backing array, so the
        slice (of the original length) holds the survivors followed by the first new elements.
        This quirk decides, for example, that a new element goes after a surviving one.
        """
        original_length = len(self.original or ())
        if self.replaced:
            document = [self._document_key(value) for value in self.original or ()]
        else:
            survivors = [slot.key for slot in sorted(self.slots, key=_origin) if slot.origin is not None]
            document = survivors
            if self.field.merge_key is not None and self.removed:
                document = (survivors + self.appended)[:original_length]
        self._order(order_keys, document)

    def _document_key(self, element: JSON) -> Hashable:
        """The identity of a document element; one without a usable merge key matches nothing."""
        merge_key = self.field.merge_key
        if merge_key is None:
            return _primitive_key(element, self.path)
        identity = element.get(merge_key) if isinstance(element, dict) else None
        return _NO_KEY if identity is None else _scalar_key(identity, self.path)

    def _order(self, wanted: list[Hashable], document: list[Hashable]) -> None:
        """``normalizeElementOrder`` + ``mergeSortedSlice``."""
        rank: dict[Hashable, int] = {}
        for key in wanted:
            rank.setdefault(key, len(rank))
        server_rank: dict[Hashable, int] = {}
        for key in document:
            server_rank.setdefault(key, len(server_rank))
        unranked = len(server_rank)
        named = sorted((slot for slot in self.slots if slot.key in rank), key=lambda slot: rank[slot.key])
        others = sorted(
            (slot for slot in self.slots if slot.key not in rank),
            key=lambda slot: server_rank.get(slot.key, unranked),
        )
        ordered: list[_Slot] = []
        i = j = 0
        while i < len(others) and j < len(named):
            right = server_rank.get(named[j].key)
            if right is not None and server_rank.get(others[i].key, unranked) < right:
                ordered.append(others[i])
                i += 1
            else:
                ordered.append(named[j])
                j += 1
        ordered.extend(others[i:])
        ordered.extend(named[j:])
        self.slots = ordered

    def values(self) -> list[JSON]:
        return [slot.value for slot in self.slots]

    def finish(self, changes: list[Change]) -> list[JSON]:
        """The merged list, recording its changes; the original list itself when nothing changed."""
        original = self.original
        if original is None:
            raise AssertionError("finish() records changes against a document list")
        slots = self.slots
        if self.replaced:
            new = self.values()
            if json_equal(new, original):
                return original
            changes.append(Change("replace", self.path, original, new))
            return new
        last = -1
        in_order = True
        touched = bool(self.removed)
        for slot in slots:
            if slot.origin is None:
                touched = True
                continue
            if slot.origin < last:
                in_order = False
            last = slot.origin
            if slot.changes:
                touched = True
        if in_order and not touched:
            return original
        new = self.values()
        if json_equal(new, original):
            return original
        if not in_order:
            changes.append(Change("replace", self.path, original, new))
            return new
        for index in sorted(self.removed, reverse=True):
            changes.append(Change("remove", (*self.path, index), original[index], None))
        depth = len(self.path)
        for index, slot in enumerate(slots):
            if slot.origin is None:
                changes.append(Change("add", (*self.path, index), None, slot.value))
            elif slot.changes:
                for change in slot.changes:
                    at = (*change.path[:depth], index, *change.path[depth + 1 :])
                    changes.append(Change(change.op, at, change.old, change.new))
        return new


def _origin(slot: _Slot) -> int:
    return -1 if slot.origin is None else slot.origin


class _NoKey(Enum):
    NO_KEY = "no merge key"
    """The key of document elements that lack the merge key: they match no patch element."""


_NO_KEY = _NoKey.NO_KEY


def _element_key(element: JSON, field: FieldSchema, path: Path) -> Hashable:
    if field.merge_key is None:
        return _primitive_key(element, path)
    if not isinstance(element, dict) or field.merge_key not in element:
        raise _error(path, f'element needs the merge key "{field.merge_key}"')
    return _scalar_key(element[field.merge_key], (*path, field.merge_key))


def _primitive_key(value: JSON, path: Path) -> Hashable:
    if isinstance(value, dict | list):
        raise _error(path, f"elements of a merged list of primitives must be primitives, not {_kind(value)}")
    return _scalar_key(value, path)


def _scalar_key(value: JSON, path: Path) -> Hashable:
    """A hashable identity for a merge key value that keeps ``true`` apart from ``1``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, int | float):
        return value
    if value is None:
        raise _error(path, "a merge key value must not be null")
    raise _error(path, f"a merge key value must be a string, number or boolean, not {_kind(value)}")


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _error(path: Path, message: str) -> PatchError:
    return PatchError(f"{render_path(path) or '(patch)'}: {message}")
