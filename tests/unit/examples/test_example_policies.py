"""Each shipped example policy, evaluated after the default set as `engine test` does: admit and deny."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.model.config import parse_config
from engine.model.decision import Decision
from engine.model.job import parse_job
from engine.policy.loader import load_policies

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"
UUID = "0193a000-0000-4000-8000-000000000001"
PLUGIN_KEY = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"
ALLOWED = "registry.example.com/ci/golang:1.23"


@pytest.fixture(scope="module")
def examples() -> PolicySet:
    return load_policies([EXAMPLES])


def run(
    policies: PolicySet,
    *,
    tags: dict[str, str] | None = None,
    plugin: dict[str, Any] | None = None,
    pipeline: str = "web",
    branch: str = "feature",
    config: dict[str, Any] | None = None,
) -> Decision:
    env = [
        f"BUILDKITE_PIPELINE_SLUG={pipeline}",
        f"BUILDKITE_BRANCH={branch}",
        "BUILDKITE_BUILD_URL=https://bk/b/1",
    ]
    trusted = {
        "pipeline": {"slug": pipeline, "name": pipeline},
        "build": {"number": 1, "branch": branch, "commit": "HEAD", "source": {"name": "webhook"}},
    }
    if plugin is not None:
        env.append("BUILDKITE_PLUGINS=" + json.dumps([{PLUGIN_KEY: plugin}]))
    rules = [f"{k}={v}" for k, v in (tags or {"queue": "kubernetes"}).items()]
    job = parse_job({"uuid": UUID, "command": "make", "env": env, "agentQueryRules": rules, **trusted})
    return evaluate(policies, job, parse_config(config or {}, "test").expression_view())


def pod(decision: Decision) -> dict[str, Any]:
    spec: dict[str, Any] = decision.manifest["spec"]["template"]["spec"]
    return spec


def container(decision: Decision, name: str) -> dict[str, Any]:
    return next(c for c in pod(decision)["containers"] if c["name"] == name)


def messages(decision: Decision) -> list[str]:
    return [d.message for d in decision.denials]


def test_pod_size_from_agent_tag(examples: PolicySet) -> None:
    decision = run(
        examples, tags={"queue": "ci", "size": "large"}, config={"prohibit-kubernetes-plugin": True}
    )
    assert decision.admitted
    assert container(decision, "container-0")["resources"]["requests"] == {"cpu": "8", "memory": "32Gi"}
    assert pod(decision)["nodeSelector"] == {"node-pool": "compute"}
    assert container(decision, "agent")["resources"]["requests"]["cpu"] == "100m"


def test_unknown_pod_size_is_denied_with_the_known_sizes(examples: PolicySet) -> None:
    decision = run(examples, tags={"queue": "ci", "size": "huge"})
    assert messages(decision) == ['unknown size "huge": use one of large, medium, small']


def test_the_plugin_stays_prohibited_when_sizes_are_used(examples: PolicySet) -> None:
    decision = run(
        examples,
        tags={"queue": "ci", "size": "small"},
        plugin={"podSpec": {}},
        config={"prohibit-kubernetes-plugin": True},
    )
    assert not decision.admitted
    assert "the kubernetes plugin is prohibited" in messages(decision)[0]


def test_registry_allow_list_admits_allowed_images(examples: PolicySet) -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED, "command": ["go test"]}]}}
    assert run(examples, plugin=plugin).admitted


def test_registry_allow_list_names_the_offending_image(examples: PolicySet) -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED}]}, "sidecars": [{"image": "docker.io/redis:7"}]}
    decision = run(examples, plugin=plugin)
    assert not decision.admitted
    assert messages(decision)[0].startswith(
        'image "docker.io/redis:7" (container sidecar-0) is not from an allowed'
    )
    assert any("init container imagepullcheck-1" in m for m in messages(decision))


def test_memory_is_clamped_on_the_shared_queue_with_a_warning(examples: PolicySet) -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED, "resources": {"requests": {"memory": "16Gi"}}}]}}
    decision = run(examples, plugin=plugin)
    assert decision.admitted
    resources = container(decision, "container-0")["resources"]
    assert resources["requests"]["memory"] == "8Gi"
    assert resources["limits"] == {"memory": "8Gi"}
    assert [w.message for w in decision.warnings] == [
        "container container-0: memory request 16Gi clamped to 8Gi on queue kubernetes"
    ]


def test_memory_is_not_clamped_on_other_queues(examples: PolicySet) -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED, "resources": {"requests": {"memory": "16Gi"}}}]}}
    decision = run(examples, tags={"queue": "big"}, plugin=plugin)
    assert container(decision, "container-0")["resources"]["requests"]["memory"] == "16Gi"
    assert decision.warnings == ()


def test_cpu_ceiling_denies(examples: PolicySet) -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED, "resources": {"requests": {"cpu": "32"}}}]}}
    assert messages(run(examples, plugin=plugin)) == [
        "container container-0 requests 32 CPU; the limit is 16"
    ]


def test_a_step_patch_cannot_escape_enforcement(examples: PolicySet) -> None:
    plugin = {
        "podSpec": {"containers": [{"image": ALLOWED}]},
        "podSpecPatch": {"containers": [{"name": "container-0", "securityContext": {"privileged": True}}]},
    }
    assert messages(run(examples, plugin=plugin)) == [
        "container container-0 asks to run privileged, which this cluster does not allow"
    ]


def test_host_path_and_host_network_are_denied(examples: PolicySet) -> None:
    plugin = {
        "podSpec": {
            "hostNetwork": True,
            "containers": [{"image": ALLOWED}],
            "volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}],
        }
    }
    assert messages(run(examples, plugin=plugin)) == [
        "hostPath volumes are not allowed: docker",
        "the pod may not share the node's network, PID or IPC namespace",
    ]


def test_deploy_secret_only_for_payments_main(examples: PolicySet) -> None:
    main = run(examples, pipeline="payments-api", branch="main")
    assert container(main, "container-0")["envFrom"] == [
        {"secretRef": {"name": "payments-deploy-credentials"}}
    ]
    assert "envFrom" not in container(main, "agent")
    for pipeline, branch in (("payments-api", "feature"), ("web", "main")):
        assert "envFrom" not in container(run(examples, pipeline=pipeline, branch=branch), "container-0")


def test_gpu_node_pool(examples: PolicySet) -> None:
    decision = run(examples, tags={"queue": "gpu"})
    assert pod(decision)["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod(decision)["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container(decision, "container-0")["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "nodeSelector" not in pod(run(examples, tags={"queue": "cpu"}))


def test_default_resources_fill_in_without_overriding_the_step(examples: PolicySet) -> None:
    plugin = {"podSpec": {"containers": [{"image": ALLOWED, "resources": {"requests": {"cpu": "3"}}}]}}
    decision = run(examples, plugin=plugin)
    assert container(decision, "container-0")["resources"]["requests"] == {"cpu": "3", "memory": "1Gi"}
    assert container(decision, "agent")["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert container(decision, "checkout")["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
