"""The guardrails hold under the upstream-v0.47 profile too: a pipeline author's attempts, through the
default set plus the profile, as the controller evaluates them with ``profile: upstream-v0.47``.

The profile replaces most build and customize policies, so what the default profile's guardrail tests
show is shown again here for the paths the profile rebuilt: the step's container env and podSpecPatch
against the protected env, directives against the stack's commands, the step's metadata against the
reserved keys, and the controller's identity through a podSpec or a PodTemplate.
"""

from __future__ import annotations

import functools
from typing import Any

from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.model.config import parse_config
from engine.model.decision import Decision
from engine.policy.loader import load_policies
from tests.unit.guardrails import container, effective_env, job

HEAD = {"profile": "upstream-v0.47"}
CONTROLLER = {**HEAD, "controller-service-account": "ci-controller", "controller-secrets": ["ci-graphql"]}


@functools.cache
def head_policies() -> PolicySet:
    return load_policies([], profile="upstream-v0.47")


def decide(plugin: Any = None, config: dict[str, Any] | None = None, **templates: Any) -> Decision:
    view = parse_config(config or HEAD, "test").expression_view()
    return evaluate(head_policies(), job(plugin=plugin), view, pod_templates=templates)


def warnings(decision: Decision) -> list[str]:
    return [w.message for w in decision.warnings]


def test_a_patch_may_not_change_the_agents_token_or_job() -> None:
    clean = decide()
    attacked = decide(
        {
            "podSpecPatch": {
                "containers": [
                    {
                        "name": "agent",
                        "env": [
                            {"name": "BUILDKITE_AGENT_TOKEN", "value": "mine"},
                            {"name": "BUILDKITE_AGENT_ACQUIRE_JOB", "value": "someone-elses-job"},
                            {"name": "BUILDKITE_SHELL", "value": "/bin/evil"},
                        ],
                    }
                ]
            }
        }
    )
    for name in ("BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACQUIRE_JOB", "BUILDKITE_SHELL"):
        assert effective_env(container(attacked, "agent"), name) == effective_env(
            container(clean, "agent"), name
        )
    assert any("podSpecPatch may not change BUILDKITE_AGENT_TOKEN" in w for w in warnings(attacked))


def test_the_steps_container_env_may_not_set_the_stacks_names() -> None:
    decision = decide(
        {
            "podSpec": {
                "containers": [
                    {"image": "alpine:3.20", "env": [{"name": "BUILDKITE_CONTAINER_ID", "value": "0"}]}
                ]
            }
        }
    )
    assert effective_env(container(decision, "container-0"), "BUILDKITE_CONTAINER_ID") == "1"
    assert any("may not set BUILDKITE_CONTAINER_ID" in w for w in warnings(decision))


def test_a_patch_may_change_a_command_containers_command_but_not_by_a_directive() -> None:
    changed = decide(
        {
            "podSpecPatch": {
                "containers": [
                    {"name": "container-0", "env": [{"name": "BUILDKITE_COMMAND", "value": "make lint"}]}
                ]
            }
        }
    )
    assert changed.admitted
    assert effective_env(container(changed, "container-0"), "BUILDKITE_COMMAND") == "make lint"
    retained = decide(
        {
            "podSpecPatch": {
                "containers": [{"name": "container-0", "$retainKeys": ["name", "image"], "image": "alpine"}]
            }
        }
    )
    assert not retained.admitted
    assert "a directive changed the command of container-0" in retained.denials[0].message


def test_a_patch_may_not_remove_the_agent() -> None:
    decision = decide({"podSpecPatch": {"containers": [{"name": "agent", "$patch": "delete"}]}})
    assert not decision.admitted
    assert "podSpecPatch may not remove the containers agent" in decision.denials[0].message


def test_the_steps_metadata_may_not_use_the_stacks_keys_but_may_allow_eviction() -> None:
    decision = decide(
        {
            "metadata": {
                "labels": {"buildkite.com/job-uuid": "forged", "team": "ci"},
                "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
            }
        }
    )
    labels = decision.manifest["metadata"]["labels"]
    assert (labels["buildkite.com/job-uuid"], labels["team"]) == (job().uuid, "ci")
    assert (
        decision.manifest["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"]
        == "true"
    )
    assert any("may not set buildkite.com/job-uuid" in w for w in warnings(decision))


def test_neither_a_pod_spec_nor_a_pod_template_may_run_as_the_controller() -> None:
    own = decide({"podSpec": {"serviceAccountName": "ci-controller"}}, CONTROLLER)
    assert [d.rule for d in own.denials] == ["not-the-controllers-service-account"]
    template = {
        "spec": {
            "serviceAccountName": "ci-controller",
            "containers": [{"name": "main", "image": "alpine:3.20"}],
        }
    }
    named = decide({"podTemplate": "admin-template"}, CONTROLLER, **{"admin-template": template})
    assert [d.rule for d in named.denials] == ["not-the-controllers-service-account"]
    secret = decide(
        {
            "podSpec": {
                "containers": [{"image": "alpine:3.20", "envFrom": [{"secretRef": {"name": "ci-graphql"}}]}]
            }
        },
        CONTROLLER,
    )
    assert [d.rule for d in secret.denials] == ["not-the-controllers-secrets"]


AGENT_CONFIG = {
    **HEAD,
    "agent-config": {
        "hooks-path": "/buildkite/hooks",
        "hooksVolume": {"name": "admin-hooks", "configMap": {"name": "hooks"}},
        "verification-jwks-file": "/etc/verification/key.jwks",
        "verificationJWKSVolume": {"name": "verification-keys", "secret": {"secretName": "v-jwks"}},
    },
}


def test_a_patch_may_not_swap_the_admins_agent_config_volumes_or_their_mounts() -> None:
    """The hooks and JWKS variables are protected, so what they point at is too: a patch may not
    replace the verification keys' Secret, nor mount its own volume at the hooks path."""
    assert decide({"podSpecPatch": {"nodeSelector": {"pool": "ci"}}}, AGENT_CONFIG).admitted
    attacks = [
        {"volumes": [{"name": "verification-keys", "secret": {"secretName": "my-own-jwks"}}]},
        {"volumes": [{"name": "admin-hooks", "$patch": "delete"}]},
        {
            "containers": [
                {"name": "agent", "volumeMounts": [{"name": "workspace", "mountPath": "/buildkite/hooks"}]}
            ]
        },
    ]
    for patch in attacks:
        decision = decide({"podSpecPatch": patch}, AGENT_CONFIG)
        assert not decision.admitted, patch
        [denial] = decision.denials
        assert (denial.policy, denial.rule) == ("step-pod-spec-patch", "agent-config-volumes-kept")
