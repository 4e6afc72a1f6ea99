"""Stacks API jobs in the one document shape the engine reads (a GraphQL ``JobTypeCommand`` node).

The engine's job model (``engine.model.job``) and the policies read the GraphQL node's fields, so a
policy never asks which API fetched a job. In the Stacks API mode a job arrives in two parts:

* the **scheduled-jobs listing** (before reservation): ``id``, ``priority``, ``agent_query_rules``,
  ``scheduled_at`` and the trusted facts ``pipeline.slug``, ``build.number``, ``build.branch`` and
  ``step.key``: they become ``uuid``, ``priority { number }``, ``agentQueryRules``, ``scheduledAt``,
  ``pipeline { slug }``, ``build { number branch }`` and ``step { key }`` (``step: null`` when the
  step has no key, as GraphQL gives it);
* the **job's details** (after reservation): ``env`` (a map) and ``command``, which become ``env`` (a
  list of ``K=V`` in the API's order) and ``command``.

What the listing does not carry (the pipeline's name and repository, the build's commit, message and
source) is simply absent: the job's env has copies, but the env is the pipeline author's to set and
proves nothing, so those trusted fields stay unset in this mode (``docs/policies.md`` lists them).
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.model.jsonvalue import JSON, JSONObject


def listed_job_node(job: Mapping[str, JSON]) -> JSONObject:
    """The job document for one entry of the scheduled-jobs listing (no env or command yet)."""
    node: JSONObject = {"uuid": job.get("id"), "agentQueryRules": job.get("agent_query_rules") or []}
    if job.get("scheduled_at") is not None:
        node["scheduledAt"] = job["scheduled_at"]
    if job.get("priority") is not None:
        node["priority"] = {"number": job["priority"]}
    pipeline = _object(job.get("pipeline"))
    if pipeline is not None:
        node["pipeline"] = _picked(pipeline, ("slug",))
    build = _object(job.get("build"))
    if build is not None:
        node["build"] = _picked(build, ("number", "branch"))
    step = _object(job.get("step"))
    node["step"] = {"key": step["key"]} if step is not None and step.get("key") is not None else None
    return node


def with_details(node: Mapping[str, JSON], env: Mapping[str, str], command: str) -> JSONObject:
    """The listed job's document completed with its details (``env`` in the API's order)."""
    return {**node, "env": [f"{name}={value}" for name, value in env.items()], "command": command}


def _object(value: JSON) -> Mapping[str, JSON] | None:
    return value if isinstance(value, dict) else None


def _picked(data: Mapping[str, JSON], keys: tuple[str, ...]) -> JSONObject:
    return {key: data[key] for key in keys if data.get(key) is not None}
