"""Read fields of Kubernetes objects in their wire shape (the JSON the API server sends, as dicts).

The controller never converts objects into the ``kubernetes`` package's model classes: the wire shape
is what policies produce, what the watch stream carries and what tests can write by hand. These
helpers read it defensively, so a missing or malformed field reads as "absent" instead of raising in
the middle of an event handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def field(obj: Mapping[str, Any], *path: str) -> Any:
    """The value at ``path`` (``field(pod, "status", "phase")``), or ``None`` when any step is missing."""
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def mapping_at(obj: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    """The mapping at ``path``, or an empty one when it is missing or not a mapping."""
    value = field(obj, *path)
    return value if isinstance(value, Mapping) else {}


def list_at(obj: Mapping[str, Any], *path: str) -> list[Any]:
    """The list at ``path``, or an empty one when it is missing or not a list."""
    value = field(obj, *path)
    return value if isinstance(value, list) else []


def string_at(obj: Mapping[str, Any], *path: str) -> str:
    """The string at ``path``, or ``""``."""
    value = field(obj, *path)
    return value if isinstance(value, str) else ""


def int_at(obj: Mapping[str, Any], *path: str) -> int:
    """The integer at ``path``, or 0 (booleans are not integers here)."""
    value = field(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def name_of(obj: Mapping[str, Any]) -> str:
    return string_at(obj, "metadata", "name")


def namespace_of(obj: Mapping[str, Any]) -> str:
    return string_at(obj, "metadata", "namespace")


def uid_of(obj: Mapping[str, Any]) -> str:
    return string_at(obj, "metadata", "uid")


def resource_version_of(obj: Mapping[str, Any]) -> str:
    return string_at(obj, "metadata", "resourceVersion")


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """``metadata.labels`` with only string values (what the API server guarantees anyway)."""
    labels = mapping_at(obj, "metadata", "labels")
    return {str(key): value for key, value in labels.items() if isinstance(value, str)}


def describe(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` for log lines and messages."""
    namespace = namespace_of(obj)
    return f"{namespace}/{name_of(obj)}" if namespace else name_of(obj)


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (``2025-01-01T12:00:00Z``, optionally with
    fractional seconds or an offset) as an aware UTC datetime; ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def timestamp_at(obj: Mapping[str, Any], *path: str) -> datetime | None:
    """The timestamp at ``path`` (see :func:`parse_timestamp`)."""
    return parse_timestamp(field(obj, *path))
