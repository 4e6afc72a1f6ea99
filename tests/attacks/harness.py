"""Building attack jobs the way Buildkite delivers them, and running them through the public door.

An attack is a Buildkite job an untrusted pipeline author could cause: its command, its env (which
includes ``BUILDKITE_PLUGINS``, so the whole ``kubernetes`` plugin block) and its agent query rules.
Everything else on the job node is Buildkite's own data about the job (``pipeline``, ``build``,
``step``), which the author cannot forge; :class:`Facts` holds it, and :func:`job_node` keeps the env
Buildkite derives from it consistent, so an attack only ever *adds* to what Buildkite sent.

Jobs are evaluated exactly as ``engine test`` evaluates them: ``parse_job``, the controller config's
expression view, and ``evaluate(policies, job, config)``. Nothing here reads engine internals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from engine.core.compiler import PolicyError, PolicySet
from engine.core.evaluate import evaluate
from engine.model.config import ConfigError, parse_config
from engine.model.decision import Decision
from engine.model.job import JobInputError, parse_job
from engine.policy.loader import load_policies
from tests.attacks.oracle import containers_named, pod_spec_of

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "policies"
FIXTURE_POLICIES = Path(__file__).resolve().parent / "fixtures" / "policies"

PLUGIN_KEY = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"
UUID = "0193a0a7-7ac4-4000-8000-00000000a77a"
ALLOWED_IMAGE = "registry.example.com/ci/app:1"
EVIL_IMAGE = "docker.io/attacker/miner:latest"
AGENT_TOKEN_SECRET = "buildkite-agent-token"


@dataclass(frozen=True, slots=True)
class Facts:
    """Buildkite's own fields of the job node: who the job belongs to. The author cannot set these."""

    pipeline_slug: str = "web"
    pipeline_name: str = "Web"
    repository: str = "git@github.com:example/web.git"
    build_number: int = 42
    branch: str = "feature/login"
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    source: str = "webhook"
    message: str = "Fix the login form"
    step_key: str = "test"

    def node_fields(self) -> dict[str, Any]:
        """The trusted fields as the GraphQL API returns them on a ``JobTypeCommand`` node."""
        return {
            "pipeline": {
                "slug": self.pipeline_slug,
                "name": self.pipeline_name,
                "repository": {"url": self.repository},
            },
            "build": {
                "number": self.build_number,
                "branch": self.branch,
                "commit": self.commit,
                "source": {"name": self.source},
                "message": self.message,
            },
            "step": {"key": self.step_key},
        }

    def env(self) -> list[str]:
        """The env Buildkite itself derives from the same facts (consistent with the node)."""
        return [
            "BUILDKITE=true",
            "CI=true",
            "BUILDKITE_ORGANIZATION_SLUG=example",
            f"BUILDKITE_PIPELINE_SLUG={self.pipeline_slug}",
            f"BUILDKITE_PIPELINE_NAME={self.pipeline_name}",
            f"BUILDKITE_REPO={self.repository}",
            f"BUILDKITE_BUILD_NUMBER={self.build_number}",
            f"BUILDKITE_BUILD_URL=https://buildkite.com/example/{self.pipeline_slug}/builds/{self.build_number}",
            f"BUILDKITE_BRANCH={self.branch}",
            f"BUILDKITE_COMMIT={self.commit}",
            f"BUILDKITE_SOURCE={self.source}",
            f"BUILDKITE_MESSAGE={self.message}",
            f"BUILDKITE_STEP_KEY={self.step_key}",
            f"BUILDKITE_JOB_ID={UUID}",
        ]


DEFAULT_FACTS = Facts()
PAYMENTS_MAIN = Facts(pipeline_slug="payments-api", pipeline_name="Payments API", branch="main")


@dataclass(frozen=True, slots=True)
class Job:
    """One attack job: what the author controls, plus Buildkite's facts about it."""

    plugin: Any = None
    """The ``kubernetes`` plugin config (one entry under the canonical key), or ``None`` for no plugin."""
    plugins: Sequence[Any] | None = None
    """The whole ``BUILDKITE_PLUGINS`` list; replaces ``plugin`` when given."""
    plugins_json: str | None = None
    """The raw ``BUILDKITE_PLUGINS`` text; replaces both (duplicate keys, deep nesting, huge input)."""
    env: Sequence[str] = ()
    """Author env entries, appended after Buildkite's (so a repeated name comes last)."""
    tags: Sequence[str] = ("queue=kubernetes",)
    command: str = "make test"
    facts: Facts | None = field(default=DEFAULT_FACTS)
    """``None``: the node carries no trusted fields at all (the env still claims them)."""
    env_facts: Facts | None = None
    """Facts the *env* claims, when they differ from the node's (defaults to ``facts``)."""

    def node(self) -> dict[str, Any]:
        facts = self.facts or DEFAULT_FACTS
        env = (self.env_facts or facts).env()
        plugins_text = self.plugins_json
        if plugins_text is None and self.plugins is not None:
            plugins_text = json.dumps(list(self.plugins))
        if plugins_text is None and self.plugin is not None:
            plugins_text = json.dumps([{PLUGIN_KEY: self.plugin}])
        if plugins_text is not None:
            env.append(f"BUILDKITE_PLUGINS={plugins_text}")
        env.extend(self.env)
        node: dict[str, Any] = {
            "uuid": UUID,
            "command": self.command,
            "env": env,
            "agentQueryRules": list(self.tags),
            "scheduledAt": "2026-07-01T09:00:00Z",
            "priority": {"number": 0},
        }
        if self.facts is not None:
            node.update(self.facts.node_fields())
        return node


def example(name: str, *fallbacks: str) -> Path:
    """An example policy file by name; the first existing of ``name`` and ``fallbacks``."""
    for candidate in (name, *fallbacks):
        path = EXAMPLES / candidate
        if path.is_file():
            return path
    pytest.fail(f"example policy {name} does not exist")


def fixture_policy(name: str) -> Path:
    return FIXTURE_POLICIES / name


@cache
def _load(paths: tuple[str, ...]) -> PolicySet:
    return load_policies([Path(p) for p in paths])


def policies(*paths: Path) -> PolicySet:
    """The default policy set followed by ``paths``, loaded once per combination."""
    try:
        return _load(tuple(str(p) for p in paths))
    except PolicyError as exc:
        pytest.fail("policies do not load: " + "; ".join(exc.problems)[:2000])


def config_view(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The controller config's expression view, as ``engine test --config`` builds it."""
    try:
        return parse_config(dict(config or {}), "attack-config").expression_view()
    except ConfigError as exc:
        pytest.fail("the controller config is not accepted: " + "; ".join(exc.problems)[:2000])


def run(
    policy_set: PolicySet, job: Job | Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> Decision:
    """Evaluate one job through the public door; an exception is a failed attempt, not a crash."""
    decision = run_or_refuse(policy_set, job, config)
    if decision is None:
        pytest.fail("the job was refused as input, not evaluated")
    return decision


def run_or_refuse(
    policy_set: PolicySet, job: Job | Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> Decision | None:
    """Like :func:`run`, but ``None`` when ``parse_job`` refuses the node as not a job at all (a safe
    answer for a node Buildkite would never send, such as one without its trusted fields)."""
    node = job.node() if isinstance(job, Job) else dict(job)
    try:
        parsed = parse_job(node)
    except JobInputError:
        return None
    view = config_view(config)
    try:
        return evaluate(policy_set, parsed, view)
    except Exception as exc:
        pytest.fail(f"evaluate raised {type(exc).__name__}: {exc}"[:2000])


def require_admitted(decision: Decision) -> None:
    """Fail unless admitted, naming the denials (without rendering the whole decision)."""
    if not decision.admitted:
        pytest.fail("denied: " + "; ".join(d.render() for d in decision.denials)[:2000])


def require_denied(decision: Decision, detail: str = "") -> None:
    """Fail if admitted; ``detail`` says what the admitted pod got wrong."""
    if decision.admitted:
        pytest.fail(("admitted: " + detail if detail else "admitted")[:2000])


def pod(decision: Decision) -> dict[str, Any]:
    return pod_spec_of(decision.manifest)


def only_container(decision: Decision, name: str) -> dict[str, Any]:
    """The one container called ``name`` (any kind); fails when there is none or several."""
    found = containers_named(pod(decision), name)
    assert len(found) == 1, f"expected exactly one container named {name!r}, found {len(found)}"
    return found[0].container


def step_container(**fields: Any) -> dict[str, Any]:
    """A podSpec container on an allowed image (callers override ``image`` to attack the registry)."""
    return {"name": "app", "image": ALLOWED_IMAGE, **fields}
