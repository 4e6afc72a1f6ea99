"""Kubernetes strategic merge patch (SMP), as ``k8s.io/apimachinery`` v1.20 applies it, with a change trace.

Policies patch Jobs the way admins already patch them with ``kubectl``, so the result must be what the
API server would compute: maps merge, ``null`` deletes, lists tagged in :mod:`engine.core.patch.schema`
merge element by element in apimachinery's order, every other list is replaced. Each call returns the
new document and the :class:`~engine.model.jsonvalue.Change` records the trace shows.

Documents are immutable: nothing here mutates its inputs; only the containers along changed paths are
rebuilt, and an operation that changes nothing returns the original object itself with no changes.

Upstream's element order is reproduced exactly, quirks included (see ``_ListMerge.order_by``). The
deliberate differences are all cases where upstream's output is an accident (something the API
server would reject, drop or misread) or would surprise a policy author:

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
    try:
        directives = [key for key in patch if key[:1] == "$"]
    except TypeError:
        odd = next(key for key in patch if not isinstance(key, str))
        raise _error(path, f"object keys must be strings, not {_kind(odd)}") from None
    if directives:
        return _MapDirectives(original, patch, schema, path, changes).run(directives)
    if original is None or changes is None:
        return _materialize_members(patch, schema, path)
    return _merge_members(original, patch, schema, path, changes)


def _merge_members(
    original: dict[str, JSON],
    patch: dict[str, JSON],
    schema: TypeSchema | None,
    path: Path,
    changes: list[Change],
) -> dict[str, JSON]:
    """Merge a directive-free patch map member by member; ``original`` itself if nothing changed."""
    fields = schema.fields if schema is not None else None
    work: dict[str, JSON] | None = None
    for key, value in patch.items():
        field = fields.get(key) if fields is not None else None
        key_path = (*path, key)
        if value is None:
            if key in original:
                changes.append(Change("remove", key_path, original[key], None))
                if work is None:
                    work = dict(original)
                del work[key]
            continue
        if key not in original:
            new = _new_value(value, field, key_path)
            if new is not _DELETED:
                changes.append(Change("add", key_path, None, new))
                if work is None:
                    work = dict(original)
                work[key] = new
            continue
        current = original[key]
        if isinstance(value, dict) and isinstance(current, dict):
            new = _merge_map(current, value, field.schema if field else None, key_path, changes)
        elif isinstance(value, list) and isinstance(current, list):
            new = _merge_list(current, value, field, key_path, changes)
        else:
            new = _new_value(value, field, key_path)
            if new is not _DELETED:
                if json_equal(new, current):
                    continue
                changes.append(Change("replace", key_path, current, new))
        if new is current:
            continue
        if work is None:
            work = dict(original)
        if new is _DELETED:
            changes.append(Change("remove", key_path, current, None))
            del work[key]
        else:
            work[key] = new
    return original if work is None else work


def _materialize_members(patch: dict[str, JSON], schema: TypeSchema | None, path: Path) -> dict[str, JSON]:
    """A directive-free patch map as a new value: ``null`` members dropped, values resolved."""
    fields = schema.fields if schema is not None else None
    work: dict[str, JSON] | None = None
    for key, value in patch.items():
        if value is None:
            new: JSON = _DELETED
        else:
            new = _new_value(value, fields.get(key) if fields is not None else None, (*path, key))
            if new is value:
                continue
        if work is None:
            work = dict(patch)
        if new is _DELETED:
            del work[key]
        else:
            work[key] = new
    return patch if work is None else work


class _MapDirectives:
    """A map whose patch carries directives (``$retainKeys``, ``$setElementOrder/...``, ...).

    The directives apply first, on a copy-on-write view of the document's map; the ordinary
    members then merge into the result as in any map. In materialize mode (no original) the
    directives are only checked and resolved.
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
        self.base: dict[str, JSON] = {} if original is None else original
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

    def run(self, directives: list[str]) -> dict[str, JSON]:
        """Apply the directives, then merge the ordinary members.

        Order: ``$retainKeys`` clears, ``$deleteFromPrimitiveList`` removes, ``$setElementOrder``
        merges and orders its list; the ordinary members merge afterwards.
        """
        for key in directives:
            if not (key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith((_SET_ORDER, _DELETE_FROM))):
                raise _error(self.path, f'unknown directive "{key}"')
        start = len(self.changes) if self.changes is not None else 0
        patch = self.patch
        if _RETAIN_KEYS in patch:
            self.retain_keys(patch[_RETAIN_KEYS])
        for key in directives:
            if key.startswith(_DELETE_FROM):
                self.delete_from_primitive_list(key, patch[key])
        ordered = {
            self.set_element_order(key, patch[key]) for key in directives if key.startswith(_SET_ORDER)
        }
        members = {key: value for key, value in patch.items() if key[:1] != "$" and key not in ordered}
        current = self.base if self.work is None else self.work
        if self.changes is None:
            resolved = {**_materialize_members(members, self.schema, self.path), **current}
            return {key: resolved[key] for key in patch if key in resolved}
        result = _merge_members(current, members, self.schema, self.path, self.changes)
        undoable = any(key.startswith(_DELETE_FROM) for key in directives)
        if undoable and result is not self.base and json_equal(result, self.base):
            del self.changes[start:]  # values deleted and then added back: no net change
            return self.base
        return result

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
            new = merge.result()
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
    if original is not None and changes is not None and field.merge_key is not None:
        merged = _merge_keyed_simply(original, patch, field.merge_key, field.schema, path, changes)
        if merged is not None:
            return merged
    merge = _ListMerge(original, patch, field, path)
    merge.order_by_patch()
    if changes is None:
        return merge.result()
    return merge.finish(changes)


def _merge_keyed_simply(
    original: list[JSON],
    patch: list[JSON],
    merge_key: str,
    schema: TypeSchema | None,
    path: Path,
    changes: list[Change],
) -> list[JSON] | None:
    """The common keyed merge, quickly: same result and records as :class:`_ListMerge`.

    Applies when the patch has no list directives, every element on both sides has a distinct
    string or integer key, and no key needs telling ``true`` from ``1``; returns ``None`` otherwise.
    Then apimachinery's order reduces to one pass: each patch element, in patch order, comes
    right after the document elements ranked before it (a new element comes right away).
    """
    try:
        index = {element[merge_key]: position for position, element in enumerate(original)}
    except (KeyError, TypeError, IndexError):
        return None
    if len(index) != len(original):
        return None
    keys: list[JSON] = []
    for element in patch:
        if type(element) is not dict or _DIRECTIVE in element:
            return None
        key = element.get(merge_key)
        if type(key) is not str and type(key) is not int:  # also a missing key, or a boolean
            return None
        keys.append(key)
    if len(keys) > 1 and len(set(keys)) != len(keys):
        return None
    targets = [index.get(key, -1) for key in keys]
    for key, target in zip(keys, targets, strict=True):
        if target >= 0 and type(key) is int and type(original[target][merge_key]) is not int:
            return None
    if max(targets, default=-1) < 0:  # only new elements: they all go first, in patch order
        added = [
            _merge_map(None, element, schema, (*path, index), None) for index, element in enumerate(patch)
        ]
        if not added:
            return original
        changes.extend(Change("add", (*path, index), None, value) for index, value in enumerate(added))
        return [*added, *original]

    merged: list[JSON] = []
    element_changes: list[Change] = []
    pending = set(targets)
    next_document = 0
    highest = -1  # the highest document index placed so far: placing a lower one breaks the order
    in_order = True
    depth = len(path)
    for patch_index, (element, target) in enumerate(zip(patch, targets, strict=True)):
        element_path = (*path, patch_index)
        if target < 0:
            value = _merge_map(None, element, schema, element_path, None)
            element_changes.append(Change("add", (*path, len(merged)), None, value))
            merged.append(value)
            continue
        while next_document < target:
            if next_document not in pending:
                merged.append(original[next_document])
            next_document += 1
        if next_document == target:
            next_document += 1
        if target < highest:
            in_order = False
        highest = max(highest, target)
        sink: list[Change] = []
        value = _merge_map(original[target], element, schema, element_path, sink)
        assert value is not _DELETED  # list elements carry no map-level $patch
        at = len(merged)
        for change in sink:
            element_changes.append(
                Change(change.op, (*path, at, *change.path[depth + 1 :]), change.old, change.new)
            )
        merged.append(value)
    merged.extend(original[next_document:])

    if not in_order:
        changes.append(Change("replace", path, original, merged))
        return merged
    if not element_changes:
        return original
    changes.extend(element_changes)
    return merged


class _ListMerge:
    """Merges a patch list into a keyed or set-like list and orders the result like apimachinery.

    Merging follows ``mergeSliceWithSpecialElements`` and ``mergeSliceWithoutSpecialElements``;
    ordering follows ``normalizeElementOrder``: elements the patch names come in patch order, the
    document's other elements keep their order, and the two sequences are interleaved by the
    document's order where both are known, a new element going first where it is not.

    Elements live in parallel arrays ("slots"): the document's surviving elements first, in their
    order, then the elements the patch adds; ``order`` lists slot numbers in result order.
    """

    __slots__ = (
        "appended",
        "changes_at",
        "duplicates",
        "field",
        "keys",
        "order",
        "original",
        "origins",
        "patch_keys",
        "path",
        "position",
        "remerged",
        "removed",
        "replaced",
        "survivors",
        "values",
    )

    def __init__(
        self, original: list[JSON] | None, patch: list[JSON] | None, field: FieldSchema, path: Path
    ) -> None:
        """Merge ``patch`` into ``original``; ``patch=None`` (a bare ``$setElementOrder``) merges nothing."""
        self.original = original
        self.path = path
        self.field = field
        self.replaced = False
        self.duplicates = False
        self.removed: list[int] = []
        self.patch_keys: list[Hashable] = []
        self.appended: list[Hashable] = []
        """Keys of the elements the patch adds, in the order upstream appends them."""
        self.values: list[JSON] = []
        self.keys: list[Hashable] = []
        self.origins: list[int] = []
        """Index of each slot in the document's list; ``-1`` for an element the patch adds."""
        self.changes_at: dict[int, list[Change]] = {}
        """Changes inside a slot's element, with the patch index at the element's place in the path."""
        self.position: dict[Hashable, int] = {}
        """The first slot holding each key."""
        self.remerged: set[int] = set()
        """Slots several patch elements merged into (their changes may cancel out)."""
        if field.merge_key is None:
            self._merge_primitives(original or [], patch)
        else:
            self._merge_objects(original or [], patch or [], field.merge_key, field.schema)
        self.order: list[int] = list(range(len(self.values)))

    def _add_slot(self, value: JSON, key: Hashable, origin: int) -> None:
        if key in self.position:
            self.duplicates = True
        else:
            self.position[key] = len(self.values)
        self.values.append(value)
        self.keys.append(key)
        self.origins.append(origin)

    def _merge_primitives(self, original: list[JSON], patch: list[JSON] | None) -> None:
        """Union of the two lists; upstream deduplicates only when there is a patch list."""
        for index, value in enumerate(original):
            key = _primitive_key(value, (*self.path, index))
            if key in self.position and patch is not None:
                self.removed.append(index)
            else:
                self._add_slot(value, key, index)
        self.survivors = len(self.values)
        for index, value in enumerate(patch or ()):
            key = _primitive_key(value, (*self.path, index))
            self.patch_keys.append(key)
            if key not in self.position:
                self.appended.append(key)
                self._add_slot(value, key, -1)

    def _merge_objects(
        self, original: list[JSON], patch: list[JSON], merge_key: str, schema: TypeSchema | None
    ) -> None:
        plain, doomed = self._split_directives(patch, merge_key)
        if not self.replaced:
            for index, element in enumerate(original):
                key = self._document_key(element, index)
                if key in doomed:
                    self.removed.append(index)
                else:
                    self._add_slot(element, key, index)
        self.survivors = len(self.values)
        position = self.position
        for index, element in plain:
            element_path = (*self.path, index)
            if merge_key not in element:
                raise _error(element_path, f'element needs the merge key "{merge_key}"')
            identity = element[merge_key]
            key = identity if type(identity) is str else _scalar_key(identity, (*element_path, merge_key))
            self.patch_keys.append(key)
            found = position.get(key)
            if found is None:
                self.appended.append(key)
                self._add_slot(_merge_map(None, element, schema, element_path, None), key, -1)
                continue
            if found in self.changes_at:
                self.remerged.add(found)
            sink = self.changes_at.setdefault(found, []) if self.origins[found] >= 0 else []
            merged = _merge_map(self.values[found], element, schema, element_path, sink)
            assert merged is not _DELETED  # list elements carry no map-level $patch
            self.values[found] = merged

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
            if not isinstance(element, dict):
                raise _error(
                    (*self.path, index), f'elements of a list merged by "{merge_key}" must be objects'
                )
            if _DIRECTIVE not in element:
                plain.append((index, element))
                continue
            element_path = (*self.path, index)
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

    def _document_key(self, element: JSON, index: int) -> Hashable:
        """The identity of a document element; one without a usable merge key matches nothing."""
        merge_key = self.field.merge_key
        if merge_key is None:
            return _primitive_key(element, (*self.path, index))
        if not isinstance(element, dict):
            raise _error((*self.path, index), f'elements of a list merged by "{merge_key}" must be objects')
        identity = element.get(merge_key)
        if type(identity) is str:
            return identity
        return _NO_KEY if identity is None else _scalar_key(identity, (*self.path, index, merge_key))

    def order_by_patch(self) -> None:
        """``mergeSlice``'s ordering: patch elements by patch order, interleaved with the rest.

        The document order used to interleave is the document's list after ``$patch: delete``,
        i.e. the surviving slots, whose rank is the first slot holding their key.
        """
        self._order(self.patch_keys, self.position, self.survivors, sort_others=self.duplicates)

    def order_by(self, order_keys: list[Hashable]) -> None:
        """``$setElementOrder``'s ordering: the given keys by rank, interleaved with the rest.

        Upstream interleaves using the document's list *as its slice sees it after merging*: the
        merge deleted elements in place and appended new ones into the same backing array, so the
        slice (of the original length) holds the survivors followed by the first new elements.
        This quirk decides, for example, that a new element goes after a surviving one.
        """
        original = self.original or []
        if self.replaced:
            document = [self._document_key(value, index) for index, value in enumerate(original)]
        else:
            document = self.keys[: self.survivors]
            if self.field.merge_key is not None and self.removed:
                document = (document + self.appended)[: len(original)]
        rank: dict[Hashable, int] = {}
        for key in document:
            rank.setdefault(key, len(rank))
        self._order(order_keys, rank, len(rank), sort_others=True)

    def _order(
        self, wanted: list[Hashable], server_rank: dict[Hashable, int], known: int, *, sort_others: bool
    ) -> None:
        """``normalizeElementOrder`` + ``mergeSortedSlice``; a server rank below ``known`` is known."""
        keys = self.keys
        rank: dict[Hashable, int] = {}
        for key in wanted:
            rank.setdefault(key, len(rank))
        named = [slot for slot in self.order if keys[slot] in rank]
        if not named:
            return
        named.sort(key=lambda slot: rank[keys[slot]])
        others = [slot for slot in self.order if keys[slot] not in rank]
        if sort_others:
            others.sort(key=lambda slot: server_rank.get(keys[slot], known))
        ordered: list[int] = []
        i = j = 0
        while i < len(others) and j < len(named):
            right = server_rank.get(keys[named[j]], known)
            if right < known and server_rank.get(keys[others[i]], known) < right:
                ordered.append(others[i])
                i += 1
            else:
                ordered.append(named[j])
                j += 1
        ordered.extend(others[i:])
        ordered.extend(named[j:])
        self.order = ordered

    def result(self) -> list[JSON]:
        values = self.values
        return [values[slot] for slot in self.order]

    def finish(self, changes: list[Change]) -> list[JSON]:
        """The merged list, recording its changes; the original list itself when nothing changed."""
        original = self.original
        if original is None:
            raise AssertionError("finish() records changes against a document list")
        if self.replaced:
            new = self.result()
            if json_equal(new, original):
                return original
            changes.append(Change("replace", self.path, original, new))
            return new
        origins = self.origins
        changes_at = self.changes_at
        for slot in self.remerged:
            if origins[slot] >= 0 and json_equal(self.values[slot], original[origins[slot]]):
                self.values[slot] = original[origins[slot]]  # the patch elements cancelled out
                del changes_at[slot]
        last = -1
        in_order = True
        touched = bool(self.removed)
        for slot in self.order:
            origin = origins[slot]
            if origin < 0 or changes_at.get(slot):
                touched = True
            if origin >= 0:
                if origin < last:
                    in_order = False
                last = origin
        if in_order and not touched:
            return original
        new = self.result()
        if (self.removed or not in_order) and json_equal(new, original):
            return original  # say, an element deleted and added back as it was
        if not in_order:
            changes.append(Change("replace", self.path, original, new))
            return new
        for index in sorted(self.removed, reverse=True):
            changes.append(Change("remove", (*self.path, index), original[index], None))
        depth = len(self.path)
        for index, slot in enumerate(self.order):
            if origins[slot] < 0:
                changes.append(Change("add", (*self.path, index), None, self.values[slot]))
            else:
                for change in changes_at.get(slot, ()):
                    at = (*change.path[:depth], index, *change.path[depth + 1 :])
                    changes.append(Change(change.op, at, change.old, change.new))
        return new


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
