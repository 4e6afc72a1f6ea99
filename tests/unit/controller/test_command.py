"""``engine run`` start-up validation: one line per problem, exit 2, and never a token in the output."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from engine.controller.command import CONFIG_ENV, POLICY_DIRS_ENV, run_command
from engine.model.config import FLAG_KEYS, env_var_name

TOKEN = "bkua_this_is_a_secret_graphql_token_0123"
BROKEN_POLICY = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: broken}
spec:
  phase: customize
  rules:
  - name: bad
    deny:
      when: job.command.startsWith(
      message: never
"""


def app() -> typer.Typer:
    """The command registered the way the integrator registers it in ``engine/cli.py``."""
    application = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    application.command("run")(run_command)

    @application.command("version")
    def version() -> None:  # a second command, so "run" is a sub-command as in the real CLI
        typer.echo("0")

    return application


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [env_var_name(key) for key in FLAG_KEYS] + [CONFIG_ENV, POLICY_DIRS_ENV, "KUBECONFIG"]:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(app(), ["run", *(str(a) for a in args)], env=env)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert TOKEN not in output
    return result


def required(*extra: str | Path) -> list[str]:
    return ["--buildkite-token", TOKEN, "--org", "my-org", *(str(item) for item in extra)]


def test_every_missing_required_key_is_one_line() -> None:
    result = invoke("--org", "my-org", "--agent-token-secret", "")  # org: the GraphQL mode
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["agent-token-secret", "buildkite-token"]
    assert all("required by the controller" in line for line in lines)


def test_without_a_graphql_token_or_org_the_stacks_api_mode_needs_nothing_more() -> None:
    result = invoke("--kubeconfig", "/nonexistent/kubeconfig", "--health-port", "0")
    assert result.exit_code == 1  # past validation: it fails only when connecting to Kubernetes
    assert "kubeconfig" in result.stderr


def test_a_key_of_the_other_mode_is_a_clear_error() -> None:
    result = invoke(*required("--queue", "gpu"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "flag --queue: queue: only the Stacks API mode reads this key, but the controller runs the "
        "GraphQL mode (buildkite-token is set); remove it, or set buildkite-api: stacks"
    ]
    result = invoke("--buildkite-api", "stacks", "--org", "my-org")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "flag --org: org: only the GraphQL mode reads this key, but the controller runs the Stacks API "
        "mode (buildkite-api is stacks); remove it, or set buildkite-api: graphql"
    ]


def test_missing_keys_can_come_from_the_environment_instead() -> None:
    result = invoke(
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--health-port",
        "0",
        env={"BUILDKITE_TOKEN": TOKEN, "ORG": "o"},
    )
    assert result.exit_code == 1  # past validation: it fails only when connecting to Kubernetes


def test_an_unreadable_config_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = invoke("--config", missing, *required())
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{missing}: cannot read the config file: No such file or directory"
    ]


def test_a_config_file_that_is_not_yaml_is_one_line_with_its_position(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("org: a\ntags: [queue=x\n")
    result = invoke(*required(), env={CONFIG_ENV: str(config)})
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{config}:3:1: ")


def test_config_problems_name_their_source_one_per_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"buildkite-token: {TOKEN}\norg: o\nmax-in-flight: lots\nno-such-key: 1\n")
    result = invoke("-f", config, "--job-ttl", "forever")
    assert result.exit_code == 2
    lines = sorted(result.stderr.splitlines())
    assert len(lines) == 3
    assert lines[0].startswith(f"{config}:3:16: max-in-flight: expected an integer")
    assert lines[1] == f"{config}:4:1: no-such-key: unknown key"
    assert lines[2].startswith("flag --job-ttl: job-ttl: ")


def test_bad_policies_are_file_line_column_lines(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (bad / "10-broken.yaml").write_text(BROKEN_POLICY)
    (bad / "20-also-broken.yaml").write_text(BROKEN_POLICY.replace("name: broken", "name: other"))
    result = invoke(*required("--policies", good), env={POLICY_DIRS_ENV: f"{bad}:{tmp_path / 'missing'}"})
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert lines[0] == f"{tmp_path / 'missing'}: no such file or directory"
    assert lines[1].startswith(f"{bad / '10-broken.yaml'}:9:")
    assert lines[2].startswith(f"{bad / '20-also-broken.yaml'}:9:")


def test_bad_command_options_are_one_line() -> None:
    assert invoke(*required("--log-format", "xml")).stderr.splitlines() == [
        'flag --log-format: log-format: invalid log format "xml" (valid: "logfmt", "json", "text")'
    ]
    assert invoke(*required("--health-port", "70000")).exit_code == 2


def test_a_controller_that_cannot_start_says_why_in_one_line_without_the_token(tmp_path: Path) -> None:
    result = invoke(*required("--kubeconfig", tmp_path / "missing-kubeconfig", "--health-port", "0"))
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if line.startswith("engine run:")]
    assert "cannot load Kubernetes configuration" in line
    assert str(tmp_path / "missing-kubeconfig") in line


def test_every_config_flag_is_an_option() -> None:
    result = CliRunner().invoke(app(), ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for key in FLAG_KEYS:
        assert f"--{key}" in result.stdout
    assert "(env MAX_IN_FLIGHT)" in result.stdout
    for option in ("--config", "--policies", "--kubeconfig", "--log-format", "--health-port", "--no-debug"):
        assert option in result.stdout
