"""The profile on the command line: ``engine test/validate/lint --profile``, ``--pod-template``, suites
and ``engine diff`` load the profile the config (or the flag) selects, and bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from engine.cli import app

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "examples" / "jobs" / "hello-world.json"


def engine(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _command_args(stdout: str) -> list[str]:
    job = json.loads(stdout)
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


def test_test_takes_the_profile_from_the_flag_or_the_config(tmp_path: Path) -> None:
    code, out, err = engine("test", "--job", str(JOB), "-o", "json")
    assert (code, _command_args(out)[-1]) == (0, "bootstrap")
    code, out, err = engine("test", "--job", str(JOB), "-o", "json", "--profile", "upstream-v0.47")
    assert (code, _command_args(out)[-1], err) == (0, "kubernetes-bootstrap", "")
    config = tmp_path / "config.yaml"
    config.write_text("profile: upstream-v0.47\n", encoding="utf-8")
    code, out, _ = engine("test", "--job", str(JOB), "-o", "json", "--config", str(config))
    assert _command_args(out)[-1] == "kubernetes-bootstrap"
    code, out, _ = engine(
        "test", "--job", str(JOB), "-o", "json", "--config", str(config), "--profile", "default"
    )
    assert _command_args(out)[-1] == "bootstrap"


def test_a_bad_profile_or_pod_template_is_one_line(tmp_path: Path) -> None:
    code, _, err = engine("test", "--job", str(JOB), "--profile", "v0.47")
    assert (code, err) == (
        2,
        '--profile: profile: invalid profile "v0.47" (valid: "default", "upstream-v0.47")\n',
    )
    code, _, err = engine("test", "--job", str(JOB), "--pod-template", "no-equals-sign")
    assert (code, err) == (2, "--pod-template no-equals-sign: expected NAME=FILE\n")
    bad = tmp_path / "t.yaml"
    bad.write_text("- a list\n", encoding="utf-8")
    code, _, err = engine("test", "--job", str(JOB), "--pod-template", f"t={bad}")
    assert (code, err) == (2, f"{bad}: expected a PodTemplate (kind: PodTemplate, with template.spec)\n")


def test_a_pod_template_file_is_the_namespace_s_pod_template(tmp_path: Path) -> None:
    node = json.loads(JOB.read_text(encoding="utf-8"))
    plugin = [{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": {"podTemplate": "ruby"}}]
    node["env"] = [*node.get("env", []), "BUILDKITE_PLUGINS=" + json.dumps(plugin)]
    job = tmp_path / "job.json"
    job.write_text(json.dumps(node), encoding="utf-8")
    template = tmp_path / "ruby.yaml"
    template.write_text(
        yaml.safe_dump(
            {"kind": "PodTemplate", "template": {"spec": {"containers": [{"name": "r", "image": "ruby:3"}]}}}
        ),
        encoding="utf-8",
    )
    code, out, err = engine(
        "test",
        "--job",
        str(job),
        "-o",
        "json",
        "--profile",
        "upstream-v0.47",
        "--pod-template",
        f"ruby={template}",
    )
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "ruby:3"
    assert manifest["metadata"]["annotations"]["buildkite.com/pod-template-name"] == "ruby"
    code, _, err = engine("test", "--job", str(job), "--profile", "upstream-v0.47")
    assert code == 1
    assert err.startswith('Error fetching podTemplate "ruby": podtemplates "ruby" not found')


def test_validate_and_lint_take_the_profile() -> None:
    _, out, _ = engine("validate")
    _, head, _ = engine("validate", "--profile", "upstream-v0.47")
    default_count, head_count = int(out.split()[0]), int(head.split()[0])
    assert head_count == default_count + 2  # the profile adds resource-classes and volume-mounts-deduplicated
    assert engine("validate", "--profile", "nope")[0] == 2
    pipeline = ROOT / "tests" / "fixtures" / "pipelines" / "unknown-field.yaml"
    code, _, err = engine("lint", str(pipeline))
    assert code == 1
    assert "podTemplate" in err
    code, _, err = engine("lint", "--profile", "upstream-v0.47", str(pipeline))
    assert code == 1
    assert "podTemplate" not in err


def test_a_suite_case_may_not_change_the_profile(tmp_path: Path) -> None:
    suite = tmp_path / "s.suite.yaml"
    suite.write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: PolicySuite\ncases:\n"
        f"- name: c\n  job: {JOB}\n  config: {{profile: upstream-v0.47}}\n  expect: {{decision: admit}}\n",
        encoding="utf-8",
    )
    code, _, err = engine("test", "--suite", str(suite))
    assert code == 2
    assert "a case may not change the suite's profile" in err


def test_diff_loads_the_config_s_profile_on_both_sides(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("profile: upstream-v0.47\n", encoding="utf-8")
    proposed = tmp_path / "proposed"
    proposed.mkdir()
    (proposed / "deny.yaml").write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: no-kubernetes-bootstrap}\n"
        "spec:\n  phase: enforce\n  rules:\n  - name: deny\n    deny:\n"
        '      when: pod.containers.exists(c, lookup(c, "args", []).exists(a, a == "kubernetes-bootstrap"))\n'
        "      message: the v0.47 profile built this pod\n",
        encoding="utf-8",
    )
    code, out, _ = engine("diff", "--against", str(proposed), "--job", str(JOB), "--config", str(config))
    assert code == 1
    assert "the v0.47 profile built this pod" in out
    assert engine("diff", "--against", str(proposed), "--job", str(JOB))[0] == 0
