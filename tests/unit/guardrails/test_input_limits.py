"""Oversized, deeply nested and out-of-range job input is denied with one clear line, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.model.job import split_plugins
from engine.model.limits import MAX_JOB_BYTES, MAX_NESTING_DEPTH, MAX_PLUGINS_BYTES, json_problem
from tests.unit.guardrails import PLUGIN_KEY, decide, denials, engine_test, job, job_document

PARSE = "agent-stack-k8s failed to parse the job: "


def nested(depth: int) -> str:
    """A kubernetes plugin whose podSpecPatch holds ``depth`` nested lists."""
    return json.dumps([{PLUGIN_KEY: {"podSpecPatch": {"x": "@"}}}]).replace('"@"', "[" * depth + "]" * depth)


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 500, 5_000, 20_000, 100_000])
def test_deeply_nested_plugins_are_denied_before_any_recursion(depth: int) -> None:
    raw = nested(depth)
    assert len(raw) <= MAX_PLUGINS_BYTES
    decision = decide(job(env=[f"BUILDKITE_PLUGINS={raw}"]))
    assert not decision.admitted
    (message,) = denials(decision)
    assert message.startswith(PARSE + "failed parsing plugins: ")
    assert "nested" in message
    assert "\n" not in message


def test_twenty_thousand_levels_through_engine_test(tmp_path: Path) -> None:
    document = job_document(env=[f"BUILDKITE_PLUGINS={nested(20_000)}"])
    code, stdout, stderr = engine_test(tmp_path, document)
    assert (code, stdout) == (1, "")
    assert stderr.startswith(PARSE + "failed parsing plugins:")
    assert stderr.endswith("(denied by policy plugin-problems, rule plugins-must-parse)\n")
    assert stderr.count("\n") == 1


def test_nesting_just_within_the_limit_is_evaluated() -> None:
    plugin = {"podSpec": {"containers": [{"image": "alpine", "env": [{"name": "A", "value": "b"}]}]}}
    assert decide(job(plugin=plugin)).admitted
    assert json_problem({"a": [[[1]]]}) is None
    deepest = "[" * MAX_NESTING_DEPTH + "]" * MAX_NESTING_DEPTH
    assert json_problem(json.loads(deepest)) is None
    assert json_problem(json.loads("[" + deepest + "]")) is not None


def test_oversized_plugins_are_denied_without_parsing() -> None:
    raw = json.dumps([{"big#v1": {"blob": "x" * (MAX_PLUGINS_BYTES + 1)}}])
    facts = split_plugins(raw)
    assert facts.plugins_error == (
        f"failed parsing plugins: BUILDKITE_PLUGINS is {len(raw)} bytes; "
        f"at most {MAX_PLUGINS_BYTES} are accepted"
    )


def test_an_oversized_env_is_denied() -> None:
    decision = decide(job(env=["HUGE=" + "y" * MAX_JOB_BYTES]))
    (message,) = denials(decision)
    assert message.startswith(PARSE + "the job's env and command are ")
    assert message.endswith(f"at most {MAX_JOB_BYTES} are accepted")
    assert decision.denials[0].rule == "input-limits"


def test_an_oversized_command_is_denied() -> None:
    decision = decide(job(command="echo " + "z" * MAX_JOB_BYTES))
    assert [d.rule for d in decision.denials] == ["input-limits"]


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("9223372036854775808", "does not fit in 64 bits"),
        ("-9223372036854775809", "does not fit in 64 bits"),
        ("123456789012345678901234567890", "does not fit in 64 bits"),
        ("1e400", "is not a finite number"),
        ("-1e400", "is not a finite number"),
        ("NaN", "NaN is not valid JSON"),
        ("Infinity", "Infinity is not valid JSON"),
        ("-Infinity", "-Infinity is not valid JSON"),
        ("1" * 5000, "Exceeds the limit"),
    ],
)
def test_numbers_both_evaluators_cannot_agree_on_are_refused(number: str, problem: str) -> None:
    raw = f'[{{"{PLUGIN_KEY}": {{"podSpecPatch": {{"terminationGracePeriodSeconds": {number}}}}}}}]'
    facts = split_plugins(raw)
    assert facts.plugins_error is not None
    assert problem in facts.plugins_error
    assert facts.kubernetes is None


def test_numbers_at_the_64_bit_edges_are_kept() -> None:
    raw = json.dumps([{PLUGIN_KEY: {"metadata": {"labels": {}}}}, {"x#v1": {"a": 2**63 - 1, "b": -(2**63)}}])
    facts = split_plugins(raw)
    assert facts.plugins_error is None
    assert facts.others[0] == {"x#v1": {"a": 2**63 - 1, "b": -(2**63)}}


@pytest.mark.parametrize(
    "plugin",
    [
        {"podSpec": {"initContainers": [{"name": "i", "image": "x", "$role": "agent"}]}},
        {"podSpec": {"ephemeralContainers": [{"name": "e", "image": "x", "$role": "checkout"}]}},
        {"podSpec": {"containers": [{"image": "x", "$role": "agent"}]}},
        {"sidecars": [{"image": "x", "$role": "agent"}]},
        {"podSpecPatch": {"containers": [{"name": "evil", "image": "x", "$role": "agent"}]}},
    ],
)
def test_the_engines_role_key_cannot_come_from_the_plugin(plugin: dict[str, object]) -> None:
    decision = decide(job(plugin=plugin))
    (message,) = denials(decision)
    assert message.startswith(PARSE + "failed parsing Kubernetes plugin: ")
    assert "'$role' is reserved for the stack" in message


@pytest.mark.parametrize("key", ["\\u0024role", "\\u0024\\u0072ole", "$\\u0072ole"])
def test_an_escaped_role_key_is_refused_too(key: str) -> None:
    container = '{"name": "i", "image": "x", "' + key + '": "agent"}'
    raw = '[{"' + PLUGIN_KEY + '": {"podSpec": {"initContainers": [' + container + "]}}}]"
    assert json.loads(raw)[0][PLUGIN_KEY]["podSpec"]["initContainers"][0]["$role"] == "agent"
    facts = split_plugins(raw)
    assert facts.kubernetes is None
    assert facts.kubernetes_error is not None
    assert "'$role' is reserved for the stack" in facts.kubernetes_error


def test_a_deep_job_file_is_bad_input_not_a_traceback(tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    result = CliRunner().invoke(app, ["test", "--job", str(job_file)])
    assert result.exit_code == 2
    assert result.stderr == f"{job_file}: not a JSON job document: it is nested too deeply\n"
