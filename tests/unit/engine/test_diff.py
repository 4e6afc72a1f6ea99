"""``engine diff``: the effect of a policy change, job by job, and the exit code CI can gate on."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from engine.cli import app

ROOT = Path(__file__).resolve().parents[3]
HELLO = ROOT / "examples" / "jobs" / "hello-world.json"
GPU = (
    "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: gpu-node-pool}\n"
    "spec:\n  phase: customize\n  match: tags.queue == 'gpu'\n  rules:\n  - name: node-pool\n"
    "    patch: {spec: {template: {spec: {nodeSelector: {accelerator: nvidia}}}}}\n"
)
DENY_MAIN = (
    "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: no-main}\n"
    "spec:\n  phase: enforce\n  rules:\n  - name: branch\n"
    "    deny: {when: build.branch == 'main', message: no main builds}\n"
)
PIPELINE = (
    "steps:\n- {key: train, command: python train.py, agents: {queue: gpu}}\n- wait\n"
    "- {key: lint, command: make lint, agents: {queue: kubernetes}}\n"
)


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_a_change_shows_a_manifest_diff_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "gpu.yaml").write_text(GPU, encoding="utf-8")
    (tmp_path / "pipeline.yml").write_text(PIPELINE, encoding="utf-8")
    result = invoke("diff", "--against", tmp_path / "gpu.yaml", "--pipeline", tmp_path / "pipeline.yml")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"~ {tmp_path / 'pipeline.yml'} step train: changed"
    assert "  +      nodeSelector:" in lines
    assert "  +        accelerator: nvidia" in lines
    assert f"= {tmp_path / 'pipeline.yml'} step lint: unchanged" in lines
    assert lines[-1] == "2 jobs: 1 changed, 1 unchanged"


def test_a_decision_change_is_reported(tmp_path: Path) -> None:
    (tmp_path / "deny.yaml").write_text(DENY_MAIN, encoding="utf-8")
    result = invoke("diff", "--against", tmp_path / "deny.yaml", "--job", HELLO)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"~ {HELLO}: changed",
        "  decision: admit -> deny",
        "  + denial: no-main/branch: no main builds",
    ]
    assert lines[-1] == "1 jobs: 1 changed, 0 unchanged"


def test_identical_sets_exit_0_and_several_paths_follow_against(tmp_path: Path) -> None:
    (tmp_path / "gpu.yaml").write_text(GPU, encoding="utf-8")
    (tmp_path / "deny.yaml").write_text(DENY_MAIN.replace("'main'", "'never'"), encoding="utf-8")
    result = invoke(
        "diff",
        tmp_path / "gpu.yaml",
        "--against",
        tmp_path / "gpu.yaml",
        tmp_path / "deny.yaml",
        "--job",
        HELLO,
    )
    assert (result.exit_code, result.stdout) == (0, f"= {HELLO}: unchanged\n1 jobs: 0 changed, 1 unchanged\n")


def test_a_suite_supplies_jobs_and_configs(tmp_path: Path) -> None:
    (tmp_path / "gpu.yaml").write_text(GPU, encoding="utf-8")
    (tmp_path / "s.suite.yaml").write_text(
        "apiVersion: policy.agent-stack.dev/v1\nkind: PolicySuite\ncases:\n"
        "- name: gpu\n  pipeline: {steps: [{command: x, agents: {queue: gpu}}]}\n  expect: {}\n",
        encoding="utf-8",
    )
    result = invoke("diff", "--against", tmp_path / "gpu.yaml", "--suite", tmp_path / "s.suite.yaml")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"~ {tmp_path / 's.suite.yaml'}: gpu: changed"


def test_bad_input_exits_2(tmp_path: Path) -> None:
    assert invoke("diff", "--job", HELLO).stderr == (
        "engine diff: --against NEW_PATHS... is required (the proposed policies)\n"
    )
    none = invoke("diff", "--against", tmp_path)
    assert (none.exit_code, none.stderr) == (
        2,
        "engine diff: give exactly one of --suite FILE, --pipeline FILE or --job FILE\n",
    )
    missing = invoke("diff", "--against", tmp_path / "nope", "--job", HELLO)
    assert (missing.exit_code, missing.stderr) == (2, f"{tmp_path / 'nope'}: no such file or directory\n")
