"""Document patches for policy rules: strategic merge, JSON patch (RFC 6902) and defaults.

Every operation returns the new document and the list of changes it made, never mutates its inputs,
and shares unchanged sub-trees with the input.
"""

from engine.core.patch.defaults import apply_defaults
from engine.core.patch.json_patch import JsonPatchError, apply_json_patch
from engine.core.patch.schema import CONTAINER, JOB, POD_SPEC, TypeSchema, schema_for
from engine.core.patch.strategic import PatchError, strategic_merge

__all__ = [
    "CONTAINER",
    "JOB",
    "POD_SPEC",
    "JsonPatchError",
    "PatchError",
    "TypeSchema",
    "apply_defaults",
    "apply_json_patch",
    "schema_for",
    "strategic_merge",
]
