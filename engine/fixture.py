"""``engine fixture UUID``: a real Buildkite job, fetched the way the controller reads jobs, as a fixture.

The job comes from the GraphQL API with the controller's token and endpoint (config file, then the
environment, as ``engine run`` resolves them) and is written in the wire shape ``engine test --job``
and suites read. Env values whose names match the redaction patterns are replaced with
``[REDACTED]`` unless ``--raw``: the patterns are the ones the stack itself gives the agent
(``BUILDKITE_REDACTED_VARS`` of the Job the default policies and this config build for the job),
else the agent's defaults plus ``additional-redacted-vars``. A fixture checked into a repository
must not carry a pipeline's secrets.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import Mapping, Sequence

from engine.buildkite.errors import BuildkiteAPIError
from engine.buildkite.graphql import BuildkiteGraphQL
from engine.core.evaluate import evaluate
from engine.model.config import ControllerConfig
from engine.model.job import JobInputError, parse_job
from engine.model.jsonvalue import JSON, JSONObject
from engine.policy.loader import load_policies

REDACTED = "[REDACTED]"
AGENT_DEFAULT_REDACTED_VARS = (
    "*_PASSWORD",
    "*_SECRET",
    "*_TOKEN",
    "*_PRIVATE_KEY",
    "*_ACCESS_KEY",
    "*_SECRET_KEY",
    "*_CONNECTION_STRING",
)
"""The agent's own defaults (v3.87), used when the stack's Job does not say (a denied job)."""


class FixtureError(ValueError):
    """The job could not be fetched or is not a command job; the message is one line."""


async def fetch_job(config: ControllerConfig, uuid: str) -> JSONObject:
    """The job node from Buildkite, or :class:`FixtureError`."""
    if not config.buildkite_token:
        raise FixtureError("buildkite-token: required to fetch a job (config file, or env BUILDKITE_TOKEN)")
    try:
        async with BuildkiteGraphQL(config.graphql_endpoint, config.buildkite_token) as client:
            node = await client.job_fixture(uuid)
    except BuildkiteAPIError as exc:
        raise FixtureError(str(exc)) from None
    if node is None:
        raise FixtureError(f"no command job with UUID {uuid}")
    return node


def redaction_patterns(node: JSONObject, config: ControllerConfig) -> list[str]:
    """What the stack would tell the agent to redact for this job."""
    try:
        job = parse_job(node)
    except JobInputError:
        return [*AGENT_DEFAULT_REDACTED_VARS, *config.additional_redacted_vars]
    decision = evaluate(load_policies([]), job, config.expression_view())
    spec = decision.manifest.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) if isinstance(spec, dict) else []:
        for entry in container.get("env", []) if isinstance(container, dict) else []:
            if isinstance(entry, dict) and entry.get("name") == "BUILDKITE_REDACTED_VARS":
                return [p for p in str(entry.get("value", "")).split(",") if p]
    return [*AGENT_DEFAULT_REDACTED_VARS, *config.additional_redacted_vars]


def redact_env(node: JSONObject, patterns: Sequence[str]) -> JSONObject:
    """A copy of ``node`` whose env entries with a matching name have the value ``[REDACTED]``."""
    env = node.get("env")
    if not isinstance(env, list):
        return dict(node)
    redacted: list[JSON] = []
    for entry in env:
        kept = entry
        if isinstance(entry, str) and "=" in entry:
            name, _, value = entry.partition("=")
            if value and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                kept = f"{name}={REDACTED}"
        redacted.append(kept)
    return {**node, "env": redacted}


def fixture_text(config: ControllerConfig, uuid: str, *, raw: bool = False) -> str:
    """The fixture JSON for job ``uuid`` (see the module docstring)."""
    node = asyncio.run(fetch_job(config, uuid))
    if not raw:
        node = redact_env(node, redaction_patterns(node, config))
    return json.dumps(_ordered(node), indent=2) + "\n"


def _ordered(node: Mapping[str, JSON]) -> JSONObject:
    """The wire fields first, in the order the controller's own fixtures use."""
    first = ("uuid", "command", "env", "agentQueryRules", "scheduledAt", "priority")
    out: JSONObject = {key: node[key] for key in first if key in node}
    out.update({key: value for key, value in node.items() if key not in out})
    return out
