"""The enforce phase means what the docs say: rules own leaves, every container is reachable, roles stick."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.evaluate import evaluate
from engine.model.decision import Decision
from engine.model.job import parse_job
from tests.unit.engine.policy_text import policy, policy_set
from tests.unit.guardrails import decide, denials, job, pod

SKELETON = policy(
    "skeleton",
    "build",
    """
    rules:
    - name: job
      patch: {apiVersion: batch/v1, kind: Job, metadata: {name: j}}
    - name: command
      append: {path: /spec/template/spec/containers, role: command, items: [{name: main, image: alpine}]}
    - name: agent
      append: {path: /spec/template/spec/containers, role: agent, items: [{name: agent, image: agent}]}
    - name: helper
      append: {path: /spec/template/spec/initContainers, role: system, items: [{name: copy, image: agent}]}
    - name: step-init
      append: {path: /spec/template/spec/initContainers, items: [{name: mine, image: x}]}
    """,
)
JOB = parse_job({"uuid": "u", "command": "make", "agentQueryRules": ["queue=k"]})


def run(*documents: str) -> Decision:
    return evaluate(policy_set(SKELETON, *documents), JOB, {})


def spec(decision: Decision) -> dict[str, Any]:
    result: dict[str, Any] = decision.manifest["spec"]["template"]["spec"]
    return result


def by_name(decision: Decision, name: str) -> dict[str, Any]:
    lists = ("containers", "initContainers", "ephemeralContainers")
    return next(c for key in lists for c in spec(decision).get(key, []) if c["name"] == name)


# -- (a) a rule owns exactly the leaves it set -----------------------------------------------------


def test_adding_a_map_does_not_block_another_key_inside_it() -> None:
    enforce = """
    rules:
    - {name: memory, target: $command, patch: {resources: {limits: {memory: 8Gi}}}}
    - {name: cpu, target: $command, patch: {resources: {limits: {cpu: "2"}}}}
    - {name: seccomp, target: $command, patch: {securityContext: {seccompProfile: {type: RuntimeDefault}}}}
    - {name: escalation, target: $command, patch: {securityContext: {allowPrivilegeEscalation: false}}}
    """
    decision = run(policy("bounds", "enforce", enforce))
    main = by_name(decision, "main")
    assert main["resources"] == {"limits": {"memory": "8Gi", "cpu": "2"}}
    assert main["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "allowPrivilegeEscalation": False,
    }
    assert decision.warnings == ()


def test_two_rules_setting_the_same_leaf_conflict_and_the_first_wins() -> None:
    enforce = """
    rules:
    - {name: first, target: $command, patch: {resources: {limits: {memory: 8Gi}}}}
    - {name: second, target: $command, patch: {resources: {limits: {memory: 64Gi, cpu: "1"}}}}
    """
    decision = run(policy("bounds", "enforce", enforce))
    assert by_name(decision, "main")["resources"] == {"limits": {"memory": "8Gi"}}
    (warning,) = decision.warnings
    assert warning.message == (
        "skipped: it would change spec.template.spec.containers[0].resources.limits.memory, "
        "which enforce rule bounds/first already set"
    )


FIRST = "enforce rule first/r"
FINISH = "the finishing step (stack/finish)"
"""Replacing the whole container also drops the job-log hook's mount, which the finishing step put in
place before the enforce phase (enforce rules that change the Job can warn): that lock is met first."""


@pytest.mark.parametrize(
    ("later", "shown", "owner"),
    [
        ("{resources: null}", ".resources", FIRST),
        ("{resources: {limits: null}}", ".resources.limits", FIRST),
        ("{resources: {$patch: replace, requests: {cpu: '1'}}}", ".resources", FIRST),
        ("{$patch: replace, name: main, image: alpine}", "", FINISH),
        ("{$retainKeys: [name, image], image: alpine}", ".volumeMounts", FINISH),
    ],
)
def test_removing_or_replacing_a_map_above_an_owned_leaf_conflicts(
    later: str, shown: str, owner: str
) -> None:
    first = policy(
        "first",
        "enforce",
        "rules:\n- {name: r, target: $command, patch: {resources: {limits: {memory: 8Gi}}}}",
    )
    second = policy("second", "enforce", f"rules:\n- name: r\n  target: $command\n  patch: {later}\n")
    decision = run(first, second)
    assert by_name(decision, "main")["resources"] == {"limits": {"memory": "8Gi"}}
    (warning,) = decision.warnings
    assert warning.message == (
        f"skipped: it would change spec.template.spec.containers[0]{shown}, which {owner} already set"
    )


def test_an_owned_removal_cannot_be_undone() -> None:
    first = policy(
        "first", "enforce", "rules:\n- {name: r, patch: {spec: {template: {spec: {hostNetwork: null}}}}}"
    )
    seed = policy(
        "seed", "customize", "rules:\n- {name: r, patch: {spec: {template: {spec: {hostNetwork: true}}}}}"
    )
    second = policy(
        "second", "enforce", "rules:\n- {name: r, patch: {spec: {template: {spec: {hostNetwork: true}}}}}"
    )
    decision = run(seed, first, second)
    assert "hostNetwork" not in spec(decision)
    assert [w.policy for w in decision.warnings] == ["second"]


def test_inserting_a_container_before_an_owned_one_is_not_a_conflict() -> None:
    first = policy(
        "first", "enforce", "rules:\n- {name: r, target: main, patch: {resources: {limits: {memory: 8Gi}}}}"
    )
    second = policy(
        "second",
        "enforce",
        "rules:\n- {name: r, patch: {spec: {template: {spec: {containers: [{name: new, image: y}]}}}}}",
    )
    decision = run(first, second)
    assert [c["name"] for c in spec(decision)["containers"]] == ["new", "main", "agent"]
    assert by_name(decision, "main")["resources"] == {"limits": {"memory": "8Gi"}}
    assert decision.warnings == ()


def test_the_same_rule_may_change_its_own_leaves_on_each_target() -> None:
    body = "rules:\n- {name: r, target: $all, patch: {securityContext: {runAsNonRoot: true}}}"
    decision = run(policy("all", "enforce", body))
    assert all(
        c["securityContext"] == {"runAsNonRoot": True}
        for c in [by_name(decision, n) for n in ("main", "agent", "copy", "mine")]
    )
    assert decision.warnings == ()


# -- (b) every container is reachable ----------------------------------------------------------------


PATCH_ADDED = policy(
    "patch-added",
    "customize",
    """
    rules:
    - name: r
      patch:
        spec:
          template:
            spec:
              containers: [{name: added, image: z}]
              ephemeralContainers: [{name: dbg, image: busybox}]
    """,
)


def names_reached(target: str) -> list[str]:
    body = f"rules:\n- name: tag\n  target: {target}\n  patch: {{env: [{{name: HIT, value: 'yes'}}]}}\n"
    result = run(PATCH_ADDED, policy("probe", "enforce", body))
    return [
        c["name"]
        for key in ("containers", "initContainers", "ephemeralContainers")
        for c in spec(result).get(key, [])
        if any(e.get("name") == "HIT" for e in c.get("env", []))
    ]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("$command", ["main"]),
        ("$agent", ["agent"]),
        ("$step", ["added", "main", "mine", "dbg"]),
        ("$all", ["added", "main", "agent", "copy", "mine", "dbg"]),
        ("$containers", ["added", "main", "agent"]),
        ("$init", ["copy", "mine"]),
        ("$ephemeral", ["dbg"]),
        ("dbg", ["dbg"]),
        ("added", ["added"]),
    ],
)
def test_targets_reach_every_container_whatever_put_it_there(target: str, expected: list[str]) -> None:
    assert names_reached(target) == expected


@pytest.mark.parametrize(
    "patch",
    [
        "{containers: [{$patch: replace}, {name: agent, image: evil}, {name: main, image: alpine}]}",
        "{containers: [{name: agent, $retainKeys: [name, image], image: evil}]}",
    ],
)
def test_a_role_follows_its_container_through_replacing_patches(patch: str) -> None:
    step = policy(
        "step", "customize", f"rules:\n- name: r\n  patch: {{spec: {{template: {{spec: {patch}}}}}}}\n"
    )
    probe = policy(
        "probe", "enforce", "rules:\n- {name: r, target: $agent, patch: {env: [{name: AGENT, value: 'yes'}]}}"
    )
    agent = by_name(run(step, probe), "agent")
    assert agent["image"] == "evil"
    assert agent["env"] == [{"name": "AGENT", "value": "yes"}]


def test_a_replace_directive_element_replaces_the_whole_list() -> None:
    """{$patch: replace} with other keys in a list element replaces the list (apimachinery): the step
    can only remove containers this way, and the stack's containers are then simply gone."""
    step = policy(
        "step",
        "customize",
        "rules:\n- name: r\n  patch:\n"
        "    spec: {template: {spec: {containers: [{name: agent, $patch: replace}]}}}\n",
    )
    assert spec(run(step))["containers"] == []


def test_roles_never_leave_the_engine() -> None:
    decision = run()
    for key in ("containers", "initContainers"):
        assert all("$role" not in c for c in spec(decision)[key])


# -- with the default policies: a patch-added container is the step's --------------------------------


def test_a_container_added_by_a_step_patch_is_reached_by_step() -> None:
    plugin = {"podSpecPatch": {"containers": [{"name": "miner", "image": "evil/miner"}]}}
    result = decide(job(plugin=plugin), "tests/unit/guardrails/policies/no-evil-step.yaml")
    assert denials(result) == ["step container miner"]
    assert next(c["name"] for c in pod(result)["containers"]) == "miner"
