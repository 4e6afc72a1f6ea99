"""The engine's finishing step: the last changes to an admitted Job, made from the config.

What used to be added by the controller after evaluation is done here, inside ``evaluate``, so that
``engine test`` prints exactly the Job the controller creates. It runs once, after the enforce phase,
and its changes are recorded in the trace under the pseudo-policy ``stack``, rule ``finish`` (so
``engine test --explain`` attributes them like any policy's):

* ``metadata.namespace`` = ``config.namespace`` (the controller creates Jobs only there);
* the label ``buildkite.com/controller-id`` = ``config.id`` (the effective ID; see
  :mod:`engine.model.controller_id`) on the Job and on its pod template: the controller's informers
  select by it;
* the annotation ``policy.agent-stack.dev/changed-by`` on the Job: every policy that changed the Job,
  in the order it first did, as ``<name>@<digest>`` (the first 8 hex digits of the SHA-256 of the
  policy document; ``engine validate --list`` maps a digest back to its file), ending with
  ``stack@<engine version>``;
* when the decision has warnings (and ``config.jobLogWarnings`` is on): an agent ``environment`` hook
  that prints them at the top of the Buildkite job log. The hook is the pod template annotation
  ``policy.agent-stack.dev/job-log-warnings``, projected into the first bootstrap container (the
  checkout container, else the first command container) as a file by a ``downwardAPI`` volume, and
  announced to the agent with ``BUILDKITE_ADDITIONAL_HOOKS_PATHS`` (agent v3.89.0 or later; an
  older agent ignores it and the warnings stay in the annotation and the controller log).
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


def finish_job(
    manifest: JSONObject,
    trace: Sequence[TraceRecord],
    config: Mapping[str, JSON],
    digests: Mapping[str, str],
    warnings: Sequence[PolicyWarning],
    version: str,
) -> tuple[JSONObject, list[Change]]:
    """The finished Job and the changes the finishing step made (absolute paths, in order)."""
    changes: list[Change] = []
    result = manifest
    namespace = config.get("namespace")
    if isinstance(namespace, str):
        result = _set(result, (*_JOB_METADATA, "namespace"), namespace, changes)
    controller_id = config.get("id")
    if isinstance(controller_id, str) and controller_id:
        for metadata in (_JOB_METADATA, _TEMPLATE_METADATA):
            result = _set(result, (*metadata, "labels", CONTROLLER_ID_LABEL), controller_id, changes)
    if warnings and config.get("jobLogWarnings", True) is not False:
        result = _add_warnings_hook(result, warnings, changes)
    changed_by = _changed_by(trace, digests, version)
    result = _set(result, (*_JOB_METADATA, "annotations", CHANGED_BY_ANNOTATION), changed_by, changes)
    return result, changes


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
    shell-quoted, as ``policy/rule: message``."""
    count = len(warnings)
    heading = f"+++ :warning: agent-stack-policy: {count} warning{'' if count == 1 else 's'}"
    lines = [
        f"# {WARNINGS_HOOK_ANNOTATION}: the policy engine's warnings about this job, first in its log",
        f"printf '%s\\n' {shell_quote(heading)}",
    ]
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
