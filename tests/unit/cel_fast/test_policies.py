"""The shipped policies are inside the fast subset, and agree with the ``cel`` library on real jobs.

Two checks: every expression in ``policies/*.yaml`` (``match``, ``when``, and each ``${{ }}`` in
variables, messages and patches, after the engine's ``vars.x`` rewrite) compiles without
``Unsupported``; and while the engine builds the example jobs with the example configs, every
evaluation it makes is repeated with the fast compiler, which must give the same value or fail too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.core.cel_fast import CelError, Unsupported, compile_fast
from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.core.expressions import (
    Activation,
    CompiledExpression,
    EvaluationError,
    _rewrite_vars,
    compile_expression,
)
from engine.core.function_registry import REGISTRY
from engine.core.templates import compile_template
from engine.inputs import load_config_file, load_job_file
from engine.model.job import BuildkiteJob, parse_job
from engine.policy.loader import load_policies
from tests.unit.cel_fast import FUNCTIONS, Outcome, disagreement

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "policies").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples" / "policies").glob("*.yaml"))


def policy_expressions(files: list[Path]) -> list[tuple[str, str]]:
    """``(file name, CEL source)`` for every expression in the policy files, in file order."""
    found: list[tuple[str, str]] = []
    for file in files:
        for document in yaml.safe_load_all(file.read_text()):
            sources: list[str] = []
            for condition in _conditions(document):
                sources.append(condition)

            def record(source: str, into: list[str] = sources) -> CompiledExpression:
                into.append(source)
                return compile_expression(source, REGISTRY)

            compile_template(document, record)
            found.extend((file.name, source) for source in sources)
    return found


def _conditions(value: Any) -> Iterator[str]:
    """The ``match`` and ``when`` strings anywhere in a document (they are bare CEL)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("match", "when") and isinstance(item, str):
                yield item
            else:
                yield from _conditions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _conditions(item)


SHIPPED_EXPRESSIONS = policy_expressions(SHIPPED)


def test_the_shipped_policies_hold_many_expressions() -> None:
    assert len(SHIPPED_EXPRESSIONS) > 100
    assert any("vars." in source for _, source in SHIPPED_EXPRESSIONS)


@pytest.mark.parametrize(("file", "source"), SHIPPED_EXPRESSIONS)
def test_every_shipped_policy_expression_is_supported(file: str, source: str) -> None:
    compile_fast(_rewrite_vars(source), FUNCTIONS)


@pytest.mark.parametrize(("file", "source"), policy_expressions(EXAMPLES))
def test_every_example_policy_expression_is_supported(file: str, source: str) -> None:
    compile_fast(_rewrite_vars(source), FUNCTIONS)


# -- the same evaluations the engine makes -------------------------------------------------------


class _ActivationView(Mapping[str, Any]):
    """An engine activation seen as the mapping a fast program reads."""

    def __init__(self, activation: Activation) -> None:
        self._activation = activation

    def __getitem__(self, name: str) -> Any:
        if not self._activation.has(name):
            raise KeyError(name)
        return self._activation.get(name)

    def __iter__(self) -> Iterator[str]:
        raise NotImplementedError("a fast program only looks names up")

    def __len__(self) -> int:
        raise NotImplementedError("a fast program only looks names up")


class _Comparison:
    """Wraps ``Activation.evaluate`` to evaluate every expression a second time, fast."""

    def __init__(self) -> None:
        self.evaluations = 0
        self.problems: list[str] = []
        self.original = Activation.evaluate

    def evaluate(self, activation: Activation, expression: CompiledExpression) -> Any:
        program = compile_fast(_rewrite_vars(expression.source), FUNCTIONS)
        try:
            result = self.original(activation, expression)
        except EvaluationError as exc:
            expected = Outcome(error=str(exc))
            self._compare(expression.source, expected, program, activation)
            raise
        self._compare(expression.source, Outcome(value=result), program, activation)
        return result

    def _compare(self, source: str, expected: Outcome, program: Any, activation: Activation) -> None:
        self.evaluations += 1
        try:
            actual = Outcome(value=program(_ActivationView(activation)))
        except CelError as exc:
            actual = Outcome(error=str(exc))
        problem = disagreement(expected, actual)
        if problem is not None:
            self.problems.append(f"{source}: {problem}")


RICH_PLUGIN = {
    "podSpec": {
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        "containers": [
            {
                "image": "golang:1.23",
                "command": ["go", "test"],
                "args": ["./..."],
                "envFrom": [{"secretRef": {"name": "s"}}],
            },
            {"name": "lint", "image": "golangci/golangci-lint"},
        ],
        "initContainers": [{"name": "prep", "image": "alpine"}],
    },
    "sidecars": [{"image": "postgres:16"}, {"image": "redis:7", "name": "cache"}],
    "checkout": {
        "skip": False,
        "cleanFlags": "-ffxdq",
        "submoduleCloneConfig": ["a=b"],
        "gitMirrors": {"path": "/m", "volume": {"name": "mirrors", "emptyDir": {}}, "lockTimeout": 30},
        "gitCredentialsSecret": {"secretName": "git"},
    },
    "commandParams": {"interposer": "vector", "envFrom": [{"configMapRef": {"name": "c"}}]},
    "sidecarParams": {"envFrom": [{"configMapRef": {"name": "side"}}]},
    "extraVolumeMounts": [{"name": "cache", "mountPath": "/cache"}],
    "gitEnvFrom": [{"secretRef": {"name": "git-env"}}],
    "metadata": {"labels": {"team": "go"}, "annotations": {"note": "x"}},
    "podSpecPatch": {"containers": [{"name": "container-0", "env": [{"name": "A", "value": "1"}]}]},
}


def _rich_job(plugin: dict[str, Any]) -> BuildkiteJob:
    plugins = [{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": plugin}, {"docker#v5": {"x": 1}}]
    return parse_job(
        {
            "uuid": "01938f30-1d2e-4f3a-8b4c-5d6e7f8a9b0d",
            "command": "make",
            "agentQueryRules": ["queue=kubernetes", "odd rule", "size=*"],
            "env": [
                "BUILDKITE_BUILD_URL=https://buildkite.com/org/pipe/builds/1#x",
                "BUILDKITE_ARTIFACT_PATHS=out/*",
                f"BUILDKITE_PLUGINS={json.dumps(plugins)}",
            ],
        }
    )


def _jobs() -> list[tuple[str, BuildkiteJob]]:
    jobs = [(path.name, load_job_file(path)) for path in sorted((ROOT / "examples" / "jobs").glob("*.json"))]
    jobs.append(("rich", _rich_job(RICH_PLUGIN)))
    jobs.append(("skip-checkout", _rich_job({**RICH_PLUGIN, "checkout": {"skip": True}})))
    # string(bool) is an error in cel-rust, so this job fails in the checkout policy: both must agree.
    jobs.append(("bool-flag", _rich_job({**RICH_PLUGIN, "checkout": {"noSubmodules": True}})))
    jobs.append(("bad-patch", _rich_job({"podSpecPatch": {"containers": [{"name": "c", "command": ["x"]}]}})))
    return jobs


AGENT_CONFIG = {
    "endpoint": "http://agent.example/v3",
    "experiment": ["polyglot-hooks", "x"],
    "shell": "/bin/bash -e",
    "hooksVolume": {"name": "hooks", "configMap": {"name": "hooks"}},
    "pluginsPath": "/plugins",
    "signingJWKSVolume": {"name": "signing", "secret": {"secretName": "signing"}},
    "signingJwksFile": "relative/key",
    "signingJwksKeyId": "key-1",
    "verificationJWKSVolume": {"name": "verify", "secret": {"secretName": "verify"}},
    "verificationJwksFile": "/abs/verify/key",
    "traceContextEncoding": "json",
    "disableWarningsFor": ["submodules"],
}


def _config_views() -> list[dict[str, Any]]:
    """The example configs, and the minimal one with a full agent-config and checkout defaults
    (once more with a bool flag, which the shipped policies turn into an error: both must agree)."""
    views = [load_config_file(None).expression_view()]
    views += [
        load_config_file(path).expression_view()
        for path in sorted((ROOT / "examples" / "config").glob("*.yaml"))
    ]
    rich = {
        **views[0],
        "agentConfig": AGENT_CONFIG,
        "defaultCheckoutParams": {"cloneFlags": "--depth=1", "gitMirrors": {"cloneFlags": "-v"}},
        "defaultCommandParams": {"interposer": "legacy", "envFrom": [{"secretRef": {"name": "d"}}]},
        "defaultMetadata": {"labels": {"a": "b"}},
        "additionalRedactedVars": ["*_X"],
    }
    views.append(rich)
    views.append({**rich, "agentConfig": {**AGENT_CONFIG, "noPty": True}})
    return views


@pytest.mark.parametrize("policies", ["shipped", "shipped+examples"])
def test_fast_programs_agree_with_the_engine_on_example_jobs(
    policies: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy_set: PolicySet = load_policies([ROOT / "examples" / "policies"] if "examples" in policies else [])
    comparison = _Comparison()

    def evaluate_twice(activation: Activation, expression: CompiledExpression) -> Any:
        return comparison.evaluate(activation, expression)  # a function, so it binds as a method

    monkeypatch.setattr(Activation, "evaluate", evaluate_twice)
    for config in _config_views():
        for _, job in _jobs():
            evaluate(policy_set, job, config)
    assert comparison.problems == []
    assert comparison.evaluations > 500


def test_unsupported_expressions_are_reported_at_compile_time() -> None:
    with pytest.raises(Unsupported):
        compile_fast("timestamp('2024-01-01T00:00:00Z')", FUNCTIONS)
