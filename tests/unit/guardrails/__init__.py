"""Guardrail tests: a pipeline author's attempts, shaped as Buildkite would send them, through the engine.

Each helper builds what an author controls (the step's command, env, agent query rules and the whole
``kubernetes`` plugin block) around Buildkite's own trusted fields, and evaluates it the way the
controller and ``engine test`` do: the default policy set first, then the given policy paths.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from engine.cli import app
from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.model.config import parse_config
from engine.model.decision import Decision
from engine.model.job import BuildkiteJob, parse_job
from engine.policy.loader import load_policies

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "policies"
PLUGIN_KEY = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"
UUID = "0193b000-0000-4000-8000-0000000000aa"
ALLOWED_IMAGE = "registry.example.com/ci/golang:1.23"


def job_document(
    *,
    plugin: Any = None,
    plugins: Sequence[Any] | None = None,
    env: Iterable[str] = (),
    rules: Sequence[str] = ("queue=kubernetes",),
    pipeline: str = "web",
    branch: str = "feature",
    step_key: str | None = None,
    command: str = "make test",
) -> dict[str, Any]:
    """The wire-shape job node; ``plugin`` is the kubernetes plugin's config (``plugins`` the whole
    ``BUILDKITE_PLUGINS`` list instead), ``env`` is appended after Buildkite's own variables."""
    variables = [
        "BUILDKITE=true",
        f"BUILDKITE_PIPELINE_SLUG={pipeline}",
        f"BUILDKITE_BRANCH={branch}",
        "BUILDKITE_BUILD_NUMBER=7",
        f"BUILDKITE_BUILD_URL=https://buildkite.com/org/{pipeline}/builds/7",
        f"BUILDKITE_COMMAND={command}",
    ]
    if plugins is None and plugin is not None:
        plugins = [{PLUGIN_KEY: plugin}]
    if plugins is not None:
        variables.append("BUILDKITE_PLUGINS=" + json.dumps(plugins))
    return {
        "uuid": UUID,
        "command": command,
        "env": [*variables, *env],
        "agentQueryRules": list(rules),
        "scheduledAt": "2026-01-01T00:00:00Z",
        "pipeline": {"slug": pipeline, "name": pipeline, "repository": {"url": f"https://git/{pipeline}"}},
        "build": {
            "number": 7,
            "branch": branch,
            "commit": "abc",
            "source": {"name": "webhook"},
            "message": "m",
        },
        "step": None if step_key is None else {"key": step_key},
    }


def job(**fields: Any) -> BuildkiteJob:
    return parse_job(job_document(**fields))


@functools.cache
def policies(*paths: str) -> PolicySet:
    """The default set, then each path (relative to the repository root), as the controller loads them."""
    return load_policies([ROOT / path for path in paths])


def decide(buildkite_job: BuildkiteJob, *paths: str, config: dict[str, Any] | None = None) -> Decision:
    view = parse_config(config or {}, "test").expression_view()
    return evaluate(policies(*paths), buildkite_job, view)


def pod(decision: Decision) -> dict[str, Any]:
    spec: dict[str, Any] = decision.manifest["spec"]["template"]["spec"]
    return spec


def all_containers(decision: Decision) -> list[dict[str, Any]]:
    spec = pod(decision)
    return [
        *spec.get("initContainers", []),
        *spec.get("containers", []),
        *spec.get("ephemeralContainers", []),
    ]


def container(decision: Decision, name: str) -> dict[str, Any]:
    return next(c for c in all_containers(decision) if c.get("name") == name)


def effective_env(entry_owner: dict[str, Any], name: str) -> Any:
    """What Kubernetes gives the container for ``name``: the last ``env`` entry wins (value or
    valueFrom); ``None`` when no explicit entry exists."""
    found = [e for e in entry_owner.get("env", []) if e.get("name") == name]
    if not found:
        return None
    last = found[-1]
    return last.get("value", last.get("valueFrom"))


def denials(decision: Decision) -> list[str]:
    return [d.message for d in decision.denials]


def warnings(decision: Decision) -> list[str]:
    return [w.message for w in decision.warnings]


def engine_test(tmp_path: Path, document: dict[str, Any], *args: str) -> tuple[int, str, str]:
    """``engine test ARGS --job <document>``: exit code, stdout, stderr."""
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(document), encoding="utf-8")
    result = CliRunner().invoke(app, ["test", *args, "--job", str(job_file)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr
