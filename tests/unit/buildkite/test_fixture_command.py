"""``engine fixture UUID`` against the fake Buildkite: the job as the controller reads it, secrets
redacted by the stack's own patterns unless ``--raw``, and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine.cli import app
from engine.model.job import parse_job
from tests.fakes.buildkite import FakeBuildkite

K8S = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBuildkite]:
    for name in ("BUILDKITE_TOKEN", "GRAPHQL_ENDPOINT", "ADDITIONAL_REDACTED_VARS"):
        monkeypatch.delenv(name, raising=False)  # the environment beats the config file
    with FakeBuildkite() as bk:
        yield bk


def config_file(tmp_path: Path, fake: FakeBuildkite, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"buildkite-token: {fake.graphql_token}\ngraphql-endpoint: {fake.graphql_url}\n{extra}",
        encoding="utf-8",
    )
    return path


def invoke(*args: str | Path, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args], input=stdin)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def add_job(fake: FakeBuildkite) -> str:
    return fake.add_job(
        command="make deploy",
        queue="kubernetes",
        step_key="deploy",
        label=":rocket: deploy",
        env={"DEPLOY_TOKEN": "s3cret-value", "ELEVEN_HERBS": "white pepper", "PLAIN": "visible"},
        plugins=[{K8S: {"podSpec": {"containers": [{"image": "alpine", "command": ["make"]}]}}}],
    )


def test_the_fixture_is_the_job_with_secrets_redacted(tmp_path: Path, fake: FakeBuildkite) -> None:
    uuid = add_job(fake)
    result = invoke(
        "fixture", uuid, "--config", config_file(tmp_path, fake, "additional-redacted-vars: [ELEVEN_*]\n")
    )
    assert result.exit_code == 0, result.stderr
    node = json.loads(result.stdout)
    assert list(node)[:6] == ["uuid", "command", "env", "agentQueryRules", "scheduledAt", "priority"]
    assert node["uuid"] == uuid
    assert node["agentQueryRules"] == ["queue=kubernetes"]
    assert node["step"] == {"key": "deploy"}
    assert node["label"] == ":rocket: deploy"
    assert node["pipeline"]["repository"] == {"url": "https://github.com/example/test-pipeline.git"}
    assert node["build"]["branch"] == "main"
    env = dict(entry.split("=", 1) for entry in node["env"])
    assert env["DEPLOY_TOKEN"] == "[REDACTED]"
    assert env["ELEVEN_HERBS"] == "[REDACTED]"
    assert env["PLAIN"] == "visible"
    assert "s3cret-value" not in result.stdout
    assert json.loads(env["BUILDKITE_PLUGINS"])[0][K8S]["podSpec"]["containers"][0]["image"] == "alpine"
    parse_job(node)  # what engine test --job reads
    [request] = fake.graphql_requests("GetJobFixture")
    assert request.body["variables"] == {"uuid": uuid}


def test_raw_keeps_the_values_and_output_writes_a_file(tmp_path: Path, fake: FakeBuildkite) -> None:
    uuid = add_job(fake)
    target = tmp_path / "job.json"
    result = invoke("fixture", uuid, "--raw", "--config", config_file(tmp_path, fake), "-o", target)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", f"wrote {target}\n")
    env = dict(e.split("=", 1) for e in json.loads(target.read_text(encoding="utf-8"))["env"])
    assert env["DEPLOY_TOKEN"] == "s3cret-value"
    dry_run = invoke("test", "--job", target)
    assert dry_run.exit_code == 0


def test_errors_are_one_line(tmp_path: Path, fake: FakeBuildkite) -> None:
    missing = invoke(
        "fixture", "0193a000-0000-4000-8000-00000000dead", "--config", config_file(tmp_path, fake)
    )
    assert (missing.exit_code, missing.stderr) == (
        1,
        "engine fixture: no command job with UUID 0193a000-0000-4000-8000-00000000dead\n",
    )
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        f"buildkite-token: not-the-token\ngraphql-endpoint: {fake.graphql_url}\n", encoding="utf-8"
    )
    denied = invoke("fixture", add_job(fake), "--config", wrong)
    assert denied.exit_code == 1
    assert len(denied.stderr.splitlines()) == 1
    assert "HTTP 401" in denied.stderr
    assert "not-the-token" not in denied.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("bogus: 1\n", encoding="utf-8")
    assert invoke("fixture", "x", "--config", bad).stderr == f"{bad}:1:1: bogus: unknown key\n"


def stacks_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "stacks.yaml"
    path.write_text(f"agent-token-secret: agent-token\nqueue: kubernetes\n{extra}", encoding="utf-8")
    return path


def test_a_stacks_api_config_reads_the_job_through_graphql_with_the_token_from_the_environment(
    tmp_path: Path, fake: FakeBuildkite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Stacks API only describes a job to the stack that reserved it; the fixture never reserves
    (the job stays the controller's), and the GraphQL token does not switch the config's mode."""
    uuid = add_job(fake)
    config = stacks_config(tmp_path, "additional-redacted-vars: [ELEVEN_*]\n")
    missing = invoke("fixture", uuid, "--config", config)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("engine fixture: the config runs the Stacks API mode")
    assert "set env BUILDKITE_TOKEN to a GraphQL API token" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    monkeypatch.setenv("BUILDKITE_TOKEN", fake.graphql_token)
    monkeypatch.setenv("GRAPHQL_ENDPOINT", fake.graphql_url)
    result = invoke("fixture", uuid, "--config", config)
    assert result.exit_code == 0, result.stderr
    node = json.loads(result.stdout)
    assert (node["uuid"], node["step"], node["agentQueryRules"]) == (
        uuid,
        {"key": "deploy"},
        ["queue=kubernetes"],
    )
    env = dict(entry.split("=", 1) for entry in node["env"])
    assert (env["DEPLOY_TOKEN"], env["ELEVEN_HERBS"], env["PLAIN"]) == ("[REDACTED]", "[REDACTED]", "visible")
    assert fake.stacks_requests() == []  # nothing reserved, nothing registered
    assert not fake.stacks.is_reserved(uuid)
    assert invoke("test", "--job", "-", "--config", config, stdin=result.stdout).exit_code == 0
