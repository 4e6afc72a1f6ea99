"""The controller's identity is out of reach of builds: its ServiceAccount, its Secrets, other token keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.core.functions.secrets import secret_references
from tests.unit.guardrails import decide, denials, engine_test, job, job_document

CONFIG = {
    "controller-service-account": "agent-stack-controller",
    "controller-secrets": ["agent-stack-graphql-token"],
    "agent-token-secret": "agent-stack-secrets",
}
SA = "agent-stack-controller"
GRAPHQL = "agent-stack-graphql-token"
TOKEN = "agent-stack-secrets"


def rules_denied(plugin: dict[str, Any], config: dict[str, Any] | None = None) -> list[str]:
    decision = decide(job(plugin=plugin), config=CONFIG if config is None else config)
    return [d.rule for d in decision.denials]


def alpine(**fields: Any) -> dict[str, Any]:
    return {"image": "alpine", **fields}


SERVICE_ACCOUNT_ATTACKS: dict[str, dict[str, Any]] = {
    "podSpec serviceAccountName": {"podSpec": {"serviceAccountName": SA, "containers": [alpine()]}},
    "podSpecPatch serviceAccountName": {"podSpecPatch": {"serviceAccountName": SA}},
    "deprecated serviceAccount": {"podSpec": {"serviceAccount": SA, "containers": [alpine()]}},
    "empty name, deprecated field": {"podSpecPatch": {"serviceAccountName": "", "serviceAccount": SA}},
    "other name, deprecated field": {"podSpecPatch": {"serviceAccountName": "builds", "serviceAccount": SA}},
}


@pytest.mark.parametrize("attack", SERVICE_ACCOUNT_ATTACKS)
def test_a_build_cannot_run_as_the_controller(attack: str) -> None:
    assert rules_denied(SERVICE_ACCOUNT_ATTACKS[attack]) == ["not-the-controllers-service-account"]


def test_the_default_service_account_counts_when_it_is_the_controllers() -> None:
    config = {**CONFIG, "controller-service-account": "default"}
    assert rules_denied({"podSpecPatch": {}}, config) == ["not-the-controllers-service-account"]
    assert rules_denied({"podSpecPatch": {"serviceAccountName": "builds"}}, config) == []


def test_other_service_accounts_are_fine_and_the_check_is_off_without_config() -> None:
    assert rules_denied({"podSpecPatch": {"serviceAccountName": "builds"}}) == []
    assert rules_denied({"podSpecPatch": {"serviceAccountName": SA}}, {}) == []


def ref_env(secret: str, key: str = "token") -> list[dict[str, Any]]:
    return [{"name": "LEAK", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}]


def controller_secret_attacks(secret: str) -> dict[str, dict[str, Any]]:
    """Every way a step can reach a Secret, pointed at ``secret``."""
    env_from = [{"secretRef": {"name": secret}}]
    return {
        "command env valueFrom": {"podSpec": {"containers": [alpine(env=ref_env(secret))]}},
        "sidecar env valueFrom": {"sidecars": [alpine(env=ref_env(secret))]},
        "init container env": {"podSpec": {"initContainers": [alpine(name="i", env=ref_env(secret))]}},
        "ephemeral container env": {
            "podSpec": {"ephemeralContainers": [alpine(name="e", env=ref_env(secret))]}
        },
        "command envFrom": {"podSpec": {"containers": [alpine(envFrom=env_from)]}},
        "gitEnvFrom": {"gitEnvFrom": env_from},
        "commandParams envFrom": {"commandParams": {"envFrom": env_from}},
        "sidecarParams envFrom": {"sidecars": [alpine()], "sidecarParams": {"envFrom": env_from}},
        "checkout envFrom": {"checkout": {"envFrom": env_from}},
        "gitCredentialsSecret": {"checkout": {"gitCredentialsSecret": {"secretName": secret}}},
        "secret volume": {
            "podSpec": {
                "containers": [alpine()],
                "volumes": [{"name": "s", "secret": {"secretName": secret}}],
            }
        },
        "projected volume": {
            "podSpecPatch": {
                "volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": secret}}]}}]
            }
        },
        "csi credentials": {
            "podSpecPatch": {
                "volumes": [{"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": secret}}}]
            }
        },
        "cephfs credentials": {
            "podSpecPatch": {
                "volumes": [
                    {"name": "c", "cephfs": {"monitors": ["evil:6789"], "secretRef": {"name": secret}}}
                ]
            }
        },
        "rbd credentials": {
            "podSpecPatch": {
                "volumes": [
                    {"name": "r", "rbd": {"monitors": ["evil"], "image": "i", "secretRef": {"name": secret}}}
                ]
            }
        },
        "azureFile credentials": {
            "podSpecPatch": {
                "volumes": [{"name": "a", "azureFile": {"secretName": secret, "shareName": "s"}}]
            }
        },
        "imagePullSecrets": {"podSpecPatch": {"imagePullSecrets": [{"name": secret}]}},
        "patch on the agent container": {
            "podSpecPatch": {"containers": [{"name": "agent", "env": ref_env(secret)}]}
        },
        "patch envFrom on checkout": {
            "podSpecPatch": {"containers": [{"name": "checkout", "envFrom": env_from}]}
        },
        "patch-added container": {
            "podSpecPatch": {"containers": [{"name": "thief", "image": "alpine", "env": ref_env(secret)}]}
        },
    }


@pytest.mark.parametrize("attack", controller_secret_attacks(GRAPHQL))
def test_no_build_can_reference_the_controllers_secrets(attack: str) -> None:
    assert rules_denied(controller_secret_attacks(GRAPHQL)[attack]) == ["not-the-controllers-secrets"]


@pytest.mark.parametrize("attack", controller_secret_attacks(TOKEN))
def test_the_agent_token_secret_is_reachable_only_by_its_token_key(attack: str) -> None:
    assert rules_denied(controller_secret_attacks(TOKEN)[attack]) == ["agent-token-key-only"]


@pytest.mark.parametrize("key", ["BUILDKITE_TOKEN", "token", "buildkite_agent_token"])
def test_another_key_of_the_agent_token_secret_is_refused(key: str) -> None:
    plugin = {"podSpec": {"containers": [alpine(env=ref_env(TOKEN, key))]}}
    assert rules_denied(plugin) == ["agent-token-key-only"]


def test_the_agent_token_key_itself_is_allowed_as_the_stack_uses_it() -> None:
    plugin = {
        "sidecars": [alpine(env=ref_env(TOKEN, "BUILDKITE_AGENT_TOKEN"))],
        "podSpecPatch": {
            "volumes": [
                {
                    "name": "t",
                    "secret": {"secretName": TOKEN, "items": [{"key": "BUILDKITE_AGENT_TOKEN", "path": "t"}]},
                }
            ]
        },
    }
    assert rules_denied(plugin) == []
    assert rules_denied({}) == []


def test_the_denial_names_each_reference(tmp_path: Path) -> None:
    plugin = {"gitEnvFrom": [{"secretRef": {"name": GRAPHQL}}]}
    config = tmp_path / "config.yaml"
    config.write_text(
        f"controller-secrets: [{GRAPHQL}]\ncontroller-service-account: {SA}\nagent-token-secret: {TOKEN}\n"
    )
    code, _, stderr = engine_test(tmp_path, job_document(plugin=plugin), "--config", str(config))
    assert code == 1
    assert stderr == (
        "the pod may not use the controller's Secret "
        f"{GRAPHQL} (containers[container-0].envFrom[0]), {GRAPHQL} (containers[checkout].envFrom[0]) "
        "(denied by policy controller-identity, rule not-the-controllers-secrets)\n"
    )


def test_secret_references_lists_every_kind() -> None:
    pod = {
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "a"}}]}],
        "containers": [
            {"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "b", "key": "k"}}}]}
        ],
        "ephemeralContainers": [{"name": "e", "envFrom": [{"configMapRef": {"name": "not-a-secret"}}]}],
        "volumes": [
            {"name": "v1", "secret": {"secretName": "c", "items": [{"key": "x", "path": "x"}]}},
            {
                "name": "v2",
                "projected": {"sources": [{"secret": {"name": "d"}}, {"configMap": {"name": "no"}}]},
            },
            {"name": "v3", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0, "secretRef": {"name": "e"}}},
            {"name": "v4", "emptyDir": {}},
        ],
        "imagePullSecrets": [{"name": "f"}],
    }
    assert [(r["secret"], r["keys"], r["where"]) for r in secret_references(pod)] == [
        ("a", None, "initContainers[i].envFrom[0]"),
        ("b", ["k"], "containers[c].env[X]"),
        ("c", ["x"], "volumes[v1].secret"),
        ("d", None, "volumes[v2].projected.sources[0].secret"),
        ("e", None, "volumes[v3].iscsi"),
        ("f", None, "imagePullSecrets[0]"),
    ]
    assert denials(decide(job(), config=CONFIG)) == []
