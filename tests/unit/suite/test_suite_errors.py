"""A suite that cannot be trusted does not run: every problem is one ``FILE:LINE:COL: message`` line
on stderr, nothing on stdout, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine.cli import app

HEAD = "apiVersion: policy.agent-stack.dev/v1\nkind: PolicySuite\ndefaultPolicies: false\n"
CASE = "cases:\n- name: c\n  pipeline: {steps: [{command: x}]}\n  expect: {decision: admit}\n"


def run_suite(tmp_path: Path, text: str) -> tuple[Result, Path]:
    suite = tmp_path / "bad.suite.yaml"
    suite.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["test", "--suite", str(suite)])
    assert "Traceback" not in result.stdout + result.stderr
    return result, suite


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            HEAD + CASE.replace("expect: {decision: admit}", "expect: {decison: admit}"),
            7,
            "unknown field 'decison'",
        ),
        (
            HEAD + CASE.replace("decision: admit", "decision: allow"),
            7,
            "cases[0].expect.decision: Input should be",
        ),
        (HEAD + "cases:\n- name: c\n  expect: {}\n", 5, "a case needs exactly one of 'pipeline' or 'job'"),
        (
            HEAD + CASE.replace("  pipeline:", "  job: j.json\n  pipeline:"),
            5,
            "exactly one of 'pipeline' or 'job'",
        ),
        (HEAD + CASE.replace("decision: admit", "denial: '('"), 7, "invalid regex '('"),
        (HEAD + CASE.replace("decision: admit", "warnings: ['[']"), 7, "invalid regex '['"),
        (
            HEAD + CASE.replace("decision: admit", "assertions: [{jmespath: 'spec.[', equals: 1}]"),
            7,
            "invalid JMESPath",
        ),
        (
            HEAD + CASE.replace("decision: admit", "assertions: [{jmespath: kind, equals: 1, exists: true}]"),
            7,
            "an assertion needs exactly one of: equals, notEquals, matches, exists, contains, length",
        ),
        (HEAD + CASE.replace("decision: admit", "setBy: [{path: 'a..b', policy: p}]"), 7, "unexpected '.'"),
        (
            HEAD + CASE.replace("decision: admit", "decision: admit, denial: x"),
            7,
            "'denial' expects a denied job",
        ),
        (HEAD + "cases: []\n", 4, "cases: List should have at least 1 item"),
        (HEAD.replace("PolicySuite", "Policy") + CASE, 2, "kind: Input should be 'PolicySuite'"),
    ],
)
def test_shape_problems_are_located(tmp_path: Path, text: str, line: int, message: str) -> None:
    result, suite = run_suite(tmp_path, text)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(entry.startswith(f"{suite}:{line}:") and message in entry for entry in lines), lines


def test_referenced_files_and_steps_are_checked_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yml").write_text("steps:\n- {key: a, command: x}\n- wait\n", encoding="utf-8")
    text = HEAD + (
        "cases:\n"
        "- name: missing job\n  job: nope.json\n  expect: {decision: admit}\n"
        "- name: missing step\n  pipeline: pipeline.yml\n  step: zz\n  expect: {decision: admit}\n"
        "- name: wait step\n  pipeline: pipeline.yml\n  stepIndex: 1\n  expect: {decision: admit}\n"
        "- name: bad config\n  pipeline: pipeline.yml\n  config: {max-in-flight: lots}\n  expect: {}\n"
        "- name: fine\n  pipeline: pipeline.yml\n  expect: {decision: admit}\n"
    )
    result, suite = run_suite(tmp_path, text)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 4, lines
    expected = [
        (6, "nope.json: cannot read: No such file or directory"),
        (9, "no step has key 'zz'"),
        (13, "is a wait step, not a command step"),
        (18, "max-in-flight: expected an integer"),
    ]
    for entry, (line, message) in zip(lines, expected, strict=True):
        assert entry.startswith(f"{suite}:{line}:"), entry
        assert message in entry, entry


def test_policy_problems_name_the_policy_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: b}\n"
        "spec:\n  phase: build\n  match: 'tags.queue =='\n",
        encoding="utf-8",
    )
    result, suite = run_suite(tmp_path, HEAD + "policies: [broken.yaml]\n" + CASE)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{suite}:4:")
    assert f"{tmp_path / 'broken.yaml'}:6:" in line


def test_unreadable_and_invalid_yaml_suites(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["test", "--suite", str(tmp_path / "none.suite.yaml")])
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"{tmp_path / 'none.suite.yaml'}: no such file or directory\n",
    )
    result, suite = run_suite(tmp_path, "cases: [\n")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{suite}:")


def test_suite_flags_that_do_not_combine(tmp_path: Path) -> None:
    result, suite = run_suite(tmp_path, HEAD.replace("defaultPolicies: false\n", "") + CASE)
    assert result.exit_code == 0
    clash = CliRunner().invoke(app, ["test", str(tmp_path), "--suite", str(suite), "--config", str(suite)])
    assert clash.exit_code == 2
    assert clash.stderr == (
        "engine test: a suite names its own jobs, policies and config; drop policy paths, --config\n"
    )
