"""``engine fixture UUID``: a real Buildkite job, in the shape the controller reads jobs, as a fixture.

The job comes from the GraphQL API (a read-only API token is enough) and is written in the wire shape
``engine test --job`` and suites read. In the GraphQL mode the token and endpoint are the controller's
(config file, then the environment, as ``engine run`` resolves them). In the Stacks API mode the
controller has no GraphQL token, and the Stacks API shows a job's details only to the stack that
reserved it: reserving a job to read it would take it from the controller until the reservation
expires. So the token then comes from ``BUILDKITE_TOKEN`` (and the endpoint from
``GRAPHQL_ENDPOINT``) in the environment alone, without changing the config's mode.

Env values whose names match the redaction patterns are replaced with ``[REDACTED]`` unless
``--raw``: the patterns are the ones the stack itself gives the agent (``BUILDKITE_REDACTED_VARS`` of
the Job the default policies and this config build for the job), else the agent's defaults plus
``additional-redacted-vars``. A fixture checked into a repository must not carry a pipeline's secrets.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.buildkite.errors import BuildkiteAPIError
from engine.buildkite.graphql import BuildkiteGraphQL
from engine.core.evaluate import evaluate
from engine.model.config import ControllerConfig, env_var_name
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


@dataclass(frozen=True)
class GraphQLAccess:
    """Where and with what the fixture is read (see the module docstring)."""

    endpoint: str
    token: str


def graphql_access(config: ControllerConfig, env: Mapping[str, str]) -> GraphQLAccess:
    """The GraphQL endpoint and token: the environment's (``BUILDKITE_TOKEN``, ``GRAPHQL_ENDPOINT``)
    over the config's, as ``engine run`` takes them; or :class:`FixtureError` saying where to put the
    token. ``config`` is resolved without those variables, so they never change its mode."""
    token = env.get(env_var_name("buildkite-token")) or config.buildkite_token
    if token:
        endpoint = env.get(env_var_name("graphql-endpoint")) or config.graphql_endpoint
        return GraphQLAccess(endpoint, token)
    if config.mode().name == "graphql":
        raise FixtureError("buildkite-token: required to fetch a job (config file, or env BUILDKITE_TOKEN)")
    raise FixtureError(
        "the config runs the Stacks API mode, which reads a job's details only after reserving it "
        "(that would take it from the controller): set env BUILDKITE_TOKEN to a GraphQL API token "
        "(read-only is enough) to fetch it through GraphQL"
    )


async def fetch_job(access: GraphQLAccess, uuid: str) -> JSONObject:
    """The job node from Buildkite, or :class:`FixtureError`."""
    try:
        async with BuildkiteGraphQL(access.endpoint, access.token) as client:
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


def fixture_text(config: ControllerConfig, access: GraphQLAccess, uuid: str, *, raw: bool = False) -> str:
    """The fixture JSON for job ``uuid`` (see the module docstring)."""
    node = asyncio.run(fetch_job(access, uuid))
    if not raw:
        node = redact_env(node, redaction_patterns(node, config))
    return json.dumps(_ordered(node), indent=2) + "\n"


def _ordered(node: Mapping[str, JSON]) -> JSONObject:
    """The wire fields first, in the order the controller's own fixtures use."""
    first = ("uuid", "command", "env", "agentQueryRules", "scheduledAt", "priority")
    out: JSONObject = {key: node[key] for key in first if key in node}
    out.update({key: value for key, value in node.items() if key not in out})
    return out
