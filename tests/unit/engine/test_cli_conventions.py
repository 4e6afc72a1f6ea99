"""CLI conventions: version, help, completion, several jobs, stdin, pipelines, the tag warning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from engine import __version__
from engine.cli import app

ROOT = Path(__file__).resolve().parents[3]
HELLO = ROOT / "examples" / "jobs" / "hello-world.json"
POSTGRES = ROOT / "examples" / "jobs" / "go-test-with-postgres.json"
DENY = (
    "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: no-postgres}\n"
    "spec:\n  phase: enforce\n  match: plugin != null && has(plugin.sidecars)\n  rules:\n  - name: r\n"
    "    deny: {when: 'true', message: no sidecars here}\n"
)


def invoke(*args: str | Path, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args], input=stdin)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_version_flag_and_command() -> None:
    assert (invoke("--version").exit_code, invoke("--version").stdout) == (0, f"{__version__}\n")
    assert invoke("version").stdout == f"{__version__}\n"


@pytest.mark.parametrize("command", [[], ["test"], ["diff"], ["validate"], ["lint"], ["fixture"], ["run"]])
def test_dash_h_everywhere(command: list[str]) -> None:
    short, long = invoke(*command, "-h"), invoke(*command, "--help")
    assert short.exit_code == 0
    assert short.stdout == long.stdout
    assert short.stdout.startswith("Usage: ")


def test_help_is_not_cut_and_shows_choices() -> None:
    top = invoke("-h").stdout
    assert "…" not in top
    assert not [line for line in top.splitlines()[1:] if line.rstrip().endswith("...")], (
        "short help is not cut"
    )
    assert (
        "Print the Kubernetes Job a Buildkite job would get, and why (a dry run); or run policy suites."
        in top
    )
    test_help = invoke("test", "-h").stdout
    assert re.search(r"-o, --output <yaml\|json>", test_help)
    assert "--explain-mode" not in test_help
    assert invoke("completion", "-h").stdout.count("bash|zsh|fish|powershell") == 1


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_scripts(shell: str) -> None:
    result = invoke("completion", shell)
    assert result.exit_code == 0
    assert "_ENGINE_COMPLETE" in result.stdout
    assert "engine" in result.stdout


def test_completion_rejects_an_unknown_shell() -> None:
    result = invoke("completion", "tcsh")
    assert result.exit_code == 2
    assert "'tcsh' is not one of" in result.stderr


def test_job_from_stdin() -> None:
    from_file = invoke("test", "--job", HELLO)
    from_stdin = invoke("test", "--job", "-", stdin=HELLO.read_text(encoding="utf-8"))
    assert (from_stdin.exit_code, from_stdin.stdout) == (0, from_file.stdout)
    bad = invoke("test", "--job", "-", stdin="{")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("-: not JSON:")


def test_several_jobs_print_every_job_and_a_summary(tmp_path: Path) -> None:
    (tmp_path / "deny.yaml").write_text(DENY, encoding="utf-8")
    result = invoke("test", tmp_path / "deny.yaml", "--job", HELLO, "--job", POSTGRES)
    assert result.exit_code == 1
    assert [doc["kind"] for doc in yaml.safe_load_all(result.stdout)] == ["Job"]
    assert result.stderr.splitlines() == [
        f"{HELLO}: admitted",
        f"{POSTGRES}: warning: a controller on queue kubernetes would never take this job: "
        "it asks for size=large",
        f"{POSTGRES}: denied: no-postgres/r: no sidecars here",
        "2 jobs: 1 admitted, 1 denied",
    ]
    admitted = invoke("test", "--job", ROOT / "examples" / "jobs", "-o", "json")
    assert admitted.exit_code == 0
    assert [job["kind"] for job in json.loads(admitted.stdout)] == ["Job", "Job"]
    assert admitted.stderr.splitlines()[-1] == "2 jobs: 2 admitted, 0 denied"


def test_an_unreadable_job_among_good_ones_is_reported_and_the_rest_evaluated(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[]", encoding="utf-8")
    result = invoke("test", "--job", HELLO, "--job", broken)
    assert result.exit_code == 2
    assert yaml.safe_load(result.stdout)["kind"] == "Job"
    assert result.stderr.splitlines() == [
        f"{broken}: job: expected an object, got a list",
        f"{HELLO}: admitted",
        "2 jobs: 1 admitted, 0 denied, 1 unreadable",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = invoke("test", "--job", empty)
    assert (nothing.exit_code, nothing.stderr) == (2, f"{empty}: no *.json job files in this directory\n")


def test_a_config_whose_tags_never_take_the_job_warns(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("org: o\ntags: [queue=gpu]\n", encoding="utf-8")  # org: the GraphQL mode
    result = invoke("test", "--job", HELLO, "--config", config)
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: a controller with tags queue=gpu would never take this job: it asks for queue=kubernetes\n"
    )
    assert invoke("test", "--job", HELLO).stderr == ""


@pytest.mark.parametrize(
    ("config_text", "warning"),
    [
        ("queue: kubernetes\ntags: [os=linux]\n", None),
        ("queue: kubernetes\ntags: [queue=other]\n", None),  # the queue key wins over a queue tag
        (
            "queue: gpu\n",
            "a controller on queue gpu would never take this job: it is on queue kubernetes, the "
            "controller's queue is gpu",
        ),
        (
            "queue: kubernetes\ntags: [os=linux, arch=arm64]\n",
            None,  # the job asks for no other tag
        ),
        (
            "queue: _default\n",
            "a controller on queue _default would never take this job: it is on queue kubernetes, the "
            "controller's queue is _default",
        ),
    ],
)
def test_in_the_stacks_api_mode_the_queue_key_decides_which_jobs_are_taken(
    tmp_path: Path, config_text: str, warning: str | None
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("agent-token-secret: t\n" + config_text, encoding="utf-8")
    result = invoke("test", "--job", HELLO, "--config", config)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (f"warning: {warning}\n" if warning else "")


def test_a_pipeline_step_is_dry_run(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "steps:\n- {key: lint, command: make lint, agents: {queue: kubernetes}}\n- wait\n"
        "- group: g\n  steps:\n  - {key: test, command: make test, agents: {queue: kubernetes}}\n",
        encoding="utf-8",
    )
    by_key = invoke("test", "--pipeline", pipeline, "--step", "test", "--branch", "release", "--org", "acme")
    assert by_key.exit_code == 0
    job = yaml.safe_load(by_key.stdout)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["BUILDKITE_COMMAND"], env["BUILDKITE_BRANCH"], env["BUILDKITE_ORGANIZATION_SLUG"]) == (
        "make test",
        "release",
        "acme",
    )
    by_index = invoke("test", "--pipeline", pipeline, "--step-index", "0")
    assert "make lint" in by_index.stdout
    wait = invoke("test", "--pipeline", pipeline, "--step-index", "1")
    assert wait.exit_code == 2
    assert wait.stderr.startswith(f"{pipeline}: step 1 at steps[1] is a wait step, not a command step")
    unchosen = invoke("test", "--pipeline", pipeline)
    assert unchosen.exit_code == 2
    assert "choose one with --step KEY or --step-index N" in unchosen.stderr
    stray = invoke("test", "--job", HELLO, "--step", "x")
    assert (stray.exit_code, stray.stderr) == (
        2,
        "engine test: --step and --step-index choose a step of --pipeline FILE\n",
    )
