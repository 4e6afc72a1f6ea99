"""The enforce phase means what the docs say, tested with small policies of our own.

(a) A rule owns exactly the leaves it set: two rules writing different keys of a map neither found
both apply; two writing the same leaf: the first wins, the second is skipped with a warning.
(b) A target reaches every container the author controls, wherever it came from.
(c) Nothing after the enforce phase changes the Job.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from engine.core.compiler import PolicyError, PolicySet
from engine.model.decision import Decision
from engine.policy.loader import load_policies
from tests.attacks.harness import (
    ALLOWED_IMAGE,
    Job,
    example,
    fixture_policy,
    only_container,
    policies,
    require_admitted,
    run,
    step_container,
)

STEP = {"podSpec": {"containers": [step_container()]}}


def test_two_rules_setting_different_limits_in_a_new_map_both_apply() -> None:
    decision = run(policies(fixture_policy("enforce-different-leaves.yaml")), Job(plugin=STEP))
    require_admitted(decision)
    actual = only_container(decision, "app")["resources"]["limits"]
    assert actual == {"memory": "1Gi", "cpu": "1"}


def test_two_rules_setting_different_security_context_keys_both_apply() -> None:
    decision = run(policies(fixture_policy("enforce-different-leaves.yaml")), Job(plugin=STEP))
    require_admitted(decision)
    context = only_container(decision, "app")["securityContext"]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["runAsNonRoot"] is True


def test_different_leaves_apply_to_the_default_container_too() -> None:
    decision = run(policies(fixture_policy("enforce-different-leaves.yaml")), Job())
    container = only_container(decision, "container-0")
    assert container["resources"]["limits"] == {"memory": "1Gi", "cpu": "1"}
    assert container["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": True,
    }


def test_the_first_enforce_rule_for_a_leaf_wins_and_later_ones_are_skipped_with_a_warning() -> None:
    decision = run(policies(fixture_policy("enforce-same-leaf.yaml")), Job(plugin=STEP))
    require_admitted(decision)
    actual = only_container(decision, "app")["resources"]
    assert actual == {"limits": {"memory": "1Gi"}}
    warned = {(w.policy, w.rule) for w in decision.warnings}
    assert ("attack-enforce-memory-second", "memory-2gi") in warned
    assert ("attack-enforce-drop-resources", "drop-resources") in warned
    assert ("attack-enforce-memory-first", "memory-1gi") not in warned


# --- every container is reachable ------------------------------------------------------------------

REACH_FILES = ("enforce-reach-all.yaml", "enforce-reach-step.yaml", "enforce-reach-containers-init.yaml")
"""The target covering every container may be ``$all`` or ``$step``; ``$containers`` + ``$init`` is the
fallback while neither exists (it cannot reach ephemeral containers)."""


@cache
def reach_policies() -> PolicySet:
    problems: list[str] = []
    for name in REACH_FILES:
        try:
            return load_policies([fixture_policy(name)])
        except PolicyError as exc:
            problems.extend(exc.problems)
    pytest.fail("no reach policy loads: " + "; ".join(problems))


REACH_PLUGIN: dict[str, Any] = {
    "podSpec": {
        "containers": [step_container()],
        "initContainers": [{"name": "prep", "image": ALLOWED_IMAGE}],
        "ephemeralContainers": [{"name": "debug", "image": ALLOWED_IMAGE}],
    },
    "sidecars": [{"name": "db", "image": ALLOWED_IMAGE}],
    "podSpecPatch": {
        "containers": [{"name": "extra", "image": ALLOWED_IMAGE}],
        "initContainers": [{"name": "extra-init", "image": ALLOWED_IMAGE}],
        "ephemeralContainers": [{"name": "debug-2", "image": ALLOWED_IMAGE}],
    },
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("app", id="podSpec-container"),
        pytest.param("prep", id="podSpec-init-container"),
        pytest.param("debug", id="podSpec-ephemeral-container"),
        pytest.param("db", id="sidecar"),
        pytest.param("extra", id="podSpecPatch-added-container"),
        pytest.param("extra-init", id="podSpecPatch-added-init-container"),
        pytest.param("debug-2", id="podSpecPatch-added-ephemeral-container"),
    ],
)
def test_an_enforce_target_reaches_every_container_the_author_controls(name: str) -> None:
    decision = run(reach_policies(), Job(plugin=REACH_PLUGIN))
    require_admitted_but_for_ephemeral_containers(decision)
    actual = only_container(decision, name).get("terminationMessagePolicy")
    assert actual == "FallbackToLogsOnError"


def require_admitted_but_for_ephemeral_containers(decision: Decision) -> None:
    """Correction: a pod template with ephemeral containers is refused by the Kubernetes check (the
    API refuses them in a template, and a v1.20 server drops them unseen), so a job that has them is
    denied ``invalid`` after the enforce phase ran. That denial is a denial; the reach is judged on
    the Job the enforce phase left, and nothing else may have denied it."""
    ephemeral = "spec.template.spec.ephemeralContainers"
    if any(not (d.kind == "invalid" and ephemeral in d.message) for d in decision.denials):
        require_admitted(decision)


# --- nothing after enforce -------------------------------------------------------------------------

CONTAINER_FIELDS = frozenset(
    {
        "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
        "resizePolicy", "restartPolicy", "restartPolicyRules", "volumeMounts", "volumeDevices",
        "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
        "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
        "targetContainerName",
    }
)  # fmt: skip
"""Kubernetes' Container fields: keys outside this set are bookkeeping that never leaves the engine."""


RECORD_ANNOTATIONS = {
    ("metadata",): "policy.agent-stack.dev/changed-by",
    ("spec", "template", "metadata"): "policy.agent-stack.dev/job-log-warnings",
}
"""The stack's record of the evaluation, which cannot exist before the evaluation ends: which policies
changed the Job, and the text of the warnings the job gets in its log (both keys are the stack's; a
step's metadata cannot set them). Correction: the catalogue first compared them too, but the
requirement is about the pod an enforce rule judges, and everything else, the hook's volume, mount
and variable included, must be (and is) in place before the enforce phase."""


def without_bookkeeping(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        spec[kind] = [{k: v for k, v in c.items() if k in CONTAINER_FIELDS} for c in spec.get(kind, [])]
    for where, key in RECORD_ANNOTATIONS.items():
        metadata: Any = manifest
        for segment in where:
            metadata = metadata.get(segment, {})
        metadata.get("annotations", {}).pop(key, None)
    return manifest


def test_nothing_after_the_enforce_phase_changes_the_job() -> None:
    policy_set = policies(
        example("20-registry-allow-list.yaml"),
        example("30-queue-resource-bounds.yaml"),
        fixture_policy("enforce-different-leaves.yaml"),
        fixture_policy("zz-snapshot-after-enforce.yaml"),
    )
    job = Job(
        plugin={
            **REACH_PLUGIN,
            "podSpec": {
                **REACH_PLUGIN["podSpec"],
                "containers": [step_container(resources={"requests": {"memory": "16Gi"}})],
            },
        },
        env=("BUILDKITE_AGENT_TOKEN=attacker", "BUILDKITE_AGENT_ENDPOINT=https://attacker.example"),
    )
    decision = run(policy_set, job, {"agent-config": {"endpoint": "https://agent.example.com/v3"}})
    require_admitted_but_for_ephemeral_containers(decision)
    snapshots = [w.message for w in decision.warnings if w.policy == "attack-snapshot-after-enforce"]
    assert len(snapshots) == 1
    seen_last = without_bookkeeping(json.loads(snapshots[0]))
    actual = without_bookkeeping(json.loads(json.dumps(decision.manifest)))
    assert actual == seen_last
