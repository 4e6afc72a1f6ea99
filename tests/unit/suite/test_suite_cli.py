"""``engine test --suite``: every expectation kind passing and failing, with the output and exit code.

The suites here load only small policies of their own (``defaultPolicies: false``: a skeleton the
Kubernetes API check accepts, and a GPU policy) so each case's Job is exactly what they write; the
shipped suites (tests/suites, examples/policies/suites) exercise the default set.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from engine.cli import app

POLICY = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: skeleton}
spec:
  phase: build
  rules:
  - name: job
    patch:
      apiVersion: batch/v1
      kind: Job
      metadata: {name: 'buildkite-${{ job.uuid }}'}
      spec: {template: {spec: {restartPolicy: Never}}}
---
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: gpu-node-pool}
spec:
  phase: customize
  match: tags.queue == "gpu"
  rules:
  - name: node-pool
    patch:
      spec:
        template:
          spec:
            nodeSelector: {accelerator: nvidia}
            containers: [{name: main, image: cuda:12, env: [{name: A, value: "1"}, {name: B, value: "2"}]}]
  - name: big-warning
    warn: {when: 'has(tags.big)', message: 'big gpu job on ${{ tags.queue }}'}
  - name: no-cpu-tag
    deny: {when: 'has(tags.cpu)', message: 'the cpu tag is not allowed on the gpu queue'}
"""


NO_POOL = {"spec": {"template": {"spec": {"nodeSelector": None}}}}


def run(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    return result


def write_suite(tmp_path: Path, cases: list[dict[str, Any]], **top: Any) -> Path:
    (tmp_path / "gpu.yaml").write_text(POLICY, encoding="utf-8")
    suite = {
        "apiVersion": "policy.agent-stack.dev/v1",
        "kind": "PolicySuite",
        "policies": ["gpu.yaml"],
        "defaultPolicies": False,
        **top,
        "cases": cases,
    }
    path = tmp_path / "gpu.suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def gpu_case(
    expect: dict[str, Any], name: str = "case", tags: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "pipeline": {"steps": [{"command": "train", "agents": tags or {"queue": "gpu"}}]},
        "expect": expect,
    }


def single(tmp_path: Path, expect: dict[str, Any], tags: dict[str, str] | None = None) -> Result:
    return run("test", "--suite", write_suite(tmp_path, [gpu_case(expect, tags=tags)]))


# --- decision -----------------------------------------------------------------------------------


def test_decision_passes(tmp_path: Path) -> None:
    result = single(tmp_path, {"decision": "admit"})
    assert (result.exit_code, result.stdout) == (0, "PASS case\n1 passed, 0 failed\n")
    assert result.stderr == ""


def test_decision_fails_with_the_denial_it_got(tmp_path: Path) -> None:
    result = single(tmp_path, {"decision": "admit"}, tags={"queue": "gpu", "cpu": "8"})
    assert result.exit_code == 1
    assert result.stdout == (
        "FAIL case: decision: expected admit, got deny "
        "(gpu-node-pool/no-cpu-tag: the cpu tag is not allowed on the gpu queue)\n0 passed, 1 failed\n"
    )


# --- denial -------------------------------------------------------------------------------------


def test_denial_regex_passes(tmp_path: Path) -> None:
    result = single(
        tmp_path, {"decision": "deny", "denial": "cpu tag .* gpu queue$"}, tags={"queue": "gpu", "cpu": "1"}
    )
    assert (result.exit_code, result.stdout) == (0, "PASS case\n1 passed, 0 failed\n")


def test_denial_regex_fails_listing_the_denials(tmp_path: Path) -> None:
    result = single(tmp_path, {"denial": "memory"}, tags={"queue": "gpu", "cpu": "1"})
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "FAIL case: denial: no denial matches /memory/",
        "     got: gpu-node-pool/no-cpu-tag: the cpu tag is not allowed on the gpu queue",
        "0 passed, 1 failed",
    ]


def test_denial_on_an_admitted_job_fails_as_a_decision(tmp_path: Path) -> None:
    result = single(tmp_path, {"denial": "cpu"})
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "FAIL case: decision: expected deny, got admit"


# --- warnings -----------------------------------------------------------------------------------


def test_warnings_pass(tmp_path: Path) -> None:
    result = single(
        tmp_path,
        {"warnings": ["^gpu-node-pool/big-warning: big gpu job on gpu$"]},
        {"queue": "gpu", "big": "1"},
    )
    assert (result.exit_code, result.stdout) == (0, "PASS case\n1 passed, 0 failed\n")


def test_warnings_fail_when_missing(tmp_path: Path) -> None:
    result = single(tmp_path, {"warnings": ["big gpu job"]})
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "FAIL case: warnings: no warning matches /big gpu job/",
        "     got: no warnings",
        "0 passed, 1 failed",
    ]


def test_empty_warnings_means_none_and_fails_on_one(tmp_path: Path) -> None:
    assert single(tmp_path, {"warnings": []}).exit_code == 0
    result = single(tmp_path, {"warnings": []}, {"queue": "gpu", "big": "1"})
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "FAIL case: warnings: expected no warnings",
        "     got: gpu-node-pool/big-warning: big gpu job on gpu",
        "0 passed, 1 failed",
    ]


# --- manifest -----------------------------------------------------------------------------------


def test_manifest_subset_passes_with_list_items_found_anywhere_in_order(tmp_path: Path) -> None:
    manifest = {"spec": {"template": {"spec": {"containers": [{"name": "main", "env": [{"name": "B"}]}]}}}}
    result = single(tmp_path, {"manifest": manifest})
    assert (result.exit_code, result.stdout) == (0, "PASS case\n1 passed, 0 failed\n")


def test_manifest_mismatch_shows_expected_and_got(tmp_path: Path) -> None:
    manifest = {"spec": {"template": {"spec": {"nodeSelector": {"accelerator": "amd"}, "hostNetwork": True}}}}
    result = single(tmp_path, {"manifest": manifest})
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'FAIL case: manifest: spec.template.spec.nodeSelector.accelerator: expected "amd", got "nvidia"',
        "     spec.template.spec.hostNetwork: expected true, got nothing",
        "0 passed, 1 failed",
    ]


def test_manifest_list_item_that_matches_nothing_shows_the_closest(tmp_path: Path) -> None:
    manifest = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "cuda:11"}]}}}}
    result = single(tmp_path, {"manifest": manifest})
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "FAIL case: manifest: spec.template.spec.containers: no item matches expected item 0 "
        '{"image": "cuda:11", "name": "main"}; closest is spec.template.spec.containers[0]:',
        '       spec.template.spec.containers[0].image: expected "cuda:11", got "cuda:12"',
        "0 passed, 1 failed",
    ]


def test_manifest_null_means_absent(tmp_path: Path) -> None:
    absent = {"spec": {"template": {"spec": {"serviceAccountName": None}}}}
    assert single(tmp_path, {"manifest": absent}).exit_code == 0
    present = {"spec": {"template": {"spec": {"nodeSelector": None}}}}
    result = single(tmp_path, {"manifest": present})
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "FAIL case: manifest: spec.template.spec.nodeSelector: expected no value, "
        'got {"accelerator": "nvidia"}'
    )


# --- assertions ---------------------------------------------------------------------------------

ACCELERATOR = "spec.template.spec.nodeSelector.accelerator"
CONTAINERS = "spec.template.spec.containers"


@pytest.mark.parametrize(
    ("check", "passing", "failing", "message"),
    [
        ("equals", "nvidia", "amd", f'{ACCELERATOR}: expected equals "amd", got "nvidia"'),
        ("notEquals", "amd", "nvidia", f'{ACCELERATOR}: expected notEquals "nvidia", got "nvidia"'),
        ("matches", "^nv", "^amd", f'{ACCELERATOR}: expected matches /^amd/, got "nvidia"'),
        ("contains", "vid", "amd", f'{ACCELERATOR}: expected contains "amd", got "nvidia"'),
        ("length", 6, 3, f'{ACCELERATOR}: expected length 3, got "nvidia"'),
        ("exists", True, False, f'{ACCELERATOR}: expected exists false, got "nvidia"'),
    ],
)
def test_assertion_checks(tmp_path: Path, check: str, passing: Any, failing: Any, message: str) -> None:
    good = single(tmp_path, {"assertions": [{"jmespath": ACCELERATOR, check: passing}]})
    assert (good.exit_code, good.stdout) == (0, "PASS case\n1 passed, 0 failed\n")
    bad = single(tmp_path, {"assertions": [{"jmespath": ACCELERATOR, check: failing}]})
    assert bad.exit_code == 1
    assert bad.stdout == f"FAIL case: assertion: {message}\n0 passed, 1 failed\n"


def test_assertion_over_a_list_with_a_filter(tmp_path: Path) -> None:
    expression = f"{CONTAINERS}[?name=='main'].env[].name"
    assert single(tmp_path, {"assertions": [{"jmespath": expression, "equals": ["A", "B"]}]}).exit_code == 0
    assert single(tmp_path, {"assertions": [{"jmespath": expression, "contains": "B"}]}).exit_code == 0
    bad = single(tmp_path, {"assertions": [{"jmespath": expression, "contains": "C"}]})
    assert (
        bad.stdout.splitlines()[0]
        == f'FAIL case: assertion: {expression}: expected contains "C", got ["A", "B"]'
    )


def test_several_failures_of_one_case_are_all_listed(tmp_path: Path) -> None:
    result = single(
        tmp_path,
        {
            "decision": "admit",
            "assertions": [
                {"jmespath": ACCELERATOR, "equals": "amd"},
                {"jmespath": "spec.parallelism", "equals": 2},
            ],
        },
    )
    assert result.stdout.splitlines() == [
        f'FAIL case: assertion: {ACCELERATOR}: expected equals "amd", got "nvidia"',
        "     assertion: spec.parallelism: expected equals 2, got nothing",
        "0 passed, 1 failed",
    ]


# --- setBy --------------------------------------------------------------------------------------


def test_set_by_passes_by_path_and_by_selector(tmp_path: Path) -> None:
    expect = {
        "setBy": [
            {"path": ACCELERATOR, "policy": "gpu-node-pool", "rule": "node-pool"},
            {"path": f"{CONTAINERS}[name=main].env[name=B].value", "policy": "gpu-node-pool"},
        ]
    }
    result = single(tmp_path, expect)
    assert (result.exit_code, result.stdout) == (0, "PASS case\n1 passed, 0 failed\n")


def test_set_by_fails_naming_the_real_writer(tmp_path: Path) -> None:
    result = single(tmp_path, {"setBy": [{"path": ACCELERATOR, "policy": "gpu-node-pool", "rule": "other"}]})
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        f"FAIL case: setBy: {ACCELERATOR}: expected set by gpu-node-pool/other, got gpu-node-pool/node-pool"
    )


def test_set_by_a_field_the_job_does_not_have(tmp_path: Path) -> None:
    result = single(
        tmp_path, {"setBy": [{"path": f"{CONTAINERS}[name=agent].image", "policy": "agent-container"}]}
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        f"FAIL case: setBy: {CONTAINERS}[name=agent].image: expected a field set by agent-container, "
        "but the Job has no such field"
    )


# --- selection, formats, several suites -----------------------------------------------------------


def test_case_filter_and_json_output(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path,
        [gpu_case({"decision": "admit"}, "admits gpu"), gpu_case({"decision": "deny"}, "denies gpu")],
    )
    both = run("test", "--suite", suite)
    assert both.exit_code == 1
    assert both.stdout.splitlines() == [
        "PASS admits gpu",
        "FAIL denies gpu: decision: expected deny, got admit",
        "1 passed, 1 failed",
    ]
    only = run("test", "--suite", suite, "--case", "^admits")
    assert (only.exit_code, only.stdout) == (0, "PASS admits gpu\n1 passed, 0 failed\n")
    report = json.loads(run("test", "--suite", suite, "-o", "json").stdout)
    assert (report["passed"], report["failed"]) == (1, 1)
    assert [c["passed"] for c in report["cases"]] == [True, False]
    assert report["cases"][1]["failures"] == [
        {"kind": "decision", "message": "expected deny, got admit", "details": []}
    ]
    none = run("test", "--suite", suite, "--case", "nothing")
    assert (none.exit_code, none.stderr) == (2, "--case: no case matches /nothing/\n")


def test_a_directory_runs_every_suite_file_with_its_name(tmp_path: Path) -> None:
    write_suite(tmp_path, [gpu_case({"decision": "admit"}, "one")])
    other = tmp_path / "other.suite.yaml"
    other.write_text(
        (tmp_path / "gpu.suite.yaml").read_text().replace("name: one", "name: two"), encoding="utf-8"
    )
    (tmp_path / "not-a-suite.yaml").write_text("x: 1\n", encoding="utf-8")
    result = run("test", "--suite", tmp_path)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"PASS {tmp_path / 'gpu.suite.yaml'}: one",
        f"PASS {tmp_path / 'other.suite.yaml'}: two",
        "2 passed, 0 failed",
    ]


def test_case_config_overrides_merge_over_the_suite_config(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "namespace: ci\nimage: registry.example.com/agent:1\n", encoding="utf-8"
    )
    case = {
        "name": "merged",
        "pipeline": {"steps": [{"command": "x", "agents": {"queue": "kubernetes"}}]},
        "config": {"namespace": "builds"},
        "expect": {
            "manifest": {
                "metadata": {"namespace": "builds"},
                "spec": {
                    "template": {"spec": {"initContainers": [{"image": "registry.example.com/agent:1"}]}}
                },
            }
        },
    }
    suite = write_suite(tmp_path, [case], config="base.yaml", defaultPolicies=True)
    result = run("test", "--suite", suite)
    assert (result.exit_code, result.stdout) == (0, "PASS merged\n1 passed, 0 failed\n")


def test_job_files_and_inline_jobs(tmp_path: Path) -> None:
    (tmp_path / "job.json").write_text(
        json.dumps({"uuid": "u-1", "agentQueryRules": ["queue=gpu"]}), encoding="utf-8"
    )
    cases = [
        {"name": "file", "job": "job.json", "expect": {"decision": "admit", "manifest": {"spec": {}}}},
        {"name": "inline", "job": {"agentQueryRules": ["queue=cpu"]}, "expect": {"manifest": NO_POOL}},
    ]
    result = run("test", "--suite", write_suite(tmp_path, cases))
    assert (result.exit_code, result.stdout) == (0, "PASS file\nPASS inline\n2 passed, 0 failed\n")


def test_pipeline_file_with_step_key_and_build_facts(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yml").write_text(
        textwrap.dedent(
            """\
            steps:
              - {key: lint, command: make lint, agents: {queue: cpu}}
              - group: ml
                steps:
                  - {key: train, command: make train, agents: {queue: gpu}}
            """
        ),
        encoding="utf-8",
    )
    cases: list[dict[str, Any]] = [
        {
            "name": "train",
            "pipeline": "pipeline.yml",
            "step": "train",
            "buildkite": {"branch": "release"},
            "expect": {"setBy": [{"path": ACCELERATOR, "policy": "gpu-node-pool"}]},
        },
        {"name": "lint", "pipeline": "pipeline.yml", "stepIndex": 0, "expect": {"manifest": NO_POOL}},
    ]
    result = run("test", "--suite", write_suite(tmp_path, cases, buildkite={"org": "acme"}))
    assert (result.exit_code, result.stdout) == (0, "PASS train\nPASS lint\n2 passed, 0 failed\n")
