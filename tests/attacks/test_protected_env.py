"""Protected env: in the agent, checkout and command containers the stack's variables keep its values.

The controller config sets every agent-config option, so every variable the stack derives from it is
in play. Property, per attack: evaluate the same job without the attack (the baseline); in each of the
agent, checkout and command containers (found by name), every identity/coordination variable the
stack set resolves to the baseline's value, and every agent-config-derived variable resolves exactly
as in the baseline (so one the stack did not set there is not set by the author either). The job may
instead be denied. Legitimate overrides stay possible, and an ignored attempt is reported.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.compiler import PolicySet
from tests.attacks.harness import (
    ALLOWED_IMAGE,
    Job,
    only_container,
    pod,
    policies,
    require_admitted,
    run,
    step_container,
)
from tests.attacks.oracle import containers_named, effective_env, protected_env_differences

ALWAYS = frozenset(
    {
        "BUILDKITE_AGENT_ACQUIRE_JOB",
        "BUILDKITE_AGENT_TOKEN",
        "BUILDKITE_AGENT_TAGS",
        "BUILDKITE_KUBERNETES_EXEC",
        "BUILDKITE_CONTAINER_COUNT",
        "BUILDKITE_CONTAINER_ID",
        "BUILDKITE_BOOTSTRAP_PHASES",
        "BUILDKITE_SOCKETS_PATH",
        "BUILDKITE_BIN_PATH",
        "BUILDKITE_BUILD_PATH",
    }
)
"""Identity and coordination variables: wherever the stack sets one, it keeps the stack's value."""

DERIVED = frozenset(
    {
        "BUILDKITE_AGENT_ENDPOINT",
        "BUILDKITE_NO_HTTP2",
        "BUILDKITE_AGENT_EXPERIMENT",
        "BUILDKITE_SHELL",
        "BUILDKITE_AGENT_NO_COLOR",
        "BUILDKITE_STRICT_SINGLE_HOOKS",
        "BUILDKITE_NO_MULTIPART_ARTIFACT_UPLOAD",
        "BUILDKITE_TRACE_CONTEXT_ENCODING",
        "BUILDKITE_AGENT_DISABLE_WARNINGS_FOR",
        "BUILDKITE_AGENT_DEBUG_SIGNING",
        "BUILDKITE_NO_PTY",
        "BUILDKITE_PTY",
        "BUILDKITE_NO_COMMAND_EVAL",
        "BUILDKITE_COMMAND_EVAL",
        "BUILDKITE_NO_LOCAL_HOOKS",
        "BUILDKITE_LOCAL_HOOKS_ENABLED",
        "BUILDKITE_NO_PLUGINS",
        "BUILDKITE_PLUGINS_ENABLED",
        "BUILDKITE_NO_PLUGIN_VALIDATION",
        "BUILDKITE_PLUGIN_VALIDATION",
        "BUILDKITE_HOOKS_PATH",
        "BUILDKITE_PLUGINS_PATH",
        "BUILDKITE_AGENT_JWKS_FILE",
        "BUILDKITE_AGENT_JWKS_KEY_ID",
        "BUILDKITE_AGENT_VERIFICATION_JWKS_FILE",
        "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR",
    }
)
"""Every variable the stack derives from the agent-config below (agent-start and bootstrap forms)."""

AGENT_CONFIG = {
    "endpoint": "https://agent.example.com/v3",
    "no-http2": True,
    "experiment": ["polyglot-hooks"],
    "shell": "/bin/bash -ec",
    "no-color": True,
    "strict-single-hooks": True,
    "no-multipart-artifact-upload": True,
    "trace-context-encoding": "json",
    "disable-warnings-for": ["submodules-disabled"],
    "debug-signing": True,
    "no-pty": True,
    "no-command-eval": True,
    "no-local-hooks": True,
    "no-plugins": True,
    "plugin-validation": True,
    "hooks-path": "/buildkite/hooks",
    "hooksVolume": {"name": "buildkite-hooks", "configMap": {"name": "agent-hooks"}},
    "plugins-path": "/buildkite/plugins",
    "pluginsVolume": {"name": "buildkite-plugins", "emptyDir": {}},
    "signing-jwks-file": "signing.json",
    "signing-jwks-key-id": "ci-2026",
    "signingJWKSVolume": {"name": "signing-jwks", "secret": {"secretName": "signing-jwks"}},
    "verification-jwks-file": "verify.json",
    "verificationJWKSVolume": {"name": "verification-jwks", "secret": {"secretName": "verification-jwks"}},
    "verification-failure-behavior": "block",
}
CONFIG = {"agent-config": AGENT_CONFIG}

DEFAULT_POD = ("agent", "checkout", "container-0")
STEP_POD = ("agent", "checkout", "app")
STEP_PLUGIN = {"podSpec": {"containers": [step_container()]}}


def stack() -> PolicySet:
    return policies()


def assert_protected(baseline: Job, attacked: Job, names: tuple[str, ...]) -> None:
    before = run(stack(), baseline, CONFIG)
    require_admitted(before)
    after = run(stack(), attacked, CONFIG)
    if after.admitted:
        actual = protected_env_differences(pod(before), pod(after), names, ALWAYS, DERIVED)
        assert actual == []


@pytest.mark.parametrize("name", sorted(ALWAYS | DERIVED))
def test_the_jobs_env_cannot_set_a_protected_name(name: str) -> None:
    assert_protected(Job(), Job(env=(f"{name}=attacker",)), DEFAULT_POD)


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(("BUILDKITE_AGENT_TOKEN=a", "BUILDKITE_AGENT_TOKEN=b"), id="token-twice"),
        pytest.param(("BUILDKITE_AGENT_ENDPOINT=https://attacker.example/v3",), id="endpoint-redirect"),
        pytest.param(
            ("BUILDKITE_AGENT_ACQUIRE_JOB=0193a0a7-7ac4-4000-8000-0000000000ff",), id="acquire-another-job"
        ),
        pytest.param(("BUILDKITE_AGENT_TOKEN =attacker",), id="name-with-trailing-space"),
        pytest.param(("buildkite_agent_token=attacker",), id="lower-case-name"),
        pytest.param(("BUILDKITE_AGENT_TOKEN\u200b=attacker",), id="zero-width-suffix"),
        pytest.param(("BUILDKITE_AGENT_TAGS=queue=kubernetes,size=huge",), id="tags-rewritten"),
    ],
)
def test_env_entry_variants(entries: tuple[str, ...]) -> None:
    assert_protected(Job(), Job(env=entries), DEFAULT_POD)


def step_env(*env: dict[str, Any]) -> dict[str, Any]:
    return {"podSpec": {"containers": [step_container(env=list(env))]}}


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(step_env({"name": "BUILDKITE_AGENT_TOKEN", "value": "attacker"}), id="token"),
        pytest.param(
            step_env(
                {"name": "BUILDKITE_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "mine", "key": "t"}}}
            ),
            id="token-valueFrom",
        ),
        pytest.param(step_env({"name": "BUILDKITE_CONTAINER_ID", "value": "0"}), id="container-id"),
        pytest.param(
            step_env({"name": "BUILDKITE_BOOTSTRAP_PHASES", "value": "plugin,checkout,command"}), id="phases"
        ),
        pytest.param(step_env({"name": "BUILDKITE_COMMAND_EVAL", "value": "true"}), id="command-eval"),
        pytest.param(
            step_env({"name": "BUILDKITE_NO_COMMAND_EVAL", "value": "false"}), id="agent-start-switch"
        ),
        pytest.param(
            step_env({"name": "BUILDKITE_AGENT_ENDPOINT", "value": "https://attacker.example"}), id="endpoint"
        ),
        pytest.param(
            step_env({"name": "BUILDKITE_AGENT_VERIFICATION_JWKS_FILE", "value": "/workspace/mine.json"}),
            id="verification-jwks",
        ),
        pytest.param(
            step_env(
                {
                    "name": "BUILDKITE_AGENT_ACQUIRE_JOB",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ),
            id="acquire-job-valueFrom",
        ),
        pytest.param(
            {
                "podSpec": {
                    "containers": [
                        step_container(envFrom=[{"prefix": "BUILDKITE_", "configMapRef": {"name": "m"}}])
                    ]
                }
            },
            id="envFrom-with-prefix",
        ),
    ],
)
def test_a_step_containers_own_env_cannot_set_a_protected_name(plugin: dict[str, Any]) -> None:
    assert_protected(Job(plugin=STEP_PLUGIN), Job(plugin=plugin), STEP_POD)


def patch_env(container: str, *env: dict[str, Any]) -> dict[str, Any]:
    return {"podSpecPatch": {"containers": [{"name": container, "env": list(env)}]}}


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(
            patch_env("agent", {"name": "BUILDKITE_AGENT_TOKEN", "value": "attacker"}), id="agent-token"
        ),
        pytest.param(
            patch_env(
                "agent",
                {"name": "BUILDKITE_AGENT_ACQUIRE_JOB", "value": "0193a0a7-7ac4-4000-8000-0000000000ff"},
            ),
            id="agent-acquire-job",
        ),
        pytest.param(
            patch_env("agent", {"name": "BUILDKITE_AGENT_ENDPOINT", "value": "https://attacker.example"}),
            id="agent-endpoint",
        ),
        pytest.param(
            patch_env("agent", {"name": "BUILDKITE_NO_COMMAND_EVAL", "value": "false"}),
            id="agent-command-eval",
        ),
        pytest.param(
            patch_env("agent", {"name": "BUILDKITE_CONTAINER_COUNT", "value": "1"}),
            id="agent-container-count",
        ),
        pytest.param(
            patch_env("agent", {"name": "BUILDKITE_AGENT_TAGS", "value": "queue=other"}), id="agent-tags"
        ),
        pytest.param(
            patch_env(
                "agent", {"name": "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR", "value": "warn"}
            ),
            id="agent-verification-behaviour",
        ),
        pytest.param(
            patch_env("checkout", {"name": "BUILDKITE_PLUGINS_ENABLED", "value": "true"}),
            id="checkout-plugins",
        ),
        pytest.param(
            patch_env("checkout", {"name": "BUILDKITE_BOOTSTRAP_PHASES", "value": "plugin,checkout,command"}),
            id="checkout-phases",
        ),
        pytest.param(
            patch_env("checkout", {"name": "BUILDKITE_LOCAL_HOOKS_ENABLED", "value": "true"}),
            id="checkout-local-hooks",
        ),
        pytest.param(
            patch_env("container-0", {"name": "BUILDKITE_COMMAND_EVAL", "value": "true"}), id="command-eval"
        ),
        pytest.param(
            patch_env("container-0", {"name": "BUILDKITE_CONTAINER_ID", "value": "0"}),
            id="command-container-id",
        ),
        pytest.param(
            patch_env("container-0", {"name": "BUILDKITE_AGENT_JWKS_FILE", "value": "/workspace/k"}),
            id="command-signing",
        ),
        pytest.param(
            patch_env("container-0", {"name": "BUILDKITE_SOCKETS_PATH", "value": "/tmp"}),
            id="command-sockets",
        ),
        pytest.param(
            patch_env("agent", {"name": "BUILDKITE_AGENT_TOKEN", "$patch": "delete"}), id="delete-token-entry"
        ),
        pytest.param(
            patch_env("agent", {"name": "BUILDKITE_AGENT_TOKEN", "valueFrom": None, "value": "attacker"}),
            id="null-out-valueFrom",
        ),
        pytest.param(
            patch_env("agent", {"$patch": "replace"}, {"name": "BUILDKITE_AGENT_TOKEN", "value": "attacker"}),
            id="replace-env-list",
        ),
        pytest.param({"podSpecPatch": {"containers": [{"name": "agent", "env": None}]}}, id="null-env"),
        pytest.param(
            {
                "podSpecPatch": {
                    "containers": [
                        {"name": "checkout", "$retainKeys": ["name", "image"], "image": ALLOWED_IMAGE}
                    ]
                }
            },
            id="retainKeys-drops-env",
        ),
        pytest.param(
            {
                "podSpecPatch": {
                    "containers": [
                        {
                            "name": "container-0",
                            "$setElementOrder/env": [
                                {"name": "BUILDKITE_PLUGINS_PATH"},
                                {"name": "BUILDKITE_SHELL"},
                            ],
                            "env": [{"name": "BUILDKITE_PLUGINS_PATH", "value": "/workspace/plugins"}],
                        }
                    ]
                }
            },
            id="setElementOrder-env",
        ),
        pytest.param(
            {"podSpecPatch": {"containers": [{"name": "agent", "$patch": "delete"}]}},
            id="delete-agent-container",
        ),
        pytest.param(
            {"podSpecPatch": {"$patch": "replace", "containers": [{"name": "only", "image": ALLOWED_IMAGE}]}},
            id="replace-whole-pod",
        ),
        pytest.param(
            {
                "podSpecPatch": {
                    "containers": [{"$patch": "replace"}, {"name": "agent", "image": ALLOWED_IMAGE}]
                }
            },
            id="replace-container-list",
        ),
    ],
)
def test_a_pod_spec_patch_cannot_change_a_protected_name(plugin: dict[str, Any]) -> None:
    assert_protected(Job(), Job(plugin=plugin), DEFAULT_POD)


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(
            {
                "sidecars": [
                    {
                        "name": "agent",
                        "image": ALLOWED_IMAGE,
                        "env": [{"name": "BUILDKITE_AGENT_TOKEN", "value": "x"}],
                    }
                ]
            },
            id="sidecar-named-agent",
        ),
        pytest.param(
            {
                "sidecars": [
                    {
                        "name": "checkout",
                        "image": ALLOWED_IMAGE,
                        "env": [{"name": "BUILDKITE_BUILD_PATH", "value": "/"}],
                    }
                ]
            },
            id="sidecar-named-checkout",
        ),
        pytest.param(
            {"sidecars": [{"name": "container-0", "image": ALLOWED_IMAGE}]},
            id="sidecar-named-container-0",
        ),
        pytest.param(
            {"podSpec": {"initContainers": [{"name": "agent", "image": ALLOWED_IMAGE}]}},
            id="init-container-named-agent",
        ),
        pytest.param(
            {"podSpec": {"ephemeralContainers": [{"name": "checkout", "image": ALLOWED_IMAGE}]}},
            id="ephemeral-container-named-checkout",
        ),
    ],
)
def test_a_name_collision_leaves_each_stack_container_unambiguous(plugin: dict[str, Any]) -> None:
    assert_protected(Job(), Job(plugin=plugin), DEFAULT_POD)


# --- what pipelines may still do -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "param"),
    [
        ("BUILDKITE_GIT_CLONE_FLAGS", "cloneFlags"),
        ("BUILDKITE_GIT_FETCH_FLAGS", "fetchFlags"),
        ("BUILDKITE_GIT_CLEAN_FLAGS", "cleanFlags"),
    ],
)
def test_the_jobs_env_still_overrides_git_flags(variable: str, param: str) -> None:
    job = Job(plugin={"checkout": {param: "--from-params"}}, env=(f"{variable}=--from-env",))
    decision = run(stack(), job, CONFIG)
    require_admitted(decision)
    actual = effective_env(only_container(decision, "checkout"))[variable]
    assert actual == {"value": "--from-env"}


def test_ordinary_job_env_still_reaches_the_bootstrap_containers() -> None:
    decision = run(stack(), Job(env=("DEPLOY_TARGET=staging",)), CONFIG)
    require_admitted(decision)
    for name in DEFAULT_POD:
        actual = effective_env(only_container(decision, name))["DEPLOY_TARGET"]
        assert actual == {"value": "staging"}


@pytest.mark.parametrize(
    "name", ["BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ENDPOINT", "BUILDKITE_CONTAINER_COUNT"]
)
def test_an_ignored_attempt_is_reported(name: str) -> None:
    decision = run(stack(), Job(env=(f"{name}=attacker",)), CONFIG)
    require_admitted(decision)
    warnings = [w.message for w in decision.warnings]
    assert any(name in message for message in warnings), warnings


# --- agent-config volumes: what the admin mounts stays mounted -------------------------------------

ADMIN_VOLUMES = ("buildkite-hooks", "buildkite-plugins", "signing-jwks", "verification-jwks")


def admin_mounts(spec: dict[str, Any]) -> dict[str, Any]:
    """The admin's agent-config volumes and where each stack container mounts them."""
    volumes = [v for v in spec.get("volumes", []) if v.get("name") in ADMIN_VOLUMES]
    mounts: dict[str, Any] = {"volumes": sorted(volumes, key=lambda v: str(v.get("name")))}
    for name in DEFAULT_POD:
        for ref in containers_named(spec, name):
            mounts.setdefault(name, []).append(
                sorted(
                    (m.get("name"), m.get("mountPath"))
                    for m in ref.container.get("volumeMounts", [])
                    if m.get("name") in ADMIN_VOLUMES or str(m.get("mountPath", "")).startswith("/buildkite/")
                )
            )
    return mounts


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(
            {
                "podSpecPatch": {
                    "volumes": [{"name": "buildkite-hooks", "configMap": {"name": "attacker-hooks"}}]
                }
            },
            id="hooks-volume-source-replaced",
        ),
        pytest.param(
            {
                "podSpecPatch": {
                    "volumes": [{"name": "verification-jwks", "secret": {"secretName": "attacker-keys"}}]
                }
            },
            id="verification-keys-replaced",
        ),
        pytest.param(
            {"podSpecPatch": {"volumes": [{"name": "buildkite-hooks", "$patch": "delete"}]}},
            id="hooks-volume-deleted",
        ),
        pytest.param(
            {
                "podSpecPatch": {
                    "containers": [
                        {
                            "name": "agent",
                            "volumeMounts": [
                                {"$patch": "replace"},
                                {"name": "workspace", "mountPath": "/workspace"},
                            ],
                        }
                    ]
                }
            },
            id="agent-mounts-replaced",
        ),
        pytest.param(
            {
                "podSpecPatch": {
                    "containers": [
                        {
                            "name": "checkout",
                            "volumeMounts": [{"mountPath": "/buildkite/hooks", "$patch": "delete"}],
                        }
                    ]
                }
            },
            id="checkout-hooks-mount-deleted",
        ),
        pytest.param(
            {
                "podSpecPatch": {
                    "containers": [
                        {
                            "name": "container-0",
                            "volumeMounts": [{"mountPath": "/buildkite/hooks", "name": "workspace"}],
                        }
                    ]
                }
            },
            id="hooks-path-remounted-from-workspace",
        ),
        pytest.param(
            {
                "podSpec": {
                    "containers": [step_container()],
                    "volumes": [{"name": "buildkite-hooks", "emptyDir": {}}],
                }
            },
            id="podSpec-volume-with-the-admins-name",
        ),
    ],
)
def test_a_patch_cannot_change_the_admins_agent_config_volumes(plugin: dict[str, Any]) -> None:
    baseline_job = Job(plugin=STEP_PLUGIN) if "podSpec" in plugin else Job()
    before = run(stack(), baseline_job, CONFIG)
    after = run(stack(), Job(plugin=plugin), CONFIG)
    if after.admitted:
        actual = admin_mounts(pod(after))
        expected = admin_mounts(pod(before))
        assert actual == expected
