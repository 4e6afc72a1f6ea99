"""Vectors from apimachinery's own strategic merge tests (v1.20 ``strategicpatch/patch_test.go``).

Upstream tests its merge against a test type, ``MergeItem``, whose fields carry each patch strategy;
the schema below mirrors its struct tags. Each vector is (document, patch, expected result), taken
from upstream's "current / three-way patch / result" and "original / two-way patch / modified"
columns, whose results are compared there without sorting, so the order is part of the fact.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
import yaml

from engine.core.patch import PatchError, strategic_merge
from engine.core.patch.schema import FieldSchema, TypeSchema
from engine.model.jsonvalue import JSON


def _item_type(merging_list_elements: TypeSchema | None) -> TypeSchema:
    retain_keys_item = TypeSchema(
        "RetainKeysMergeItem",
        MappingProxyType(
            {
                "mergingIntList": FieldSchema(merge_list=True),
                "mergingList": FieldSchema(merge_list=True, merge_key="name"),
                "nonMergingList": FieldSchema(),
            }
        ),
    )
    return TypeSchema(
        "MergeItem",
        MappingProxyType(
            {
                "mergingList": FieldSchema(merge_list=True, merge_key="name", schema=merging_list_elements),
                "nonMergingList": FieldSchema(),
                "mergingIntList": FieldSchema(merge_list=True),
                "nonMergingIntList": FieldSchema(),
                "mergeItemPtr": FieldSchema(merge_list=True, merge_key="name"),
                "retainKeysMap": FieldSchema(retain_keys=True, schema=retain_keys_item),
                "retainKeysMergingList": FieldSchema(merge_list=True, merge_key="name", retain_keys=True),
            }
        ),
    )


MERGE_ITEM = _item_type(_item_type(None))

VECTORS = yaml.safe_load(
    """
- name: unique scalars when merging lists
  document: {mergingIntList: [1, 2]}
  patch: {mergingIntList: [2, 3]}
  result: {mergingIntList: [1, 2, 3]}
- name: delete all items from merging list
  document: {mergingList: [{name: 1}, {name: 2}]}
  patch: {mergingList: [{$patch: replace}]}
  result: {mergingList: []}
- name: merge empty merging lists
  document: {mergingList: []}
  patch: {mergingList: []}
  result: {mergingList: []}
- name: delete all keys from map
  document: {name: 1, value: 1}
  patch: {$patch: replace}
  result: {}
- name: add key and delete all keys from map
  document: {name: 1, value: 1}
  patch: {other: a, $patch: replace}
  result: {other: a}
- name: delete all duplicate entries in a merging list
  document: {mergingList: [{name: 1}, {name: 1}, {name: 2, value: a}, {name: 3}, {name: 3}]}
  patch: {mergingList: [{name: 1, $patch: delete}, {name: 3, $patch: delete}]}
  result: {mergingList: [{name: 2, value: a}]}
- name: retainKeys map can add a field when no retainKeys directive present
  document: {retainKeysMap: {name: foo}}
  patch: {retainKeysMap: {value: bar}}
  result: {retainKeysMap: {name: foo, value: bar}}
- name: retainKeys map can delete a field when no retainKeys directive present
  document: {retainKeysMap: {name: foo, value: a}}
  patch: {retainKeysMap: {value: null}}
  result: {retainKeysMap: {name: foo}}
- name: retainKeys map merge an empty map
  document: {retainKeysMap: {name: foo, value: a}}
  patch: {retainKeysMap: {}}
  result: {retainKeysMap: {name: foo, value: a}}
- name: retainKeys list can change a field when no retainKeys directive present
  document: {retainKeysMergingList: [{name: bar}, {name: foo, value: a}]}
  patch: {retainKeysMergingList: [{name: foo, value: b}]}
  result: {retainKeysMergingList: [{name: bar}, {name: foo, value: b}]}
- name: preserve the order from the patch in a merging list
  document: {mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]}
  patch: {mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, other: x}]}
  result: {mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, value: b, other: x}]}
- name: preserve the order from the patch in a merging list 2
  document: {mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]}
  patch: {mergingList: [{name: 3, value: c}, {name: 1, value: a}]}
  result: {mergingList: [{name: 2, value: b}, {name: 3, value: c}, {name: 1, value: a}]}
- name: preserve the order from the patch in a merging int list
  document: {mergingIntList: [1, 2, 3]}
  patch: {mergingIntList: [3, 1, 2]}
  result: {mergingIntList: [3, 1, 2]}
- name: preserve the order from the patch in a merging int list 2
  document: {mergingIntList: [1, 2, 3]}
  patch: {mergingIntList: [3, 1]}
  result: {mergingIntList: [2, 3, 1]}
- name: $setElementOrder contains item that is not present in the list to be merged
  document: {mergingList: [{name: 1}, {name: 3}]}
  patch:
    $setElementOrder/mergingList: [{name: 3}, {name: 2}, {name: 1}]
    mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]
  result: {mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]}
- name: $setElementOrder contains item that is not present in the int list to be merged
  document: {mergingIntList: [1, 3]}
  patch: {$setElementOrder/mergingIntList: [3, 2, 1]}
  result: {mergingIntList: [3, 1]}
- name: delete items in lists of scalars
  document: {mergingIntList: [1, 2, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 4]}
- name: delete all duplicate items in lists of scalars
  document: {mergingIntList: [1, 2, 3, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 4]}
- name: merge lists of maps
  document: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}]
    mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]
  result:
    mergingList:
    - {name: 4, value: 4}
    - {name: 1, other: a}
    - {name: 2, value: 2, other: b}
    - {name: 3, value: 3}
- name: delete map from merging list
  document: {mergingList: [{name: 1}, {name: 2, other: b}]}
  patch: {$setElementOrder/mergingList: [{name: 2}], mergingList: [{name: 1, $patch: delete}]}
  result: {mergingList: [{name: 2, other: b}]}
- name: add map and delete map from merging list
  document: {mergingList: [{name: 1}, {name: 2, other: b}, {name: 4, other: c}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 3}]
    mergingList: [{name: 3}, {name: 1, $patch: delete}]
  result: {mergingList: [{name: 2, other: b}, {name: 4, other: c}, {name: 3}]}
- name: replace non merging list nested in merging list
  document:
    mergingList:
    - {name: 1, other: a, nonMergingList: [{name: 1}, {name: 2, value: 2}]}
    - {name: 2, other: b}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList: [{name: 1, nonMergingList: [{name: 1, value: 1}]}]
  result:
    mergingList:
    - {name: 1, other: a, nonMergingList: [{name: 1, value: 1}]}
    - {name: 2, other: b}
- name: add field to map in merging list nested in merging list
  document:
    mergingList:
    - {name: 1, other: a, mergingList: [{name: 1}, {name: 2, value: 2}]}
    - {name: 2, other: b}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    mergingList:
    - $setElementOrder/mergingList: [{name: 1}, {name: 2}]
      name: 1
      mergingList: [{name: 1, value: 1}]
  result:
    mergingList:
    - {name: 1, other: a, mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]}
    - {name: 2, other: b}
- name: merge lists of scalars
  document: {mergingIntList: [1, 2, 4]}
  patch: {$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 3, 4]}
- name: add an item in a list and preserve order
  document: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 3}, {name: 1}, {name: 2}]
    mergingList: [{name: 3, value: 3}]
  result: {mergingList: [{name: 3, value: 3}, {name: 1, other: a}, {name: 2, value: 2, other: b}]}
- name: add multiple items in a list and preserve order
  document: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 4}, {name: 2}, {name: 3}]
    mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]
  result:
    mergingList:
    - {name: 1, other: a}
    - {name: 4, value: 4}
    - {name: 2, value: 2, other: b}
    - {name: 3, value: 3}
- name: delete an item in a list and preserve order
  document: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  patch: {$setElementOrder/mergingList: [{name: 2}, {name: 1}], mergingList: [{name: 3, $patch: delete}]}
  result: {mergingList: [{name: 2, value: 2, other: b}, {name: 1, other: a}]}
- name: change an item in a list and preserve order
  document: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  patch:
    $setElementOrder/mergingList: [{name: 2}, {name: 3}, {name: 1}]
    mergingList: [{name: 3, value: x}]
  result: {mergingList: [{name: 2, value: 2, other: b}, {name: 3, value: x}, {name: 1, other: a}]}
- name: add and delete an item in a list and preserve order
  document: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
  patch:
    $setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 1}]
    mergingList: [{name: 4, value: 4}, {name: 3, $patch: delete}]
  result: {mergingList: [{name: 4, value: 4}, {name: 2, value: 2, other: b}, {name: 1, other: a}]}
- name: set elements order in a list with server-only items
  document:
    mergingList:
    - {name: 1, other: a}
    - {name: 3, value: 3}
    - {name: 4, value: 4}
    - {name: 2, value: 2}
    - {name: 9}
  patch: {$setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 3}, {name: 1}]}
  result:
    mergingList:
    - {name: 4, value: 4}
    - {name: 2, value: 2}
    - {name: 3, value: 3}
    - {name: 1, other: a}
    - {name: 9}
- name: set elements order in a list with server-only items 2
  document:
    mergingList:
    - {name: 1, other: a}
    - {name: 2, value: 2}
    - {name: 9}
    - {name: 3, value: 3}
    - {name: 4, value: 4}
  patch: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]}
  result:
    mergingList:
    - {name: 2, value: 2}
    - {name: 1, other: a}
    - {name: 9}
    - {name: 4, value: 4}
    - {name: 3, value: 3}
- name: set elements order in a list with server-only items 3
  document:
    mergingList:
    - {name: 1, other: a}
    - {name: 2, value: 2}
    - {name: 7}
    - {name: 9}
    - {name: 8}
    - {name: 3, value: 3}
    - {name: 4, value: 4}
  patch: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]}
  result:
    mergingList:
    - {name: 2, value: 2}
    - {name: 1, other: a}
    - {name: 7}
    - {name: 9}
    - {name: 8}
    - {name: 4, value: 4}
    - {name: 3, value: 3}
- name: add an item in a int list and preserve order
  document: {mergingIntList: [1, 2]}
  patch: {$setElementOrder/mergingIntList: [3, 1, 2], mergingIntList: [3]}
  result: {mergingIntList: [3, 1, 2]}
- name: add multiple items in a int list and preserve order
  document: {mergingIntList: [1, 2]}
  patch: {$setElementOrder/mergingIntList: [1, 4, 2, 3], mergingIntList: [4, 3]}
  result: {mergingIntList: [1, 4, 2, 3]}
- name: delete an item in a int list and preserve order
  document: {mergingIntList: [1, 2, 3]}
  patch: {$setElementOrder/mergingIntList: [2, 1], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [2, 1]}
- name: add and delete an item in a int list and preserve order
  document: {mergingIntList: [1, 2, 3]}
  patch:
    $setElementOrder/mergingIntList: [4, 2, 1]
    mergingIntList: [4]
    $deleteFromPrimitiveList/mergingIntList: [3]
  result: {mergingIntList: [4, 2, 1]}
- name: set elements order in a int list with server-only items 2
  document: {mergingIntList: [1, 2, 9, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [2, 1, 4, 3]}
  result: {mergingIntList: [2, 1, 9, 4, 3]}
- name: set elements order in a int list with server-only items 3
  document: {mergingIntList: [1, 2, 7, 9, 8, 3, 4]}
  patch: {$setElementOrder/mergingIntList: [2, 1, 4, 3]}
  result: {mergingIntList: [2, 1, 7, 9, 8, 4, 3]}
- name: behavior of set element order for a merging list with duplicate
  document: {mergingList: [{name: 1}, {name: 2, value: dup1}, {name: 3}, {name: 2, value: dup2}, {name: 4}]}
  patch: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}, {name: 2}]}
  result: {mergingList: [{name: 2, value: dup1}, {name: 2, value: dup2}, {name: 1}, {name: 4}, {name: 3}]}
- name: behavior of set element order for a merging int list with duplicate
  document: {mergingIntList: [1, 2, 3, 2, 4]}
  patch: {$setElementOrder/mergingIntList: [2, 1, 4, 3, 2]}
  result: {mergingIntList: [2, 2, 1, 4, 3]}
- name: retainKeys map adds a field and clear a field
  document: {retainKeysMap: {name: foo, other: a}}
  patch: {retainKeysMap: {$retainKeys: [name, value], value: bar}}
  result: {retainKeysMap: {name: foo, value: bar}}
- name: retainKeys list of maps adds a field and clear a field
  document: {retainKeysMergingList: [{name: bar}, {name: foo, other: x}]}
  patch:
    $setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]
    retainKeysMergingList: [{$retainKeys: [name, value], name: foo, value: a}]
  result: {retainKeysMergingList: [{name: bar}, {name: foo, value: a}]}
- name: delete and reorder in one list, reorder in another
  document:
    mergingList: [{name: a, value: a}, {name: b, value: b}]
    mergeItemPtr: [{name: c, value: c}, {name: d, value: d}]
  patch:
    $setElementOrder/mergingList: [{name: b}]
    $setElementOrder/mergeItemPtr: [{name: d}, {name: c}]
    mergingList: [{$patch: delete, name: a}]
  result:
    mergingList: [{name: b, value: b}]
    mergeItemPtr: [{name: d, value: d}, {name: c, value: c}]
"""
)


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_upstream_vector(vector: dict[str, JSON]) -> None:
    result, _ = strategic_merge(vector["document"], vector["patch"], MERGE_ITEM)
    assert result == vector["result"]


ERROR_VECTORS = yaml.safe_load(
    """
- name: should check if order in $setElementOrder and patch list match
  document: {mergingList: [{name: 1}, {name: 3}, {name: 2}]}
  patch:
    $setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}]
    mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]
  error: 'mergingList[1]: the patch list is not in the order "$setElementOrder/mergingList" gives'
- name: should check if order in $setElementOrder and patch int list match
  document: {mergingIntList: [1, 3, 2]}
  patch: {$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3, 1]}
  error: 'mergingIntList[1]: the patch list is not in the order "$setElementOrder/mergingIntList" gives'
- name: missing merge key should error out
  document: {mergingList: [{name: 1, value: a}]}
  patch: {mergingList: [{value: b}]}
  error: 'mergingList[0]: element needs the merge key "name"'
"""
)


@pytest.mark.parametrize("vector", ERROR_VECTORS, ids=[vector["name"] for vector in ERROR_VECTORS])
def test_upstream_error_vector(vector: dict[str, JSON]) -> None:
    with pytest.raises(PatchError) as raised:
        strategic_merge(vector["document"], vector["patch"], MERGE_ITEM)
    assert str(raised.value) == vector["error"]


def test_upstream_delete_directive_on_a_map_removes_the_key_instead_of_leaving_an_empty_map() -> None:
    """Upstream ("delete map from nested map") leaves ``simpleMap: {}``; we remove the key (module doc)."""
    result, _ = strategic_merge(
        {"simpleMap": {"key1": 1, "key2": 1}}, {"simpleMap": {"$patch": "delete"}}, MERGE_ITEM
    )
    assert result == {}
