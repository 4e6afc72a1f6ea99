"""A pipeline command step → the job node the controller would receive from Buildkite's GraphQL API.

The result is the wire shape ``engine test --job`` reads (``uuid``, ``command``, ``env`` as ``K=V``
strings, ``agentQueryRules``, ``scheduledAt``, ``priority``), plus the trusted facts the API also
returns about the job (``label``, ``step {key}``, ``pipeline {slug name repository {url}}``,
``build {number branch commit message source {name}}``), so a fixture written by hand and one fetched
with ``engine fixture`` look alike.

What Buildkite does, and this reproduces:

* ``command``/``commands`` (a string or a list) join with newlines into ``command`` and
  ``BUILDKITE_COMMAND``;
* ``agents`` (a map or ``k=v`` list) at pipeline level, then step level (a step's key wins) become
  ``agentQueryRules``; a list that gives a name twice keeps both, as Buildkite does;
* ``env`` at pipeline level, then step level (a step's value wins), come after the ``BUILDKITE_*``
  variables Buildkite sets; a name already set is replaced in place;
* ``plugins`` become ``BUILDKITE_PLUGINS`` (:mod:`engine.pipeline.plugins`);
* ``label``/``name``, ``key``, ``artifact_paths`` (joined with ``;``), ``timeout_in_minutes``,
  ``parallelism`` (the first of the parallel jobs) and ``priority`` fill the matching variables;
* ``image`` (the step's, else the pipeline's) becomes ``BUILDKITE_IMAGE``, which agent-stack-k8s v0.30+
  (the upstream-v0.47 profile) makes the image of every command container.

Pipeline variables (``$VAR``) are not interpolated, as with ``pipeline upload --no-interpolation``.
Identifiers are derived from the organization, pipeline, build number and step position, so the same
inputs always give the same job.
"""

from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass, replace
from typing import Any

from engine.model.jsonvalue import JSON, JSONObject, render_path
from engine.pipeline.plugins import PluginsError, canonical_plugins, plugins_env
from engine.pipeline.steps import Pipeline, PipelineStep, StepError, step_map

SCHEDULED_AT = "2025-01-01T00:00:00Z"


class PipelineJobError(ValueError):
    """A step that cannot become a job; the message names the field."""


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What Buildkite knows about the build a step runs in; every field can be set on the command line
    (``--org``, ``--pipeline-slug``, ``--branch``, ``--commit``) or in a suite case (``buildkite:``)."""

    org: str = "my-org"
    pipeline: str = "my-pipeline"
    pipeline_name: str = ""
    repository: str = ""
    branch: str = "main"
    commit: str = "HEAD"
    message: str = "Dry run"
    source: str = "ui"
    build_number: int = 1
    creator: str = "Dry Run"
    creator_email: str = "dry-run@example.com"
    tag: str = ""

    def with_overrides(self, **values: str | int | None) -> BuildContext:
        """A copy with the given fields set; ``None`` leaves a field as it is."""
        changes: dict[str, Any] = {name: value for name, value in values.items() if value is not None}
        return replace(self, **changes)

    @property
    def repository_url(self) -> str:
        return self.repository or f"git@github.com:{self.org}/{self.pipeline}.git"

    @property
    def build_url(self) -> str:
        return f"https://buildkite.com/{self.org}/{self.pipeline}/builds/{self.build_number}"


def job_from_step(pipeline: Pipeline, step: PipelineStep, context: BuildContext | None = None) -> JSONObject:
    """The GraphQL job node for ``step``; raises :class:`PipelineJobError` naming the bad field."""
    context = context or BuildContext()
    fields = step_map(step)
    where = render_path(step.path)
    seed = f"{context.org}/{context.pipeline}/{context.build_number}/{where}"
    job_uuid = str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"agent-stack-policy:job:{seed}"))
    build_uuid = str(
        uuid_module.uuid5(
            uuid_module.NAMESPACE_URL,
            f"agent-stack-policy:build:{context.org}/{context.pipeline}/{context.build_number}",
        )
    )
    pipeline_uuid = str(
        uuid_module.uuid5(
            uuid_module.NAMESPACE_URL, f"agent-stack-policy:pipeline:{context.org}/{context.pipeline}"
        )
    )
    command = _command(fields, where)
    label = step.label
    key = step.key
    try:
        plugins = canonical_plugins(fields.get("plugins"), f"{where}.plugins")
    except PluginsError as exc:
        raise PipelineJobError(str(exc)) from None

    env: dict[str, str] = {
        "BUILDKITE": "true",
        "CI": "true",
        "BUILDKITE_ORGANIZATION_SLUG": context.org,
        "BUILDKITE_PIPELINE_SLUG": context.pipeline,
        "BUILDKITE_PIPELINE_NAME": context.pipeline_name or context.pipeline,
        "BUILDKITE_PIPELINE_ID": pipeline_uuid,
        "BUILDKITE_PIPELINE_PROVIDER": "github",
        "BUILDKITE_PIPELINE_DEFAULT_BRANCH": "main",
        "BUILDKITE_REPO": context.repository_url,
        "BUILDKITE_BUILD_ID": build_uuid,
        "BUILDKITE_BUILD_NUMBER": str(context.build_number),
        "BUILDKITE_BUILD_URL": context.build_url,
        "BUILDKITE_BRANCH": context.branch,
        "BUILDKITE_TAG": context.tag,
        "BUILDKITE_COMMIT": context.commit,
        "BUILDKITE_MESSAGE": context.message,
        "BUILDKITE_SOURCE": context.source,
        "BUILDKITE_BUILD_CREATOR": context.creator,
        "BUILDKITE_BUILD_CREATOR_EMAIL": context.creator_email,
        "BUILDKITE_PULL_REQUEST": "false",
        "BUILDKITE_JOB_ID": job_uuid,
        "BUILDKITE_STEP_ID": str(
            uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"agent-stack-policy:step:{seed}")
        ),
    }
    if key is not None:
        env["BUILDKITE_STEP_KEY"] = key
    env["BUILDKITE_LABEL"] = label if label is not None else command
    env["BUILDKITE_COMMAND"] = command
    env["BUILDKITE_ARTIFACT_PATHS"] = _artifact_paths(fields.get("artifact_paths"), where)
    env["BUILDKITE_TIMEOUT"] = _timeout(fields.get("timeout_in_minutes"), where)
    env["BUILDKITE_RETRY_COUNT"] = "0"
    parallelism = fields.get("parallelism")
    if parallelism is not None:
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
            raise PipelineJobError(f"{where}.parallelism: expected a positive integer, got {parallelism!r}")
        env["BUILDKITE_PARALLEL_JOB"] = "0"
        env["BUILDKITE_PARALLEL_JOB_COUNT"] = str(parallelism)
    if plugins:
        env["BUILDKITE_PLUGINS"] = plugins_env(plugins)
    image = fields.get("image", pipeline.image)
    if image is not None:
        if not isinstance(image, str) or not image:
            raise PipelineJobError(f"{where}.image: expected an image name, got {image!r}")
        env["BUILDKITE_IMAGE"] = image
    for source, value in ((pipeline.env, "env"), (fields.get("env"), f"{where}.env")):
        env.update(_env_map(source, value))

    agents = _merged_agents(
        _agents(pipeline.agents, "agents"), _agents(fields.get("agents"), f"{where}.agents")
    )
    priority = fields.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise PipelineJobError(f"{where}.priority: expected an integer, got {priority!r}")

    node: JSONObject = {
        "uuid": job_uuid,
        "command": command,
        "env": [f"{name}={value}" for name, value in env.items()],
        "agentQueryRules": [f"{name}={value}" for name, value in agents],
        "scheduledAt": SCHEDULED_AT,
        "priority": {"number": priority},
        "label": label,
        "step": {"key": key},
        "pipeline": {
            "slug": context.pipeline,
            "name": context.pipeline_name or context.pipeline,
            "repository": {"url": context.repository_url},
        },
        "build": {
            "number": context.build_number,
            "branch": context.branch,
            "commit": context.commit,
            "message": context.message,
            "source": {"name": context.source},
        },
    }
    return node


def _command(fields: JSONObject, where: str) -> str:
    for name in ("command", "commands"):
        if name not in fields or fields[name] is None:
            continue
        value = fields[name]
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(line, str) for line in value):
            return "\n".join(value)
        raise PipelineJobError(f"{where}.{name}: expected a string or a list of strings")
    return ""


def _artifact_paths(value: JSON, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ";".join(value)
    raise PipelineJobError(f"{where}.artifact_paths: expected a string or a list of strings")


def _timeout(value: JSON, where: str) -> str:
    if value is None:
        return "false"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    raise PipelineJobError(f"{where}.timeout_in_minutes: expected a whole number of minutes, got {value!r}")


def _env_map(value: JSON, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(name): _scalar_text(item, f"{where}.{name}") for name, item in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for index, entry in enumerate(value):
            if not isinstance(entry, str) or "=" not in entry or entry.startswith("="):
                raise PipelineJobError(f"{where}[{index}]: expected a NAME=VALUE string")
            name, _, text = entry.partition("=")
            out[name] = text
        return out
    raise PipelineJobError(f"{where}: expected a map of variables, got {type(value).__name__}")


def _agents(value: JSON, where: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` tags of an ``agents`` block in order; a list keeps a name given twice, as
    Buildkite's agent query rules do (the default policy agent-tags refuses such a job, so a dry run
    must show it too)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [(str(name), _scalar_text(item, f"{where}.{name}")) for name, item in value.items()]
    if isinstance(value, list):
        out: list[tuple[str, str]] = []
        for index, entry in enumerate(value):
            if not isinstance(entry, str):
                raise PipelineJobError(f"{where}[{index}]: expected a key=value string")
            name, sep, text = entry.partition("=")
            out.append((name, text if sep else "true"))
        return out
    if isinstance(value, str):
        return _agents(value.split(","), where)
    raise PipelineJobError(f"{where}: expected a map of agent tags, got {type(value).__name__}")


def _merged_agents(pipeline: list[tuple[str, str]], step: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pipeline's tags with the step's: a name the step gives replaces the pipeline's in its place
    (by every entry the step gives for it), the step's other names follow in the step's order."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for name, value in step:
        by_name.setdefault(name, []).append((name, value))
    merged: list[tuple[str, str]] = []
    for name, value in pipeline:
        if name not in by_name:
            merged.append((name, value))
        elif not any(entry[0] == name for entry in merged):
            merged.extend(by_name[name])
    placed = {name for name, _ in merged}
    merged.extend(entry for entry in step if entry[0] not in placed)
    return merged


def _scalar_text(value: JSON, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    raise PipelineJobError(f"{where}: expected a string, a number or a boolean, got {type(value).__name__}")


__all__ = ["BuildContext", "PipelineJobError", "StepError", "job_from_step"]
