"""Each shipped example policy after the default set, as `engine test` runs it: what it admits, what it
denies, and the ways around it a pipeline author would try (the Pod Security pair is in
test_pod_security.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.core.compiler import PolicyError
from engine.model.decision import Decision
from engine.policy.loader import load_policies
from tests.unit.guardrails import ALLOWED_IMAGE, container, decide, denials, job, pod, warnings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"
SIZES = "examples/policies/10-pod-sizes.yaml"
REGISTRY = "examples/policies/20-registry-allow-list.yaml"
BOUNDS = "examples/policies/30-queue-resource-bounds.yaml"
BASELINE = "examples/policies/40-pod-security-baseline.yaml"
RESTRICTED = "examples/policies/41-pod-security-restricted.yaml"
SECRETS = "examples/policies/50-deploy-secrets.yaml"
GPU = "examples/policies/60-gpu-node-pool.yaml"
DEFAULTS = "examples/policies/70-default-resources.yaml"


def run(
    *paths: str, plugin: dict[str, Any] | None = None, config: dict[str, Any] | None = None, **fields: Any
) -> Decision:
    return decide(job(plugin=plugin, **fields), *paths, config=config)


def test_every_example_loads_and_the_pair_loads_together() -> None:
    assert len(load_policies([EXAMPLES])) > 0
    names = {p.name for p in load_policies([EXAMPLES]).policies}
    assert {
        "pod-security-baseline",
        "pod-security-restricted",
        "registry-allow-list",
        "deploy-secrets",
    } <= names


def test_restricted_without_baseline_does_not_load() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policies([EXAMPLES / "41-pod-security-restricted.yaml"])
    assert "vars.pssUserNamespaced is not defined" in str(caught.value)


# --- 10: pod sizes ---------------------------------------------------------------------------------


def test_pod_size_from_agent_tag() -> None:
    decision = run(
        SIZES, DEFAULTS, rules=["queue=ci", "size=large"], config={"prohibit-kubernetes-plugin": True}
    )
    assert decision.admitted
    assert container(decision, "container-0")["resources"]["requests"] == {"cpu": "8", "memory": "32Gi"}
    assert pod(decision)["nodeSelector"] == {"node-pool": "compute"}
    assert container(decision, "agent")["resources"]["requests"]["cpu"] == "100m"


def test_unknown_pod_size_is_denied_with_the_known_sizes() -> None:
    decision = run(SIZES, rules=["queue=ci", "size=huge"])
    assert denials(decision) == ['unknown size "huge": use one of large, medium, small']


@pytest.mark.parametrize(
    "rules", [["queue=ci", "size=small", "size=large"], ["size=large", "queue=ci", "size=*"]]
)
def test_a_size_given_twice_is_refused_before_any_size_applies(rules: list[str]) -> None:
    decision = run(SIZES, rules=rules)
    assert [d.rule for d in decision.denials] == ["each-tag-once"]


def test_the_plugin_stays_prohibited_when_sizes_are_used() -> None:
    decision = run(
        SIZES,
        rules=["queue=ci", "size=small"],
        plugin={"podSpec": {}},
        config={"prohibit-kubernetes-plugin": True},
    )
    assert not decision.admitted
    assert "the kubernetes plugin is prohibited" in denials(decision)[0]


# --- 20: registry allow-list -----------------------------------------------------------------------


def test_registry_allow_list_admits_allowed_images() -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED_IMAGE, "command": ["go test"]}]}}
    assert run(REGISTRY, plugin=plugin).admitted


REGISTRY_ATTACKS: dict[str, dict[str, Any]] = {
    "sidecar": {"sidecars": [{"image": "docker.io/redis:7"}]},
    "init container": {"podSpec": {"initContainers": [{"name": "i", "image": "evil.io/x"}]}},
    "ephemeral container": {"podSpec": {"ephemeralContainers": [{"name": "e", "image": "evil.io/x"}]}},
    "patch-added container": {"podSpecPatch": {"containers": [{"name": "miner", "image": "evil.io/miner"}]}},
    "patch on the agent": {"podSpecPatch": {"containers": [{"name": "agent", "image": "evil.io/agent"}]}},
    "patch on copy-agent": {
        "podSpecPatch": {"initContainers": [{"name": "copy-agent", "image": "evil.io/cp"}]}
    },
    "look-alike host": {"podSpec": {"containers": [{"image": "registry.example.com.evil.io/x"}]}},
    "other port": {"podSpec": {"containers": [{"image": "registry.example.com:5000/x"}]}},
    "unicode look-alike": {"podSpec": {"containers": [{"image": "regіstry.example.com/x"}]}},
    "upper case": {"podSpec": {"containers": [{"image": "GHCR.IO/buildkite/agent"}]}},
    "no registry": {"podSpec": {"containers": [{"image": "alpine"}]}},
    "image volume": {
        "podSpecPatch": {"volumes": [{"name": "tools", "image": {"reference": "evil.io/tools:1"}}]}
    },
}


@pytest.mark.parametrize("attack", REGISTRY_ATTACKS)
def test_no_image_from_elsewhere_runs(attack: str) -> None:
    decision = run(REGISTRY, plugin=REGISTRY_ATTACKS[attack])
    assert not decision.admitted
    assert all("is not from an allowed registry" in m for m in denials(decision))


def test_registry_allow_list_names_the_offending_image() -> None:
    plugin = {
        "podSpec": {"containers": [{"image": ALLOWED_IMAGE}]},
        "sidecars": [{"image": "docker.io/redis:7"}],
    }
    messages = denials(run(REGISTRY, plugin=plugin))
    assert messages[0].startswith('image "docker.io/redis:7" (container sidecar-0) is not from an allowed')
    assert any("(container imagepullcheck-1)" in m for m in messages)


def test_an_allowed_image_volume_passes_the_allow_list() -> None:
    plugin = {
        "podSpecPatch": {
            "volumes": [{"name": "tools", "image": {"reference": "registry.example.com/tools:1"}}]
        }
    }
    decision = run(REGISTRY, plugin=plugin)
    # image volumes are a Kubernetes 1.31 field: the allow-list lets this one through, and only the
    # engine's check of the targeted API (1.20) refuses it, naming the step's patch that added it
    assert [(d.policy, d.kind) for d in decision.denials] == [("step-pod-spec-patch", "invalid")]
    assert "spec.template.spec.volumes[" in decision.denials[0].message


# --- 30: queue resource bounds ---------------------------------------------------------------------


def memory_plugin(resources: dict[str, Any]) -> dict[str, Any]:
    return {"podSpec": {"containers": [{"image": ALLOWED_IMAGE, "resources": resources}]}}


def test_memory_is_clamped_on_the_shared_queue_with_a_warning() -> None:
    decision = run(BOUNDS, plugin=memory_plugin({"requests": {"memory": "16Gi"}}))
    assert decision.admitted
    resources = container(decision, "container-0")["resources"]
    assert resources == {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}}
    assert warnings(decision) == [
        "container container-0: memory request 16Gi clamped to 8Gi on queue kubernetes"
    ]


def test_a_limit_without_a_request_counts_as_the_request() -> None:
    decision = run(BOUNDS, plugin=memory_plugin({"limits": {"memory": "64Gi", "cpu": "2"}}))
    resources = container(decision, "container-0")["resources"]
    assert resources == {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi", "cpu": "2"}}
    assert warnings(decision) == [
        "container container-0: memory request 64Gi clamped to 8Gi on queue kubernetes"
    ]


def test_memory_is_not_clamped_on_other_queues() -> None:
    decision = run(BOUNDS, rules=["queue=big"], plugin=memory_plugin({"requests": {"memory": "16Gi"}}))
    assert container(decision, "container-0")["resources"]["requests"]["memory"] == "16Gi"
    assert warnings(decision) == []


@pytest.mark.parametrize(
    ("plugin", "name"),
    [
        ({"sidecars": [{"image": "x", "resources": {"requests": {"memory": "20Gi"}}}]}, "sidecar-0"),
        (
            {
                "podSpec": {
                    "initContainers": [
                        {"name": "warm", "image": "x", "resources": {"limits": {"memory": "9Gi"}}}
                    ]
                }
            },
            "warm",
        ),
        (
            {
                "podSpecPatch": {
                    "containers": [{"name": "agent", "resources": {"requests": {"memory": "1Ti"}}}]
                }
            },
            "agent",
        ),
        (
            {
                "podSpecPatch": {
                    "containers": [
                        {"name": "new", "image": "x", "resources": {"limits": {"memory": 10000000000}}}
                    ]
                }
            },
            "new",
        ),
    ],
)
def test_memory_is_clamped_in_every_container_kind(plugin: dict[str, Any], name: str) -> None:
    decision = run(BOUNDS, plugin=plugin)
    assert container(decision, name)["resources"]["requests"]["memory"] == "8Gi"
    assert container(decision, name)["resources"]["limits"]["memory"] == "8Gi"


@pytest.mark.parametrize(
    "plugin",
    [
        memory_plugin({"requests": {"cpu": "32"}}),
        memory_plugin({"limits": {"cpu": "17"}}),
        memory_plugin({"requests": {"cpu": "16001m"}}),
        {"sidecars": [{"image": "x", "resources": {"limits": {"cpu": 64}}}]},
        {
            "podSpec": {
                "initContainers": [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "20"}}}]
            }
        },
        {"podSpecPatch": {"containers": [{"name": "checkout", "resources": {"limits": {"cpu": "100"}}}]}},
    ],
)
def test_the_cpu_ceiling_holds_for_every_container_and_for_limits_alone(plugin: dict[str, Any]) -> None:
    decision = run(BOUNDS, rules=["queue=big"], plugin=plugin)
    assert not decision.admitted
    assert all(m.endswith("CPU; the limit is 16") for m in denials(decision))


def test_cpu_ceiling_message() -> None:
    assert denials(run(BOUNDS, plugin=memory_plugin({"requests": {"cpu": "32"}}))) == [
        "container container-0 requests 32 CPU; the limit is 16"
    ]


def test_a_repeated_queue_tag_cannot_dodge_the_clamp() -> None:
    decision = run(
        BOUNDS, rules=["queue=kubernetes", "queue=*"], plugin=memory_plugin({"requests": {"memory": "16Gi"}})
    )
    assert [d.rule for d in decision.denials] == ["each-tag-once"]


# --- 50: deploy secrets ----------------------------------------------------------------------------


def test_deploy_secret_only_for_payments_main() -> None:
    main = run(SECRETS, pipeline="payments-api", branch="main")
    assert container(main, "container-0")["envFrom"] == [
        {"secretRef": {"name": "payments-deploy-credentials"}}
    ]
    assert "envFrom" not in container(main, "agent")
    for pipeline, branch in (("payments-api", "feature"), ("web", "main")):
        decision = run(SECRETS, pipeline=pipeline, branch=branch)
        assert decision.admitted
        assert "envFrom" not in container(decision, "container-0")


def test_the_env_cannot_make_a_job_a_payments_main_job() -> None:
    spoof = [
        "BUILDKITE_PIPELINE_SLUG=payments-api",
        "BUILDKITE_BRANCH=main",
        "BUILDKITE_PIPELINE_SLUG=payments-web",
    ]
    decision = run(SECRETS, pipeline="web", branch="feature", env=spoof)
    assert "envFrom" not in container(decision, "container-0")


DEPLOY = "payments-deploy-credentials"
SECRET_ATTACKS: dict[str, dict[str, Any]] = {
    "envFrom in the step's container": {
        "podSpec": {"containers": [{"image": "x", "envFrom": [{"secretRef": {"name": DEPLOY}}]}]}
    },
    "env valueFrom in a sidecar": {
        "sidecars": [
            {
                "image": "x",
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": DEPLOY, "key": "k"}}}],
            }
        ]
    },
    "gitEnvFrom": {"gitEnvFrom": [{"secretRef": {"name": DEPLOY}}]},
    "commandParams envFrom": {"commandParams": {"envFrom": [{"secretRef": {"name": DEPLOY}}]}},
    "gitCredentialsSecret": {"checkout": {"gitCredentialsSecret": {"secretName": DEPLOY}}},
    "secret volume via patch": {
        "podSpecPatch": {"volumes": [{"name": "s", "secret": {"secretName": DEPLOY}}]}
    },
    "projected volume": {
        "podSpecPatch": {"volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": DEPLOY}}]}}]}
    },
    "init container env": {
        "podSpec": {
            "initContainers": [
                {
                    "name": "i",
                    "image": "x",
                    "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": DEPLOY, "key": "k"}}}],
                }
            ]
        }
    },
    "csi credentials": {
        "podSpecPatch": {
            "volumes": [{"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": DEPLOY}}}]
        }
    },
}


@pytest.mark.parametrize("attack", SECRET_ATTACKS)
@pytest.mark.parametrize(
    ("pipeline", "branch"), [("web", "main"), ("payments-api", "feature"), ("payments", "main")]
)
def test_no_other_job_can_reference_the_deploy_secret(attack: str, pipeline: str, branch: str) -> None:
    decision = run(SECRETS, plugin=SECRET_ATTACKS[attack], pipeline=pipeline, branch=branch)
    assert [d.rule for d in decision.denials] == ["only-payments-main"]


def test_payments_main_may_reference_it_in_any_way() -> None:
    decision = run(
        SECRETS, plugin=SECRET_ATTACKS["secret volume via patch"], pipeline="payments-api", branch="main"
    )
    assert decision.admitted


# --- 60, 70 ------------------------------------------------------------------------------------------


def test_gpu_node_pool() -> None:
    decision = run(GPU, rules=["queue=gpu"])
    assert pod(decision)["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod(decision)["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container(decision, "container-0")["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "nodeSelector" not in pod(run(GPU, rules=["queue=cpu"]))


def test_default_resources_fill_in_without_overriding_the_step() -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED_IMAGE, "resources": {"requests": {"cpu": "3"}}}]}}
    decision = run(DEFAULTS, plugin=plugin)
    assert container(decision, "container-0")["resources"]["requests"] == {"cpu": "3", "memory": "1Gi"}
    assert container(decision, "agent")["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert container(decision, "checkout")["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}


# --- 40/41 with the default policies ---------------------------------------------------------------


def test_baseline_admits_the_stacks_own_pods() -> None:
    assert run(BASELINE).admitted
    assert run(
        BASELINE, plugin={"podSpec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 1000}}}
    ).admitted


BASELINE_ATTACKS: dict[str, dict[str, Any]] = {
    "privileged step container": {
        "podSpec": {"containers": [{"image": "x", "securityContext": {"privileged": True}}]}
    },
    "privileged via patch on the agent": {
        "podSpecPatch": {"containers": [{"name": "agent", "securityContext": {"privileged": True}}]}
    },
    "privileged patch-added container": {
        "podSpecPatch": {
            "containers": [{"name": "root", "image": "x", "securityContext": {"privileged": True}}]
        }
    },
    "privileged sidecar": {"sidecars": [{"image": "x", "securityContext": {"privileged": True}}]},
    "privileged step init container": {
        "podSpec": {"initContainers": [{"name": "i", "image": "x", "securityContext": {"privileged": True}}]}
    },
    "privileged copy-agent via patch": {
        "podSpecPatch": {"initContainers": [{"name": "copy-agent", "securityContext": {"privileged": True}}]}
    },
    "privileged ephemeral container": {
        "podSpec": {
            "ephemeralContainers": [{"name": "e", "image": "x", "securityContext": {"privileged": True}}]
        }
    },
    "host network": {"podSpecPatch": {"hostNetwork": True}},
    "host PID": {"podSpec": {"hostPID": True}},
    "docker socket": {
        "podSpecPatch": {"volumes": [{"name": "d", "hostPath": {"path": "/var/run/docker.sock"}}]}
    },
    "SYS_ADMIN": {"sidecars": [{"image": "x", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]},
    "host port": {"sidecars": [{"image": "x", "ports": [{"containerPort": 80, "hostPort": 80}]}]},
    "unconfined seccomp at pod level": {
        "podSpecPatch": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}
    },
    "unsafe sysctl": {
        "podSpecPatch": {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}
    },
}


@pytest.mark.parametrize("attack", BASELINE_ATTACKS)
def test_baseline_holds_whatever_put_the_field_there(attack: str) -> None:
    decision = run(BASELINE, plugin=BASELINE_ATTACKS[attack])
    assert not decision.admitted
    assert all(m.startswith("PSS baseline: ") for m in denials(decision))


def test_restricted_with_the_defaults_denies_until_the_stack_containers_comply() -> None:
    decision = run(BASELINE, RESTRICTED)
    assert not decision.admitted
    assert (
        "PSS restricted: containers must set securityContext.allowPrivilegeEscalation to false: "
        "copy-agent, container-0, agent, checkout"
    ) in denials(decision)


def test_restricted_admits_a_job_whose_every_container_complies() -> None:
    context = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    names = ["container-0", "agent", "checkout"]
    config = {
        "pod-spec-patch": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{"name": n, "securityContext": context} for n in names],
            "initContainers": [{"name": "copy-agent", "securityContext": context}],
        }
    }
    decision = run(BASELINE, RESTRICTED, config=config)
    assert decision.admitted, denials(decision)
