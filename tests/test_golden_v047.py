"""Golden tests of the upstream-v0.47 profile: every fixture in ``tests/golden-v047`` through the real
``engine test`` command, like ``tests/test_golden.py`` for the default profile.

The expectations are what agent-stack-k8s v0.47.0 produces (reference Part II, §12), derived by hand
from the reference, never copied from this engine's output. Independently of them, the HEAD container
protocol is checked on every admitted Job: the agent waits for ``BUILDKITE_CONTAINER_COUNT`` checkout
and command containers, checkout is container 0 and command container ``i`` is ``i + 1``, each
bootstrap container has its own sockets directory, and no job env, agent token or agent setting is in
a checkout or command container (kubernetes-bootstrap gets them from the agent).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.golden import GoldenFixture, v047_fixtures
from tests.test_golden import check_admitted, check_denied, run_engine_test

FIXTURES = v047_fixtures()
ADMITTED = [f for f in FIXTURES if not f.is_denial]
DENIED = [f for f in FIXTURES if f.is_denial]
MINIMUM_FIXTURES = 20
AGENT_ONLY = ("BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACQUIRE_JOB", "BUILDKITE_KUBERNETES_EXEC")


def _ids(fixtures: list[GoldenFixture]) -> list[str]:
    return [fixture.name for fixture in fixtures]


def test_there_are_enough_fixtures_and_each_selects_the_profile() -> None:
    assert len(FIXTURES) >= MINIMUM_FIXTURES
    for fixture in FIXTURES:
        assert fixture.config is not None, f"{fixture.name}: needs a config.yaml selecting the profile"
        assert "profile: upstream-v0.47" in fixture.config.read_text(encoding="utf-8"), fixture.name
        assert fixture.expected_manifest_path.is_file() != fixture.is_denial, fixture.name


@pytest.mark.parametrize("fixture", ADMITTED, ids=_ids(ADMITTED))
def test_admitted_job_matches_expected_manifest(fixture: GoldenFixture) -> None:
    check_admitted(fixture)


@pytest.mark.parametrize("fixture", DENIED, ids=_ids(DENIED))
def test_denied_job_prints_expected_denial(fixture: GoldenFixture) -> None:
    check_denied(fixture)


def _env_names(container: dict[str, Any]) -> list[str]:
    return [str(entry.get("name")) for entry in container.get("env", [])]


def _value(container: dict[str, Any], name: str) -> Any:
    values = [e.get("value") for e in container.get("env", []) if e.get("name") == name]
    return values[-1] if values else None


def head_protocol_problems(manifest: dict[str, Any], job: dict[str, Any]) -> list[str]:
    """Everything wrong with a Job's agent/checkout/command wiring at v0.47 (empty when right)."""
    containers = manifest["spec"]["template"]["spec"]["containers"]
    by_name = {c.get("name"): c for c in containers}
    agent, checkout = by_name.get("agent"), by_name.get("checkout")
    if agent is None:
        return ["no agent container"]
    commands = [c for c in containers if c not in (agent, checkout) and "BUILDKITE_COMMAND" in _env_names(c)]
    problems = []
    expected_count = len(commands) + (checkout is not None)
    if _value(agent, "BUILDKITE_CONTAINER_COUNT") != str(expected_count):
        problems.append(
            f"BUILDKITE_CONTAINER_COUNT {_value(agent, 'BUILDKITE_CONTAINER_COUNT')!r}, want {expected_count}"
        )
    if _value(agent, "BUILDKITE_AGENT_ACQUIRE_JOB") != job["uuid"]:
        problems.append("the agent does not acquire this job")
    job_env = {str(item).partition("=")[0] for item in job.get("env", [])}
    bootstrap = ([checkout] if checkout is not None else []) + commands
    for index, container in enumerate(bootstrap):
        name = container.get("name")
        if _value(container, "BUILDKITE_CONTAINER_ID") != str(index):
            found = _value(container, "BUILDKITE_CONTAINER_ID")
            problems.append(f"{name}: BUILDKITE_CONTAINER_ID {found!r}, want {index}")
        if _value(container, "BUILDKITE_SOCKETS_PATH") != f"/workspace/sockets/{name}":
            problems.append(f"{name}: not its own sockets directory")
        leaked = sorted((set(_env_names(container)) & (job_env | set(AGENT_ONLY))) - {"BUILDKITE_COMMAND"})
        if leaked:
            problems.append(f"{name}: has {', '.join(leaked)}, which only the agent should have")
    return problems


@pytest.mark.parametrize("fixture", ADMITTED, ids=_ids(ADMITTED))
def test_expected_and_printed_jobs_follow_the_head_container_protocol(fixture: GoldenFixture) -> None:
    assert head_protocol_problems(fixture.expected_manifest(), fixture.job_document()) == []
    run = run_engine_test(fixture)
    assert head_protocol_problems(json.loads(run.stdout), fixture.job_document()) == []


def test_the_protocol_check_notices_job_env_in_a_command_container() -> None:
    manifest = ADMITTED[0].expected_manifest()
    manifest["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "BUILDKITE_BRANCH", "value": "x"}
    )
    problems = head_protocol_problems(manifest, ADMITTED[0].job_document())
    assert any("BUILDKITE_BRANCH" in problem for problem in problems)


PLUGIN_FIELDS_AT_HEAD = (
    "podSpec",
    "podTemplate",
    "podSpecPatch",
    "gitEnvFrom",
    "sidecars",
    "metadata",
    "extraVolumeMounts",
    "checkout",
    "commandParams",
    "sidecarParams",
    "jobActiveDeadlineSeconds",
)
"""Reference §12.1a: the plugin's fields at v0.47."""


def test_every_plugin_field_and_step_attribute_of_v047_has_a_fixture() -> None:
    """Each field of §12.1a, and the step attributes read from the job (image:, resource_class),
    appears in at least one fixture's job, so each has a golden test."""
    used: set[str] = set()
    for fixture in FIXTURES:
        job = fixture.job_document()
        env = dict(str(entry).partition("=")[::2] for entry in job.get("env", []))
        for entry in json.loads(env.get("BUILDKITE_PLUGINS", "[]")):
            for config in entry.values():
                used |= set(config)
                used |= {f"checkout.{key}" for key in config.get("checkout", {})}
                used |= {f"commandParams.{key}" for key in config.get("commandParams", {})}
                used |= {f"sidecarParams.{key}" for key in config.get("sidecarParams", {})}
        if "BUILDKITE_IMAGE" in env:
            used.add("image:")
        if any(rule.startswith("resource_class=") for rule in job.get("agentQueryRules", [])):
            used.add("resource_class")
    wanted = {*PLUGIN_FIELDS_AT_HEAD, "checkout.checkoutFlags", "checkout.extraVolumeMounts"}
    wanted |= {
        "commandParams.extraVolumeMounts",
        "sidecarParams.extraVolumeMounts",
        "image:",
        "resource_class",
    }
    assert wanted - used == set()
