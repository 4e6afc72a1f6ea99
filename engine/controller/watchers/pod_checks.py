"""What a pod's status says about its Buildkite job, and how to tell the person who pushed the build.

Pure functions over a pod in wire shape, used by the pod watcher (behaviour spec §4.10):

* init containers that terminated with a non-zero exit code (the pod will never run its agent);
* images that cannot be pulled, and whether that is final at once (``InvalidImageName``) or only
  after the grace period (``ImagePullBackOff``, ``ErrImageNeverPull``). Init containers always
  count; regular containers only when they are the stack's own (``agent``, ``copy-agent``,
  ``checkout``, ``container-N``), except for ``InvalidImageName``, which no retry can fix;
* the texts of the failure messages, worded as upstream words them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.kube.objects import list_at, mapping_at, string_at
from engine.kube.text_table import render_table
from engine.model.durations import format_duration

SYSTEM_CONTAINERS = frozenset({"agent", "copy-agent", "checkout"})
_COMMAND_CONTAINER = re.compile(r"container-\d+")
"""Upstream matches this unanchored, so any name containing ``container-<digits>`` counts."""

IMMEDIATE_IMAGE_REASONS = frozenset({"InvalidImageName"})
GRACE_IMAGE_REASONS = frozenset({"ImagePullBackOff", "ErrImageNeverPull"})

INIT_FAILURE_HEADER = "The following init containers failed:\n\n"
INIT_FAILURE_COLUMNS = ("CONTAINER", "EXIT CODE", "SIGNAL", "REASON", "MESSAGE")
IMAGE_FAILURE_HEADER = "The following container images couldn't be pulled:\n"


def is_system_container(name: str) -> bool:
    """Containers the stack itself adds to every pod (their image failures always matter)."""
    return name in SYSTEM_CONTAINERS or _COMMAND_CONTAINER.search(name) is not None


@dataclass(frozen=True)
class FailedInitContainer:
    name: str
    exit_code: int
    signal: int
    reason: str
    message: str


def failed_init_containers(pod: Mapping[str, Any]) -> list[FailedInitContainer]:
    """Init containers terminated with a non-zero exit code, sorted by name."""
    failed = []
    for status in list_at(pod, "status", "initContainerStatuses"):
        if not isinstance(status, Mapping):
            continue
        terminated = mapping_at(status, "state", "terminated")
        exit_code = terminated.get("exitCode")
        if not terminated or not isinstance(exit_code, int) or exit_code == 0:
            continue
        signal = terminated.get("signal")
        failed.append(
            FailedInitContainer(
                name=string_at(status, "name"),
                exit_code=exit_code,
                signal=signal if isinstance(signal, int) else 0,
                reason=string_at(terminated, "reason"),
                message=string_at(terminated, "message"),
            )
        )
    return sorted(failed, key=lambda container: container.name)


def init_failure_message(failed: Sequence[FailedInitContainer]) -> str:
    """``The following init containers failed:`` and a table of them."""
    rows = [(c.name, c.exit_code, c.signal, c.reason, c.message) for c in failed]
    return INIT_FAILURE_HEADER + render_table(INIT_FAILURE_COLUMNS, rows)


@dataclass(frozen=True)
class ImageFailure:
    container: str
    image: str
    reason: str
    immediate: bool
    """No grace period: waiting cannot fix it."""


def image_failures(pod: Mapping[str, Any]) -> list[ImageFailure]:
    """Containers waiting on an image that cannot be pulled (see the module docstring for which).

    The pod watcher asks this of every watched pod once a second, so the statuses are looked at
    first and the spec only when one of them names a failure.
    """
    failures = []
    for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for status in list_at(pod, "status", key):
            if not isinstance(status, Mapping):
                continue
            reason = string_at(status, "state", "waiting", "reason")
            immediate = reason in IMMEDIATE_IMAGE_REASONS
            if not immediate and reason not in GRACE_IMAGE_REASONS:
                continue
            name = string_at(status, "name")
            if not (init or immediate or is_system_container(name)):
                continue
            image = string_at(status, "image") or _spec_image(pod, name)
            failures.append(ImageFailure(container=name, image=image, reason=reason, immediate=immediate))
    return failures


def _spec_image(pod: Mapping[str, Any], name: str) -> str:
    for key in ("initContainers", "containers"):
        for container in list_at(pod, "spec", key):
            if isinstance(container, Mapping) and string_at(container, "name") == name:
                return string_at(container, "image")
    return ""


def go_quote(text: str) -> str:
    """A double-quoted string like Go's ``%q`` (an image reference may contain spaces or worse)."""
    return json.dumps(text, ensure_ascii=False)


def image_failure_message(failures: Sequence[ImageFailure]) -> str:
    """``The following container images couldn't be pulled:`` and one `` * "<image>"`` line per image."""
    images = sorted({failure.image for failure in failures})
    return IMAGE_FAILURE_HEADER + "".join(f" * {go_quote(image)}\n" for image in images)


def image_failure_summary(failures: Sequence[ImageFailure]) -> str:
    """One line for a job's progress messages: ``<container>: <reason> (<image>); …``, by container."""
    ordered = sorted(failures, key=lambda failure: failure.container)
    return "; ".join(f"{f.container}: {f.reason} ({go_quote(f.image)})" for f in ordered)


def pending_timeout_message(pending_seconds: float, pod: Mapping[str, Any]) -> str:
    """Why a pod that never left ``Pending`` is given up on, with its conditions when it has any."""
    waited = format_duration(round(pending_seconds))
    message = f"The pod has been in Pending state for {waited} without starting.\n"
    lines = []
    for condition in list_at(pod, "status", "conditions"):
        if not isinstance(condition, Mapping):
            continue
        lines.append(
            f"  - {string_at(condition, 'type')}: {string_at(condition, 'status')} "
            f"(Reason: {string_at(condition, 'reason')}, Message: {string_at(condition, 'message')})\n"
        )
    if lines:
        message += "\nPod Conditions:\n" + "".join(lines)
    return message
