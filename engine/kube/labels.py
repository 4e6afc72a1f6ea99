"""The labels the stack puts on its Jobs and pods, and what the watchers read back from them.

A Job and its pods carry everything a watcher needs to act on the Buildkite job without asking the
scheduler: the job UUID (``buildkite.com/job-uuid``), the controller that owns them
(``buildkite.com/controller-id``, which the informers select on) and the job's agent tags as
``tag.buildkite.com/<key>=<value>`` labels, which become the throw-away agent's tags when a watcher
fails the job (behaviour spec §3.13).
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Mapping
from typing import Any

from engine.core.finish import CONTROLLER_ID_LABEL
from engine.kube.objects import labels_of, list_at

__all__ = ["CONTROLLER_ID_LABEL", "JOB_UUID_LABEL", "TAG_LABEL_PREFIX"]

JOB_UUID_LABEL = "buildkite.com/job-uuid"
TAG_LABEL_PREFIX = "tag.buildkite.com/"

_FINISHED_CONDITIONS = frozenset({"Complete", "Failed"})


def job_uuid_of(obj: Mapping[str, Any]) -> str | None:
    """The Buildkite job UUID from the object's ``buildkite.com/job-uuid`` label, in canonical
    lower-case form; ``None`` when the label is missing or is not a UUID."""
    value = labels_of(obj).get(JOB_UUID_LABEL)
    if not value:
        return None
    try:
        return str(uuid_module.UUID(value))
    except ValueError:
        return None


def tags_from_labels(labels: Mapping[str, str]) -> list[str]:
    """``key=value`` for every ``tag.buildkite.com/<key>`` label, sorted (so the agent's tags are
    deterministic); labels with an empty key after the prefix are skipped."""
    tags = [
        f"{key.removeprefix(TAG_LABEL_PREFIX)}={value}"
        for key, value in labels.items()
        if key.startswith(TAG_LABEL_PREFIX) and len(key) > len(TAG_LABEL_PREFIX)
    ]
    return sorted(tags)


def job_is_finished(job: Mapping[str, Any]) -> bool:
    """True when the Job has a ``Complete`` or ``Failed`` condition whose status is ``"True"``.

    Upstream only looked at the condition type; a condition that is present but not true (which the
    API allows) does not mean the Job ended.
    """
    return any(
        isinstance(condition, Mapping)
        and condition.get("type") in _FINISHED_CONDITIONS
        and condition.get("status") == "True"
        for condition in list_at(job, "status", "conditions")
    )
