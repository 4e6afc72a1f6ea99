"""Golden tests: every fixture in ``tests/golden`` through the real ``engine test`` command.

An admitted fixture must print exactly its ``expected.yaml`` Job (compared as data) and exit 0; a
denied one must print exactly ``expected-denial.txt`` on stderr and exit 1. On a mismatch the test
shows a unified diff of the two documents.

Independently of the expected files, the Buildkite container protocol is checked on every admitted
Job the engine prints (and on the expected files themselves): the agent waits for
``BUILDKITE_CONTAINER_COUNT`` containers, checkout is container 0 and command container ``i`` is
``i + 1`` (``i`` when checkout is skipped), and each container's env keeps upstream's order (the
shared env, the job's env in the API's order, the container-specific variables around it). Getting
these wrong makes the agent wait forever, so they are asserted generically rather than only through
whole-file comparison.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.core.finish import ADDITIONAL_HOOKS_ENV
from tests.golden import GoldenFixture, admitted_fixtures, denied_fixtures, golden_fixtures

MINIMUM_FIXTURES = 32

AGENT_ENV_HEAD = (
    "BUILDKITE_KUBERNETES_EXEC",
    "BUILDKITE_CONTAINER_COUNT",
    "BUILDKITE_AGENT_TAGS",
    "BUILDKITE_K8S_NODE",
    "BUILDKITE_K8S_NAMESPACE",
    "BUILDKITE_K8S_SERVICE_ACCOUNT",
)
CHECKOUT_ENV_HEAD = (
    "BUILDKITE_KUBERNETES_EXEC",
    "BUILDKITE_BOOTSTRAP_PHASES",
    "BUILDKITE_AGENT_NAME",
    "BUILDKITE_CONTAINER_ID",
    "BUILDKITE_PLUGINS_PATH",
)
SHARED_ENV_HEAD = (
    "BUILDKITE_BUILD_PATH",
    "BUILDKITE_BIN_PATH",
    "BUILDKITE_AGENT_TOKEN",
    "BUILDKITE_AGENT_ACQUIRE_JOB",
    "BUILDKITE_IGNORED_ENV",
)
SHARED_ENV_LAST = "BUILDKITE_REDACTED_VARS"
COMMAND_ENV_AFTER_SHARED = (
    "BUILDKITE_KUBERNETES_EXEC",
    "BUILDKITE_BOOTSTRAP_PHASES",
    "BUILDKITE_AGENT_NAME",
    "BUILDKITE_SHELL",
    "BUILDKITE_ARTIFACT_PATHS",
    "BUILDKITE_PLUGINS_PATH",
    "BUILDKITE_SOCKETS_PATH",
    "BUILDKITE_COMMAND",
    "BUILDKITE_CONTAINER_ID",
)
JOB_ENV_SET_BY_CONTAINERS = frozenset({"BUILDKITE_COMMAND", "BUILDKITE_ARTIFACT_PATHS", "BUILDKITE_PLUGINS"})


def _protected_env() -> frozenset[str]:
    """The protected names, from the one place they are stated (the default policies' variable)."""
    path = Path(__file__).resolve().parents[1] / "policies" / "15-shared-env-and-mounts.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    (names,) = [v["value"] for v in document["spec"]["variables"] if v["name"] == "protectedEnv"]
    return frozenset(names)


PROTECTED_ENV = _protected_env()
"""Job env entries with these names never reach the shared env (the stack's value stands)."""


@dataclass(frozen=True)
class CliRun:
    exit_code: int
    stdout: str
    stderr: str


@functools.cache
def run_engine_test(fixture: GoldenFixture) -> CliRun:
    """``engine test`` on one fixture, in-process (cached: several tests read the same run)."""
    result = CliRunner().invoke(app, fixture.cli_args())
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliRun(result.exit_code, result.stdout, result.stderr)


def unified_diff(expected: Any, actual: Any, name: str) -> str:
    def lines(document: Any) -> list[str]:
        return yaml.safe_dump(document, sort_keys=True, default_flow_style=False).splitlines(keepends=True)

    return "".join(
        difflib.unified_diff(lines(expected), lines(actual), f"{name}/expected.yaml", f"{name} (engine test)")
    )


def _ids(fixtures: Sequence[GoldenFixture]) -> list[str]:
    return [fixture.name for fixture in fixtures]


ADMITTED = admitted_fixtures()
DENIED = denied_fixtures()


def test_there_are_enough_fixtures_and_each_has_one_expectation() -> None:
    fixtures = list(golden_fixtures())
    assert len(fixtures) >= MINIMUM_FIXTURES
    for fixture in fixtures:
        has_manifest = fixture.expected_manifest_path.is_file()
        assert has_manifest != fixture.is_denial, f"{fixture.name}: needs exactly one expectation file"


def check_admitted(fixture: GoldenFixture) -> None:
    """``engine test`` admits the fixture's job with exactly the expected manifest and warnings."""
    run = run_engine_test(fixture)
    assert run.exit_code == 0, f"{fixture.name}: exit {run.exit_code}, stderr:\n{run.stderr}"
    actual = json.loads(run.stdout)
    expected = fixture.expected_manifest()
    if actual != expected:
        pytest.fail(unified_diff(expected, actual, fixture.name), pytrace=False)
    assert run.stderr == fixture.expected_warnings()


def check_denied(fixture: GoldenFixture) -> None:
    """``engine test`` denies the fixture's job with exactly the expected text on stderr."""
    run = run_engine_test(fixture)
    assert run.exit_code == 1, f"{fixture.name}: exit {run.exit_code}, stdout:\n{run.stdout}"
    assert run.stdout == ""
    expected = fixture.expected_denial()
    if run.stderr != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            run.stderr.splitlines(keepends=True),
            f"{fixture.name}/expected-denial.txt",
            f"{fixture.name} (engine test stderr)",
        )
        pytest.fail("".join(diff), pytrace=False)


@pytest.mark.parametrize("fixture", ADMITTED, ids=_ids(ADMITTED))
def test_admitted_job_matches_expected_manifest(fixture: GoldenFixture) -> None:
    check_admitted(fixture)


@pytest.mark.parametrize("fixture", DENIED, ids=_ids(DENIED))
def test_denied_job_prints_expected_denial(fixture: GoldenFixture) -> None:
    check_denied(fixture)


# ---- the container protocol, checked on any Job ------------------------------------------------


def _env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return list(container.get("env", []))


def _names(env: Sequence[dict[str, Any]]) -> list[str]:
    return [str(entry.get("name")) for entry in env]


def _last_value(container: dict[str, Any], name: str) -> Any:
    """The value Kubernetes uses: the last entry with that name wins."""
    values = [entry.get("value") for entry in _env(container) if entry.get("name") == name]
    return values[-1] if values else None


def _find_sublist(haystack: Sequence[Any], needle: Sequence[Any]) -> int:
    for start in range(len(haystack) - len(needle) + 1):
        if list(haystack[start : start + len(needle)]) == list(needle):
            return start
    return -1


def _job_env_entries(job: dict[str, Any]) -> list[dict[str, str]]:
    entries = []
    for item in job.get("env", []):
        name, _, value = str(item).partition("=")
        if name not in JOB_ENV_SET_BY_CONTAINERS and name not in PROTECTED_ENV:
            entries.append({"name": name, "value": value})
    return entries


def shared_env_problems(shared: list[dict[str, Any]], job: dict[str, Any]) -> list[str]:
    """The shared env: fixed head, other plugins, the job's env in API order, the redaction list."""
    shared = without_warnings_hook(shared)
    names = _names(shared)
    problems = []
    if tuple(names[: len(SHARED_ENV_HEAD)]) != SHARED_ENV_HEAD:
        problems.append(f"shared env starts {names[: len(SHARED_ENV_HEAD)]}, not {list(SHARED_ENV_HEAD)}")
    if not names or names[-1] != SHARED_ENV_LAST:
        problems.append(f"shared env does not end with {SHARED_ENV_LAST}")
    middle = shared[len(SHARED_ENV_HEAD) : -1]
    if middle and middle[0].get("name") == "BUILDKITE_PLUGINS":
        middle = middle[1:]
    if middle != _job_env_entries(job):
        problems.append("the job's env is not in the shared env in the API's order")
    return problems


def without_warnings_hook(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``env`` without the entry the finishing step appends to the first bootstrap container when the
    job has warnings (``engine.core.finish``); it is not part of upstream's order."""
    if env and env[-1].get("name") == ADDITIONAL_HOOKS_ENV:
        return env[:-1]
    return env


def container_protocol_problems(manifest: dict[str, Any], job: dict[str, Any]) -> list[str]:
    """Everything wrong with a Job's agent/checkout/command container wiring (empty when right)."""
    containers = manifest["spec"]["template"]["spec"]["containers"]
    by_name = {container.get("name"): container for container in containers}
    agent = by_name.get("agent")
    if agent is None:
        return ["no agent container"]
    checkout = by_name.get("checkout")
    commands = [
        c for c in containers if c not in (agent, checkout) and "BUILDKITE_COMMAND" in _names(_env(c))
    ]
    problems: list[str] = []
    agent_env = _env(agent)
    if tuple(_names(agent_env[: len(AGENT_ENV_HEAD)])) != AGENT_ENV_HEAD:
        problems.append(f"agent env starts {_names(agent_env[: len(AGENT_ENV_HEAD)])}")
    agent_names = _names(agent_env)
    if SHARED_ENV_HEAD[0] not in agent_names:
        return [*problems, "agent has no shared env"]
    shared = agent_env[agent_names.index(SHARED_ENV_HEAD[0]) :]
    problems += shared_env_problems(shared, job)

    expected_count = len(commands) + (1 if checkout is not None else 0)
    if _last_value(agent, "BUILDKITE_CONTAINER_COUNT") != str(expected_count):
        problems.append(
            f"BUILDKITE_CONTAINER_COUNT is {_last_value(agent, 'BUILDKITE_CONTAINER_COUNT')!r}, "
            f"want {expected_count} ({len(commands)} command + checkout)"
        )
    if checkout is not None:
        checkout_env = _env(checkout)
        if tuple(_names(checkout_env[: len(CHECKOUT_ENV_HEAD)])) != CHECKOUT_ENV_HEAD:
            problems.append(f"checkout env starts {_names(checkout_env[: len(CHECKOUT_ENV_HEAD)])}")
        if without_warnings_hook(checkout_env)[-len(shared) :] != shared:
            problems.append("checkout env does not end with the shared env")
        if _last_value(checkout, "BUILDKITE_CONTAINER_ID") != "0":
            problems.append("checkout is not container 0")
    first_id = 1 if checkout is not None else 0
    for index, command in enumerate(commands):
        env = _env(command)
        start = _find_sublist(env, shared)
        if start < 0:
            problems.append(f"{command.get('name')}: the shared env is not in one piece")
            continue
        after = _names(env[start + len(shared) : start + len(shared) + len(COMMAND_ENV_AFTER_SHARED)])
        if tuple(after) != COMMAND_ENV_AFTER_SHARED:
            problems.append(f"{command.get('name')}: after the shared env comes {after}")
        if _last_value(command, "BUILDKITE_CONTAINER_ID") != str(first_id + index):
            problems.append(
                f"{command.get('name')}: BUILDKITE_CONTAINER_ID "
                f"{_last_value(command, 'BUILDKITE_CONTAINER_ID')!r}, want {first_id + index}"
            )
    return problems


@pytest.mark.parametrize("fixture", ADMITTED, ids=_ids(ADMITTED))
def test_engine_output_follows_the_container_protocol(fixture: GoldenFixture) -> None:
    run = run_engine_test(fixture)
    assert run.exit_code == 0, run.stderr
    assert container_protocol_problems(json.loads(run.stdout), fixture.job_document()) == []


@pytest.mark.parametrize("fixture", ADMITTED, ids=_ids(ADMITTED))
def test_expected_manifest_follows_the_container_protocol(fixture: GoldenFixture) -> None:
    assert container_protocol_problems(fixture.expected_manifest(), fixture.job_document()) == []


def test_the_protocol_check_notices_a_wrong_container_id() -> None:
    """The generic check must be able to fail: renumber one command container and it objects."""
    fixture = next(f for f in ADMITTED if f.name.startswith("07-"))
    manifest = fixture.expected_manifest()
    second = manifest["spec"]["template"]["spec"]["containers"][1]
    for entry in second["env"]:
        if entry["name"] == "BUILDKITE_CONTAINER_ID":
            entry["value"] = "1"
    problems = container_protocol_problems(manifest, fixture.job_document())
    assert any("BUILDKITE_CONTAINER_ID '1', want 2" in problem for problem in problems)
