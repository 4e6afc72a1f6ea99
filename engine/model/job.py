"""The Buildkite command job as the GraphQL API returns it, and the facts policies read from it.

The input format is Buildkite's own wire shape (a ``JobTypeCommand`` node): ``uuid``, ``command``,
``env`` (a list of ``K=V`` strings), ``agentQueryRules`` (a list of ``k=v``), ``scheduledAt``, an
optional ``priority``, and the job's ``pipeline { slug name repository { url } }``,
``build { number branch commit source { name } message }`` and ``step { key }``. Using the wire shape
means a fixture can be pasted from a real API response and the controller needs no translation step.

Who a job belongs to is a fact only Buildkite can state: the ``pipeline``, ``build`` and ``step``
roots policies read come from those GraphQL objects and never from the job's env, which the pipeline
author writes (appending ``BUILDKITE_PIPELINE_SLUG=payments-api`` must not make a job look like
another pipeline's). The env stays readable as ``job.env``, for what it is: the author's say-so.

Two kinds of problems are kept apart on purpose:

* a document that is not a job at all (not an object, wrong types, no ``uuid``, an env entry without
  ``=``) raises :class:`JobInputError`: nothing sensible can be evaluated;
* a well-formed job whose ``BUILDKITE_PLUGINS`` is unusable is still a job: the problem is recorded in
  the facts (``pluginsError``, ``kubernetesPluginError``) and the default policies turn it into a
  denial with the message the Buildkite job is failed with, so an admin can see and change that rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.model.acquisition_token import acquisition_token_secret_name
from engine.model.jsonvalue import JSON, JSONObject
from engine.model.limits import (
    MAX_JOB_BYTES,
    MAX_PLUGINS_BYTES,
    json_problem,
    refuse_constant,
    size_in_bytes,
)
from engine.model.plugin import KUBERNETES_PLUGIN_KEY, check_plugin, plugin_warnings

ROLE_KEY = "$role"
"""The key the engine marks a container's role with while it builds a Job; input may not carry it."""

# The trusted roots and the wire fields they come from (GraphQL ``JobTypeCommand`` node). Buildkite
# fills these in; the job's env cannot change them.
_PIPELINE_FIELDS = ("slug", "name")
_BUILD_STRING_FIELDS = ("branch", "commit", "message")


class JobInputError(ValueError):
    """The document is not a Buildkite command job. ``problems`` holds one ``field: message`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class BuildkiteJob:
    """One Buildkite command job, validated from its wire shape; ``env`` keeps the API's order."""

    uuid: str
    command: str
    env: tuple[tuple[str, str], ...]
    agent_query_rules: tuple[str, ...]
    scheduled_at: str | None = None
    priority: int | None = None
    pipeline: JSONObject = field(default_factory=dict)
    """Trusted: ``slug``, ``name``, ``repository`` (the URL), each only when Buildkite gave it."""
    build: JSONObject = field(default_factory=dict)
    """Trusted: ``number``, ``branch``, ``commit``, ``source`` (its name), ``message``."""
    step: JSONObject = field(default_factory=dict)
    """Trusted: ``key`` (the step key the pipeline gave, when it gave one)."""
    raw: JSONObject = field(default_factory=dict, compare=False, repr=False)

    @property
    def env_map(self) -> dict[str, str]:
        """Env as a map; a repeated name keeps its last value, as a shell would."""
        return dict(self.env)


def parse_job(data: JSON) -> BuildkiteJob:
    """Validate a wire-shape job document; raise :class:`JobInputError` listing every problem."""
    if isinstance(data, Mapping) and isinstance(data.get("node"), Mapping):
        data = data["node"]  # accept a GraphQL edge as pasted from an API response
    if not isinstance(data, Mapping):
        raise JobInputError([f"job: expected an object, got {_kind(data)}"])
    problems: list[str] = []
    uuid = data.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        problems.append(
            "uuid: " + ("is required" if uuid is None else f"expected a string, got {_kind(uuid)}")
        )
    command = data.get("command", "")
    if command is None:
        command = ""
    if not isinstance(command, str):
        problems.append(f"command: expected a string, got {_kind(command)}")
    env = _parse_env(data.get("env"), problems)
    rules = _string_list(data.get("agentQueryRules"), "agentQueryRules", problems)
    scheduled_at = data.get("scheduledAt")
    if scheduled_at is not None and not isinstance(scheduled_at, str):
        problems.append(f"scheduledAt: expected a string, got {_kind(scheduled_at)}")
    priority = data.get("priority")
    if isinstance(priority, Mapping):  # the API nests it: priority { number }
        priority = priority.get("number")
    if priority is not None and not _is_int64(priority):
        problems.append(f"priority: expected a 64-bit integer, got {_kind(priority)}")
    pipeline = _parse_pipeline(data.get("pipeline"), problems)
    build = _parse_build(data.get("build"), problems)
    step = _parse_step(data.get("step"), problems)
    if problems:
        raise JobInputError(problems)
    return BuildkiteJob(
        uuid=str(uuid),
        command=str(command),
        env=env,
        agent_query_rules=tuple(rules),
        scheduled_at=scheduled_at,
        priority=priority,
        pipeline=pipeline,
        build=build,
        step=step,
        raw=dict(data),
    )


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _object(value: JSON, field_name: str, problems: list[str]) -> Mapping[str, JSON] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(f"{field_name}: expected an object, got {_kind(value)}")
        return None
    return value


def _optional_string(
    data: Mapping[str, JSON], key: str, field_name: str, out: dict[str, JSON], problems: list[str]
) -> None:
    value = data.get(key)
    if value is None:
        return
    if isinstance(value, str):
        out[key] = value
    else:
        problems.append(f"{field_name}.{key}: expected a string, got {_kind(value)}")


def _parse_pipeline(value: JSON, problems: list[str]) -> dict[str, JSON]:
    """``pipeline { slug name repository { url } }`` → ``{slug, name, repository}`` (the URL)."""
    data = _object(value, "pipeline", problems)
    out: dict[str, JSON] = {}
    if data is None:
        return out
    for key in _PIPELINE_FIELDS:
        _optional_string(data, key, "pipeline", out, problems)
    repository = _object(data.get("repository"), "pipeline.repository", problems)
    if repository is not None:
        holder: dict[str, JSON] = {}
        _optional_string(repository, "url", "pipeline.repository", holder, problems)
        if "url" in holder:
            out["repository"] = holder["url"]
    return out


def _parse_build(value: JSON, problems: list[str]) -> dict[str, JSON]:
    """``build { number branch commit source { name } message }`` → the ``build`` root."""
    data = _object(value, "build", problems)
    out: dict[str, JSON] = {}
    if data is None:
        return out
    number = data.get("number")
    if number is not None:
        if _is_int64(number):
            out["number"] = number
        else:
            problems.append(f"build.number: expected a 64-bit integer, got {_kind(number)}")
    for key in _BUILD_STRING_FIELDS:
        _optional_string(data, key, "build", out, problems)
    source = data.get("source")
    if isinstance(source, str):  # tolerated for hand-written fixtures; the API nests it: source { name }
        out["source"] = source
    else:
        source_object = _object(source, "build.source", problems)
        if source_object is not None:
            holder: dict[str, JSON] = {}
            _optional_string(source_object, "name", "build.source", holder, problems)
            if "name" in holder:
                out["source"] = holder["name"]
    return out


def _parse_step(value: JSON, problems: list[str]) -> dict[str, JSON]:
    """``step { key }`` (``null`` for a job without a step record) → the ``step`` root."""
    data = _object(value, "step", problems)
    out: dict[str, JSON] = {}
    if data is not None:
        _optional_string(data, "key", "step", out, problems)
    return out


def _parse_env(value: JSON, problems: list[str]) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):  # tolerate a map (hand-written fixtures)
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        for key in bad:
            problems.append(f"env.{key}: expected a string value, got {_kind(value[key])}")
        return tuple((str(k), str(v)) for k, v in value.items() if isinstance(v, str))
    if not isinstance(value, list):
        problems.append(f"env: expected a list of K=V strings, got {_kind(value)}")
        return ()
    pairs: list[tuple[str, str]] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, str):
            problems.append(f"env[{index}]: expected a K=V string, got {_kind(entry)}")
            continue
        name, sep, val = entry.partition("=")
        if not sep or not name:
            shown = entry if len(entry) <= 40 else entry[:37] + "..."
            problems.append(f'env[{index}]: entry "{shown}" is not of the form NAME=VALUE')
            continue
        pairs.append((name, val))
    return tuple(pairs)


def _string_list(value: JSON, field_name: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{field_name}: expected a list of strings, got {_kind(value)}")
        return []
    out: list[str] = []
    for index, entry in enumerate(value):
        if isinstance(entry, str):
            out.append(entry)
        else:
            problems.append(f"{field_name}[{index}]: expected a string, got {_kind(entry)}")
    return out


def _kind(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class PluginFacts:
    """What ``BUILDKITE_PLUGINS`` says, split the way the stack needs it."""

    kubernetes: JSON = None
    has_kubernetes: bool = False
    others: tuple[JSONObject, ...] = ()
    others_json: str = ""
    plugins_error: str | None = None
    kubernetes_error: str | None = None
    kubernetes_warnings: tuple[str, ...] = ()


def split_plugins(raw: str | None, *, head: bool = False) -> PluginFacts:
    """Decode ``BUILDKITE_PLUGINS`` into the kubernetes plugin and the others (reference §2.1).

    Several kubernetes entries merge key by key, later entries winning, like upstream's repeated
    decoding into one struct. The other plugins are re-serialised compactly with sorted keys so the
    env var is byte-for-byte deterministic.

    ``head`` decodes the kubernetes plugin as agent-stack-k8s v0.47 does (its later fields known; see
    :func:`engine.model.plugin.check_plugin`), for the upstream-v0.47 profile.

    Input beyond :mod:`engine.model.limits` (too large, too deep, numbers outside 64 bits) is a
    ``plugins_error`` found before anything recursive touches it, and a kubernetes config carrying the
    engine's own ``$role`` key is a ``kubernetes_error``: that key must only ever mean what the stack's
    policies gave a container.
    """
    if raw is None or raw == "":
        return PluginFacts()
    size = size_in_bytes(raw)
    if size > MAX_PLUGINS_BYTES:
        return PluginFacts(
            plugins_error=f"failed parsing plugins: BUILDKITE_PLUGINS is {size} bytes; "
            f"at most {MAX_PLUGINS_BYTES} are accepted"
        )
    try:
        decoded = json.loads(raw, parse_constant=refuse_constant)
    except RecursionError:
        return PluginFacts(plugins_error="failed parsing plugins: the JSON is nested too deeply")
    except ValueError as exc:
        return PluginFacts(plugins_error=f"failed parsing plugins: {exc}")
    problem = json_problem(decoded)
    if problem is not None:
        return PluginFacts(plugins_error=f"failed parsing plugins: {problem}")
    if not isinstance(decoded, list):
        return PluginFacts(
            plugins_error=f"failed parsing plugins: expected a JSON array, got {_kind(decoded)}"
        )
    kubernetes: dict[str, Any] | None = None
    has_kubernetes = False
    others: list[JSONObject] = []
    for entry in decoded:
        if not isinstance(entry, dict) or len(entry) != 1:
            shown = json.dumps(entry, sort_keys=True, separators=(",", ":"))
            return PluginFacts(plugins_error=f"found invalid plugin: {shown}")
        ((key, config),) = entry.items()
        if _is_kubernetes_key(key):
            has_kubernetes = True
            if config is None:
                continue
            if not isinstance(config, dict):
                return PluginFacts(
                    has_kubernetes=True,
                    kubernetes_error="failed parsing Kubernetes plugin: expected an object, got "
                    + _kind(config),
                )
            kubernetes = {**(kubernetes or {}), **config}
        else:
            others.append(entry)
    reserved = (
        json_problem(kubernetes, frozenset({ROLE_KEY}))
        # Only a raw text holding the key, literally or through a \u escape, can decode to it.
        if kubernetes is not None and (f'"{ROLE_KEY}"' in raw or "\\u" in raw)
        else None
    )
    if reserved is not None:
        return PluginFacts(
            has_kubernetes=True, kubernetes_error=f"failed parsing Kubernetes plugin: {reserved}"
        )
    problems = check_plugin(kubernetes, head=head) if kubernetes is not None else []
    others_json = json.dumps(others, sort_keys=True, separators=(",", ":")) if others else ""
    return PluginFacts(
        kubernetes=kubernetes if not problems else None,
        has_kubernetes=has_kubernetes,
        others=tuple(others),
        others_json=others_json,
        kubernetes_error=("failed parsing Kubernetes plugin: " + "; ".join(problems)) if problems else None,
        kubernetes_warnings=tuple(plugin_warnings(kubernetes, head=head))
        if kubernetes is not None and not problems
        else (),
    )


def job_size(job: BuildkiteJob) -> int:
    """Bytes of the job's env (names and values) and command: what gets copied into the pod."""
    return size_in_bytes(job.command) + sum(size_in_bytes(k) + size_in_bytes(v) + 1 for k, v in job.env)


def _is_kubernetes_key(key: str) -> bool:
    base = key.split("#", 1)[0]
    return base in (KUBERNETES_PLUGIN_KEY, "kubernetes")


def job_facts(job: BuildkiteJob, *, head: bool = False) -> dict[str, JSON]:
    """The expression-context roots derived from one job: ``job``, ``tags``, ``pipeline``, ``build``,
    ``step`` and ``plugin``. Computed once per job; the engine never re-derives them. ``head``: the
    plugin is decoded as agent-stack-k8s v0.47 does (the upstream-v0.47 profile).

    ``pipeline``, ``build`` and ``step`` are Buildkite's fields of the job (see the module docstring);
    everything else here is the pipeline author's input."""
    env = job.env_map
    plugins = split_plugins(env.get("BUILDKITE_PLUGINS"), head=head)
    tags: dict[str, str] = {}
    for rule in job.agent_query_rules:
        key, sep, value = rule.partition("=")
        if sep and key:
            tags[key] = value
    job_view: dict[str, JSON] = {
        "uuid": job.uuid,
        "command": job.command,
        "env": env,
        "envList": [{"name": name, "value": value} for name, value in job.env],
        "agentQueryRules": list(job.agent_query_rules),
        "hasKubernetesPlugin": plugins.has_kubernetes,
        "otherPlugins": list(plugins.others),
        "otherPluginsJson": plugins.others_json,
        "acquisitionTokenSecret": acquisition_token_secret_name(job.uuid),
    }
    if job.scheduled_at is not None:
        job_view["scheduledAt"] = job.scheduled_at
    if job.priority is not None:
        job_view["priority"] = job.priority
    if plugins.plugins_error is not None:
        job_view["pluginsError"] = plugins.plugins_error
    if plugins.kubernetes_error is not None:
        job_view["kubernetesPluginError"] = plugins.kubernetes_error
    if plugins.kubernetes_warnings:
        job_view["kubernetesPluginWarnings"] = list(plugins.kubernetes_warnings)
    size = job_size(job)
    if size > MAX_JOB_BYTES:
        job_view["inputError"] = (
            f"the job's env and command are {size} bytes; at most {MAX_JOB_BYTES} are accepted"
        )
    return {
        "job": job_view,
        "tags": tags,
        "pipeline": dict(job.pipeline),
        "build": dict(job.build),
        "step": dict(job.step),
        "plugin": plugins.kubernetes,
    }


def pod_template_name(job: BuildkiteJob) -> str | None:
    """The PodTemplate the job's kubernetes plugin names (``podTemplate``, used when it gives no
    ``podSpec``), or ``None``: what a controller reads from its namespace before evaluating the job."""
    plugin = split_plugins(job.env_map.get("BUILDKITE_PLUGINS"), head=True).kubernetes
    if not isinstance(plugin, dict) or plugin.get("podSpec") is not None:
        return None
    name = plugin.get("podTemplate")
    return name if isinstance(name, str) and name else None
