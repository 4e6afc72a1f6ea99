"""The controller ID: the ``buildkite.com/controller-id`` label value that marks this controller's Jobs.

Pure (no IO): the engine's finishing step writes the label from the config, and the controller
selects its informers by the same value, so both must derive it identically.

Every Job the scheduler creates (and its pods) carries ``buildkite.com/controller-id=<id>``, and the
informers select exactly that label, so a controller sees all of its own Jobs and none of another
controller's, whatever tags the Buildkite jobs asked for (upstream v0.20.2 selected by tags and lost
Jobs of jobs with fewer tags; v0.29.0 introduced this label).

The ID comes from config key ``id`` (the Helm chart sets it to the release's full name). When it is
unset, the default is **derived from the namespace and the queue**: ``<namespace>.<queue>``. It is
stable across restarts and upgrades (so a restarted controller adopts the Jobs its predecessor created)
and differs between controllers serving different queues in one namespace. Two controllers for the same
queue in the same namespace would share it; give them distinct ``id`` values.

A label value is at most 63 characters of ``[A-Za-z0-9._-]``, starting and ending alphanumerically.
When ``<namespace>.<queue>`` is not one (a long queue name, a queue with ``/`` or spaces), offending
characters become ``-`` and a short hash of the original text is appended, so different queues still
get different IDs.
"""

from __future__ import annotations

import hashlib
import re

LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_INVALID_CHARACTERS = re.compile(r"[^-A-Za-z0-9_.]+")
_HASH_LENGTH = 8


class ControllerIdError(ValueError):
    """A configured ``id`` that cannot be a label value."""


def is_label_value(value: str) -> bool:
    return len(value) <= LABEL_VALUE_MAX and _LABEL_VALUE.match(value) is not None


def default_controller_id(namespace: str, queue: str) -> str:
    """``<namespace>.<queue>``, made into a valid, non-empty label value (see the module doc)."""
    wanted = f"{namespace}.{queue}"
    if wanted and is_label_value(wanted):
        return wanted
    suffix = hashlib.sha256(wanted.encode()).hexdigest()[:_HASH_LENGTH]
    cleaned = _INVALID_CHARACTERS.sub("-", wanted)
    cleaned = cleaned[: LABEL_VALUE_MAX - _HASH_LENGTH - 1]
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    return f"{cleaned}-{suffix}" if cleaned else f"controller-{suffix}"


def controller_id(configured: str, namespace: str, queue: str) -> str:
    """The configured ID when set (it must be a label value), else :func:`default_controller_id`."""
    if configured:
        if not is_label_value(configured):
            raise ControllerIdError(
                f"id: {configured!r} is not a valid label value (at most 63 characters of "
                "A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit)"
            )
        return configured
    return default_controller_id(namespace, queue)
