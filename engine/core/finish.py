"""The engine's finishing step: the last changes to an admitted Job, made from the config.

What used to be added by the controller after evaluation is done here, inside ``evaluate``, so that
``engine test`` prints exactly the Job the controller creates. Its changes are recorded in the trace
under the pseudo-policy ``stack``, rule ``finish`` (so ``engine test --explain`` attributes them like
any policy's). It comes in two parts, so that the enforce phase sees the pod exactly as it will be
created:

:func:`prepare_job`, right before the enforce phase (the Job is complete but for enforcement):

* ``metadata.namespace`` = ``config.namespace`` (the controller creates Jobs only there);
* the label ``buildkite.com/controller-id`` = ``config.id`` (the effective ID; see
  :mod:`engine.model.controller_id`) on the Job and on its pod template: the controller's informers
  select by it;
* when the job may have warnings (it has some already, or an enforce rule could add one; and
  ``config.jobLogWarnings`` is on): an agent ``environment`` hook that prints them at the top of the
  Buildkite job log. The hook is the pod template annotation ``policy.agent-stack.dev/job-log-warnings``,
  projected into the first bootstrap container (the checkout container, else the first command
  container) as a file by a ``downwardAPI`` volume, and announced to the agent with
  ``BUILDKITE_ADDITIONAL_HOOKS_PATHS`` (agent v3.89.0 or later; an older agent ignores it and the
  warnings stay in the annotation and the controller log).

:func:`record_job`, after the enforce phase, writes only the record of the evaluation, which cannot
exist before it ends: the Job's annotation ``policy.agent-stack.dev/changed-by`` (every policy that
changed the Job, in the order it first did, as ``<name>@<digest>``: the first 8 hex digits of the
SHA-256 of the policy document; ``engine validate --list`` maps a digest back to its file; ending with
``stack@<engine version>``) and the final text of the warnings hook annotation. Both keys are the
stack's own (a step's metadata cannot set them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from engine.core.documents import POD_SPEC_PATH, get_in, set_in
from engine.core.function_registry import ROLE_KEY
from engine.core.functions.shellquote import shell_quote
from engine.model.decision import ENGINE_POLICY, PolicyWarning, TraceRecord
from engine.model.jsonvalue import JSON, Change, JSONObject, Path

FINISH_POLICY = ENGINE_POLICY
FINISH_RULE = "finish"
CONTROLLER_ID_LABEL = "buildkite.com/controller-id"
CHANGED_BY_ANNOTATION = "policy.agent-stack.dev/changed-by"
WARNINGS_HOOK_ANNOTATION = "policy.agent-stack.dev/job-log-warnings"
WARNINGS_VOLUME = "agent-stack-warnings"
WARNINGS_HOOKS_DIR = "/buildkite/agent-stack-hooks"
ADDITIONAL_HOOKS_ENV = "BUILDKITE_ADDITIONAL_HOOKS_PATHS"
DIGEST_LENGTH = 8
_HOOK_MODE = 0o755
_JOB_METADATA: Path = ("metadata",)
_TEMPLATE_METADATA: Path = ("spec", "template", "metadata")


def policy_digest(document: JSON) -> str:
    """The short content hash of a policy document: canonical JSON (sorted keys, no whitespace), so
    comments and formatting do not change it but any change of meaning does."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


def prepare_job(
    manifest: JSONObject,
    config: Mapping[str, JSON],
    warnings: Sequence[PolicyWarning],
    *,
    more_warnings_possible: bool,
) -> tuple[JSONObject, list[Change], list[Path]]:
    """The Job as the enforce phase must see it, the changes made (absolute paths, in order), and the
    paths set from the config whether or not a policy had already set the same value (what the
    enforce phase may not change; a path changed here is among the changes too).

    ``more_warnings_possible``: an enforce rule could still add a warning, so the hook is put in place
    even when ``warnings`` is empty (its script then prints nothing unless one is added)."""
    changes: list[Change] = []
    owned: list[Path] = []
    result = manifest
    namespace = config.get("namespace")
    if isinstance(namespace, str):
        owned.append((*_JOB_METADATA, "namespace"))
        result = _set(result, owned[-1], namespace, changes)
    controller_id = config.get("id")
    if isinstance(controller_id, str) and controller_id:
        for metadata in (_JOB_METADATA, _TEMPLATE_METADATA):
            owned.append((*metadata, "labels", CONTROLLER_ID_LABEL))
            result = _set(result, owned[-1], controller_id, changes)
    if (warnings or more_warnings_possible) and config.get("jobLogWarnings", True) is not False:
        result = _add_warnings_hook(result, warnings, changes)
    return result, changes, owned


def record_job(
    manifest: JSONObject,
    trace: Sequence[TraceRecord],
    digests: Mapping[str, str],
    warnings: Sequence[PolicyWarning],
    version: str,
) -> tuple[JSONObject, list[Change]]:
    """The Job with the record of its evaluation: the changed-by annotation, and the hook's final
    text where :func:`prepare_job` put the hook. Nothing else changes after the enforce phase."""
    changes: list[Change] = []
    result = manifest
    hook_path: Path = (*_TEMPLATE_METADATA, "annotations", WARNINGS_HOOK_ANNOTATION)
    if isinstance(get_in(result, hook_path), str):
        result = _set(result, hook_path, warnings_hook(warnings), changes)
    changed_by = _changed_by(trace, digests, version)
    result = _set(result, (*_JOB_METADATA, "annotations", CHANGED_BY_ANNOTATION), changed_by, changes)
    return result, changes


def finish_job(
    manifest: JSONObject,
    trace: Sequence[TraceRecord],
    config: Mapping[str, JSON],
    digests: Mapping[str, str],
    warnings: Sequence[PolicyWarning],
    version: str,
) -> tuple[JSONObject, list[Change]]:
    """Both parts at once, on a Job no enforce rule will see (benchmarks and tests of the step)."""
    prepared, changes, _ = prepare_job(manifest, config, warnings, more_warnings_possible=False)
    recorded, more = record_job(prepared, trace, digests, warnings, version)
    return recorded, [*changes, *more]


def _changed_by(trace: Sequence[TraceRecord], digests: Mapping[str, str], version: str) -> str:
    names: dict[str, None] = {}
    for record in trace:
        if record.policy != FINISH_POLICY:
            names.setdefault(record.policy, None)
    entries = [f"{name}@{digests.get(name, '')}" for name in names]
    entries.append(f"{FINISH_POLICY}@{version}")
    return ",".join(entries)


def warnings_hook(warnings: Sequence[PolicyWarning]) -> str:
    """The ``environment`` hook script: a heading that expands its log group, then each warning,
    shell-quoted, as ``policy/rule: message``; without warnings, only the comment (it prints nothing)."""
    count = len(warnings)
    lines = [f"# {WARNINGS_HOOK_ANNOTATION}: the policy engine's warnings about this job, first in its log"]
    if not warnings:
        return lines[0] + "\n"
    heading = f"+++ :warning: agent-stack-policy: {count} warning{'' if count == 1 else 's'}"
    lines.append(f"printf '%s\\n' {shell_quote(heading)}")
    lines += [f"printf '%s\\n' {shell_quote(warning.render())}" for warning in warnings]
    return "\n".join(lines) + "\n"


def _add_warnings_hook(
    manifest: JSONObject, warnings: Sequence[PolicyWarning], changes: list[Change]
) -> JSONObject:
    pod = get_in(manifest, POD_SPEC_PATH)
    if not isinstance(pod, dict):
        return manifest
    target = _first_bootstrap_container(pod)
    if target is None:
        return manifest
    result = _set(
        manifest,
        (*_TEMPLATE_METADATA, "annotations", WARNINGS_HOOK_ANNOTATION),
        warnings_hook(warnings),
        changes,
    )
    field_path = f"metadata.annotations['{WARNINGS_HOOK_ANNOTATION}']"
    volume = {
        "name": WARNINGS_VOLUME,
        "downwardAPI": {
            "items": [{"path": "environment", "fieldRef": {"fieldPath": field_path}, "mode": _HOOK_MODE}]
        },
    }
    volumes = pod.get("volumes") or []
    if not isinstance(volumes, list):
        return manifest
    result = _set(
        result, (*POD_SPEC_PATH, "volumes"), [*volumes, volume], changes, op_path_index=len(volumes)
    )
    container_path: Path = (*POD_SPEC_PATH, "containers", target)
    container = get_in(result, container_path)
    mounts = container.get("volumeMounts") or []
    mount = {"name": WARNINGS_VOLUME, "mountPath": WARNINGS_HOOKS_DIR, "readOnly": True}
    result = _set(
        result, (*container_path, "volumeMounts"), [*mounts, mount], changes, op_path_index=len(mounts)
    )
    env = container.get("env") or []
    existing = [e.get("value") for e in env if isinstance(e, dict) and e.get("name") == ADDITIONAL_HOOKS_ENV]
    previous = existing[-1] if existing and isinstance(existing[-1], str) and existing[-1] else ""
    value = f"{previous},{WARNINGS_HOOKS_DIR}" if previous else WARNINGS_HOOKS_DIR
    entry = {"name": ADDITIONAL_HOOKS_ENV, "value": value}
    return _set(result, (*container_path, "env"), [*env, entry], changes, op_path_index=len(env))


def _first_bootstrap_container(pod: Mapping[str, JSON]) -> int | None:
    """The index of the container the agent numbers 0: checkout, else the first command container."""
    containers = pod.get("containers")
    if not isinstance(containers, list):
        return None
    roles = [c.get(ROLE_KEY) if isinstance(c, dict) else None for c in containers]
    for role in ("checkout", "command"):
        if role in roles:
            return roles.index(role)
    return None


def _set(
    document: JSONObject, path: Path, value: JSON, changes: list[Change], *, op_path_index: int | None = None
) -> JSONObject:
    """``document`` with ``value`` at ``path``, recording the change (none when it is already there).

    ``op_path_index`` marks an append to the list at ``path``: the change is recorded as an ``add`` of
    the new last item, which is what a reader of the trace wants to see."""
    old = get_in(document, path)
    if old == value:
        return document
    updated: JSONObject = set_in(document, path, value)
    if op_path_index is not None and isinstance(value, list):
        changes.append(Change("add", (*path, op_path_index), None, value[op_path_index]))
    else:
        changes.append(Change("add" if old is None else "replace", path, old, value))
    return updated
