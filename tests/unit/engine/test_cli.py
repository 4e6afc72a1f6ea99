"""The ``engine`` CLI: outputs, exit codes and one-line errors for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from engine.cli import app
from engine.policy.loader import load_policies

ROOT = Path(__file__).resolve().parents[3]
HELLO = ROOT / "examples" / "jobs" / "hello-world.json"


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    return result


def write_json(tmp_path: Path, value: Any, name: str = "job.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def test_admitted_job_prints_a_batch_v1_job() -> None:
    result = invoke("test", "--job", HELLO)
    assert result.exit_code == 0
    job = yaml.safe_load(result.stdout)
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "buildkite-01938f2e-6c3b-4b7e-9d1a-5f0c2a7e8b41"
    names = [c["name"] for c in job["spec"]["template"]["spec"]["containers"]]
    assert names == ["container-0", "agent", "checkout"]
    assert result.stderr == ""


def test_json_output_equals_yaml_output() -> None:
    as_json = json.loads(invoke("test", "--job", HELLO, "-o", "json").stdout)
    as_yaml = yaml.safe_load(invoke("test", "--job", HELLO).stdout)
    assert as_json == as_yaml


def test_output_format_must_be_known() -> None:
    result = invoke("test", "--job", HELLO, "-o", "xml")
    assert result.exit_code == 2
    assert "'xml' is not one of 'yaml', 'json'" in result.stderr


def test_a_job_is_required() -> None:
    result = invoke("test")
    assert result.exit_code == 2
    assert result.stderr == "engine test: give --job FILE, --pipeline FILE or --suite FILE\n"


def test_denied_job_prints_denials_and_exits_1(tmp_path: Path) -> None:
    policy = tmp_path / "deny.yaml"
    policy.write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: no-main}\n"
        "spec:\n  phase: enforce\n  rules:\n  - name: branch\n    deny:\n"
        "      when: build.branch == 'main'\n      message: 'no builds of ${{ build.branch }} here'\n",
        encoding="utf-8",
    )
    result = invoke("test", tmp_path, "--job", HELLO)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "no builds of main here (denied by policy no-main, rule branch)\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON job document: Expecting value: line 1 column 1 (char 0)"),
        ("[1, 2]", "job: expected an object, got a list"),
        ('{"command": "x"}', "uuid: is required"),
        (
            '{"uuid": "u", "env": ["GOOD=1", "BROKEN"]}',
            'env[1]: entry "BROKEN" is not of the form NAME=VALUE',
        ),
        (
            '{"uuid": "u", "agentQueryRules": "queue=x"}',
            "agentQueryRules: expected a list of strings, got a string",
        ),
        ('{"uuid": 7}', "uuid: expected a string, got the number 7"),
    ],
)
def test_invalid_job_documents(tmp_path: Path, content: str, message: str) -> None:
    job = tmp_path / "job.json"
    job.write_text(content, encoding="utf-8")
    result = invoke("test", "--job", job)
    assert result.exit_code == 2
    assert result.stderr == f"{job}: {message}\n"


def test_missing_job_file(tmp_path: Path) -> None:
    result = invoke("test", "--job", tmp_path / "nope.json")
    assert result.exit_code == 2
    assert result.stderr == f"{tmp_path / 'nope.json'}: cannot read: No such file or directory\n"


def test_bad_policy_is_reported_with_position_and_no_job_is_evaluated(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: bad}\n"
        "spec:\n  phase: build\n  match: 'tags.queue =='\n",
        encoding="utf-8",
    )
    result = invoke("test", policy, "--job", HELLO)
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{policy}:6:")
    assert "Syntax error" in line


def test_bad_config_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("max-in-flight: lots\njob-ttl: 10 minutes\nnot-a-key: 1\n", encoding="utf-8")
    result = invoke("test", "--job", HELLO, "--config", config)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f'{config}:1:16: max-in-flight: expected an integer, got the string "lots"',
        f'{config}:2:10: job-ttl: unknown unit " minutes" in duration "10 minutes"'
        " (units: ns, us, ms, s, m, h)",
        f"{config}:3:1: not-a-key: unknown key",
    ]


def test_config_changes_the_job(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("namespace: ci\nimage: registry.example.com/agent:1\njob-ttl: 5m\n", encoding="utf-8")
    job = yaml.safe_load(invoke("test", "--job", HELLO, "--config", config).stdout)
    assert job["metadata"]["namespace"] == "ci"
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    assert job["spec"]["template"]["spec"]["initContainers"][0]["image"] == "registry.example.com/agent:1"


def test_all_input_problems_are_reported_together(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("bogus: 1\n", encoding="utf-8")
    job = write_json(tmp_path, {"env": "x"})
    result = invoke("test", "--job", job, "--config", config, tmp_path / "missing-dir")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 4  # missing dir, bogus key, uuid, env


def test_explain_prints_the_job_with_who_set_what() -> None:
    result = invoke("test", "--job", HELLO, "--explain")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == yaml.safe_load(invoke("test", "--job", HELLO).stdout)
    assert result.stdout.splitlines()[0].endswith("# job-metadata/job")
    assert "# agent-container/add-agent" in result.stdout
    assert result.stderr == ""


def test_without_any_policy_there_is_no_job_the_api_would_accept() -> None:
    result = invoke("test", "--job", HELLO, "--no-default-policies")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert 'Kubernetes would refuse this Job: apiVersion: must be "batch/v1", got null' in result.stderr
    assert "metadata.name: required (no policy rule set this field)" in result.stderr


def test_validate(tmp_path: Path) -> None:
    ok = invoke("validate", ROOT / "examples" / "policies")
    assert ok.exit_code == 0
    assert ok.stdout.endswith("policies OK\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [", encoding="utf-8")
    result = invoke("validate", bad)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{bad}:")


def test_lint_exit_codes(tmp_path: Path) -> None:
    fixtures = ROOT / "tests" / "fixtures" / "pipelines"
    assert invoke("lint", fixtures / "valid.yaml").exit_code == 0
    problems = invoke("lint", fixtures / "unknown-field.yaml")
    assert problems.exit_code == 1
    assert "imagee: unknown field" in problems.stderr
    assert invoke("lint", tmp_path / "nope.yaml").exit_code == 2


def test_version() -> None:
    result = invoke("version")
    assert result.exit_code == 0
    assert result.stdout.strip()


def test_validate_lists_each_policy_with_the_digest_the_changed_by_annotation_shows(tmp_path: Path) -> None:
    result = invoke("validate", "--list")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()[:-1]]
    by_name = {row[0].split("@")[0]: row for row in rows}
    policies = load_policies([])
    assert set(by_name) == {policy.name for policy in policies.policies}
    job_metadata = next(policy for policy in policies.policies if policy.name == "job-metadata")
    assert by_name["job-metadata"] == [f"job-metadata@{job_metadata.digest}", "build", job_metadata.where]
    assert job_metadata.where.split(":")[0].endswith("10-job-metadata.yaml")
