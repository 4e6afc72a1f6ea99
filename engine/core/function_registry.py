"""The helper functions policy expressions can call, by their CEL names.

CEL has no way to build a map with computed keys, filter by index or quote for a shell; these helpers
fill exactly those gaps. Each is a small pure function; the Buildkite-specific ones (``interpose``)
live in ``engine.core.functions`` with their reference test vectors. Anything that decides what a pod
looks like stays in the policies.
"""

from __future__ import annotations

import functools
import json
import math
import posixpath
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from engine.core.expressions import HelperRegistry
from engine.core.functions.images import image_ref
from engine.core.functions.interposer import interpose
from engine.core.functions.labels import is_label_key, is_label_value
from engine.core.functions.lists import distinct_by, go_duration, rounded_table, set_env, without_keys
from engine.core.functions.secrets import secret_references
from engine.core.functions.shellquote import shell_join, shell_quote
from engine.model.job import ROLE_KEY as JOB_ROLE_KEY
from engine.model.jsonvalue import JSON
from engine.model.quantity import parse_quantity

ROLE_KEY = JOB_ROLE_KEY
"""Engine-reserved key marking a container's role while a Job is built; stripped from the result."""


def kv_map(entries: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=2"]`` → ``{"a": "1", "b": "2"}``; entries without ``=`` are skipped."""
    out: dict[str, str] = {}
    for entry in entries:
        key, sep, value = str(entry).partition("=")
        if sep and key:
            out[key] = value
    return out


def map_of(pairs: Sequence[Sequence[JSON]]) -> dict[str, JSON]:
    """``[["k", v], ...]`` → ``{"k": v}``; CEL cannot build a map with computed keys itself."""
    out: dict[str, JSON] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"expected [key, value] pairs, got {list(pair)!r}")
        out[str(pair[0])] = pair[1]
    return out


def merge(*maps: Mapping[str, JSON] | None) -> dict[str, JSON]:
    """Shallow merge, later maps winning; ``null`` arguments are ignored."""
    out: dict[str, JSON] = {}
    for item in maps:
        if item is None:
            continue
        if not (type(item) is dict or isinstance(item, Mapping)):
            raise ValueError(f"merge() takes maps, got {type(item).__name__}")
        out.update(item)
    return out


def prefix_keys(values: Mapping[str, JSON], prefix: str) -> dict[str, JSON]:
    """Every key with ``prefix`` in front (e.g. agent tags → ``tag.buildkite.com/<key>`` labels)."""
    return {prefix + str(k): v for k, v in values.items()}


def valid_labels(labels: Mapping[str, JSON]) -> dict[str, JSON]:
    """Only the entries that are a valid Kubernetes label key and value."""
    return {k: v for k, v in labels.items() if is_label_key(k) and isinstance(v, str) and is_label_value(v)}


def invalid_labels(labels: Mapping[str, JSON]) -> list[str]:
    """``key=value`` of each entry that is not a valid Kubernetes label, sorted."""
    return sorted(
        f"{k}={v}"
        for k, v in labels.items()
        if not (is_label_key(k) and isinstance(v, str) and is_label_value(v))
    )


def without_names(items: Sequence[Mapping[str, JSON]], names: Sequence[str]) -> list[JSON]:
    """The items whose ``name`` is not in ``names`` (env lists, container lists), order kept."""
    excluded = set(names)
    return [item for item in items if item.get("name") not in excluded]


def only_names(items: Sequence[Mapping[str, JSON]], names: Sequence[str]) -> list[JSON]:
    """The items whose ``name`` is in ``names``, order kept (the complement of ``withoutNames``)."""
    wanted = set(names)
    return [item for item in items if item.get("name") in wanted]


def names_in(items: Sequence[Mapping[str, JSON]], names: Sequence[str]) -> list[str]:
    """The distinct ``name`` values of ``items`` that are in ``names``, in the order they first occur."""
    wanted = set(names)
    found: dict[str, None] = {}
    for item in items:
        name = item.get("name")
        if isinstance(name, str) and name in wanted:
            found.setdefault(name, None)
    return list(found)


def changed_env(
    env: Sequence[Mapping[str, JSON]], reference: Sequence[Mapping[str, JSON]], names: Sequence[str]
) -> list[str]:
    """The names (from ``names``, in that order) whose entries differ between ``env`` and ``reference``:
    the same entries, in the same order, count as unchanged. Why a helper: it runs on every patched
    container and compares whole env lists, which is one pass here."""
    if env is reference:
        return []
    wanted = set(names)
    current: dict[str, list[JSON]] = {}
    before: dict[str, list[JSON]] = {}
    for items, into in ((env, current), (reference, before)):
        for item in items:
            name = item.get("name")
            if name in wanted:
                into.setdefault(str(name), []).append(item)
    return [name for name in names if current.get(name) != before.get(name)]


def changed_commands(before: Sequence[Mapping[str, JSON]], after: Sequence[Mapping[str, JSON]]) -> list[str]:
    """Names of the containers in both lists (matched by name) whose ``command`` or ``args`` differ;
    an absent or null value counts as an empty list. One pass, for a check every patched job makes."""
    earlier = {c.get("name"): c for c in before if (type(c) is dict or isinstance(c, Mapping))}
    changed: list[str] = []
    for container in after:
        if not (type(container) is dict or isinstance(container, Mapping)):
            continue
        name = container.get("name")
        old = earlier.get(name)
        if old is None or old is container:
            continue
        for key in ("command", "args"):
            if (old.get(key) or []) != (container.get(key) or []):
                changed.append(str(name))
                break
    return changed


def with_fragment(url: str, fragment: str) -> str:
    """``url`` with its fragment replaced (``""`` gives ``#<fragment>``, as Go's url package does)."""
    return url.split("#", 1)[0] + "#" + fragment


def lookup(value: JSON, path: str, default: JSON) -> JSON:
    """``value.a.b.c`` if every step exists (and is not null), else ``default``."""
    current = value
    for key in path.split("."):
        if not (type(current) is dict or isinstance(current, Mapping)) or current.get(key) is None:
            return default
        current = current[key]
    return current


def non_empty(value: JSON) -> JSON:
    """``null`` for an empty list, map or string, else the value: a computed null leaves a key out."""
    return None if value in ([], {}, "") else value


def bool_string(value: bool) -> str:
    """``true``/``false``, as Go's ``strconv.FormatBool`` writes them (CEL's ``string()`` takes no bools)."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return "true" if value else "false"


def role_of(container: Mapping[str, JSON]) -> str:
    """The role the build policies gave a container (``command``, ``sidecar``...), or ``""``."""
    role = container.get(ROLE_KEY, "")
    return role if isinstance(role, str) else ""


def to_json(value: JSON) -> str:
    """Compact JSON with sorted keys (deterministic env values)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_QUANTITY_SCALE = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _quantity(value: str | int | float) -> Fraction:
    """The exact value of a Kubernetes quantity (validated by the same parser the config uses)."""
    canonical = parse_quantity(value)
    number = canonical.rstrip("numkKMGTPEi")
    suffix = canonical[len(number) :]
    if "e" in number.lower():
        mantissa, _, exponent = number.lower().partition("e")
        return Fraction(mantissa) * Fraction(10) ** int(exponent)
    return Fraction(number) * _QUANTITY_SCALE[suffix]


def quantity_bytes(value: str | int | float) -> int:
    """A memory-style quantity in whole units, rounded up (``1Gi`` → 1073741824)."""
    return math.ceil(_quantity(_hashable_quantity(value)))


def quantity_millis(value: str | int | float) -> int:
    """A CPU-style quantity in thousandths, rounded up (``1.5`` → 1500, ``250m`` → 250)."""
    return math.ceil(_quantity(_hashable_quantity(value)) * 1000)


def _hashable_quantity(value: str | int | float) -> str | int | float:
    """The value, checked to be one a quantity can be (the cache needs it hashable): a bool, list or
    map is refused with the parser's own message."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    parse_quantity(value)
    return value


def path_dir(path: str) -> str:
    return posixpath.dirname(path)


def path_join(base: str, name: str) -> str:
    return posixpath.join(base, name)


def is_abs_path(path: str) -> bool:
    return posixpath.isabs(path)


HELPERS: dict[str, Callable[..., Any]] = {
    "shellQuote": shell_quote,
    "shellJoin": shell_join,
    "interpose": interpose,
    "isLabelKey": is_label_key,
    "isLabelValue": is_label_value,
    "validLabels": valid_labels,
    "invalidLabels": invalid_labels,
    "kvMap": kv_map,
    "mapOf": map_of,
    "merge": merge,
    "prefixKeys": prefix_keys,
    "withoutNames": without_names,
    "onlyNames": only_names,
    "namesIn": names_in,
    "changedEnv": changed_env,
    "changedCommands": changed_commands,
    "withFragment": with_fragment,
    "lookup": lookup,
    "roleOf": role_of,
    "nonEmpty": non_empty,
    "boolString": bool_string,
    "quantityBytes": quantity_bytes,
    "quantityMillis": quantity_millis,
    "toJson": to_json,
    "pathDir": path_dir,
    "pathJoin": path_join,
    "isAbsPath": is_abs_path,
    "secretReferences": secret_references,
    "imageRef": image_ref,
    "setEnv": set_env,
    "withoutKeys": without_keys,
    "distinctBy": distinct_by,
    "goDuration": go_duration,
    "roundedTable": rounded_table,
}

REGISTRY = HelperRegistry(HELPERS)
