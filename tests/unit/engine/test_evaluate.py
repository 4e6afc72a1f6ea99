"""The evaluator: matching, rule kinds, targets, phases, denials, errors, enforcement, trace."""

from __future__ import annotations

from typing import Any

from engine.core.evaluate import evaluate
from engine.model.decision import Decision
from engine.model.job import parse_job

from .policy_text import policy, policy_set

JOB = parse_job(
    {
        "uuid": "0190a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b",
        "command": "make test",
        "env": ["BUILDKITE_PIPELINE_SLUG=ml-train", "BUILDKITE_BRANCH=main"],
        "agentQueryRules": ["queue=gpu"],
    }
)

SKELETON = policy(
    "skeleton",
    "build",
    """
    rules:
    - name: job
      patch:
        apiVersion: batch/v1
        kind: Job
        metadata: {name: 'buildkite-${{ job.uuid }}'}
        spec: {template: {spec: {restartPolicy: Never}}}
    - name: command
      append:
        path: /spec/template/spec/containers
        role: command
        items: [{name: main, image: alpine}, {name: second, image: busybox}]
    - name: sidecar
      append:
        path: /spec/template/spec/containers
        role: sidecar
        items: [{name: db, image: postgres}]
    - name: init
      append: {path: /spec/template/spec/initContainers, items: [{name: prep, image: alpine}]}
    """,
)


def run(*documents: str, config: dict[str, Any] | None = None) -> Decision:
    return evaluate(policy_set(*documents), JOB, config or {})


def containers(decision: Decision) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = decision.manifest["spec"]["template"]["spec"]["containers"]
    return result


def test_match_selects_jobs() -> None:
    rule = "rules:\n- name: label\n  patch: {metadata: {labels: {gpu: 'yes'}}}\n"
    matched = run(SKELETON, policy("gpu", "customize", rule, match='tags.queue == "gpu"'))
    unmatched = run(SKELETON, policy("cpu", "customize", rule, match='tags.queue == "cpu"'))
    assert matched.manifest["metadata"]["labels"] == {"gpu": "yes"}
    assert "labels" not in unmatched.manifest["metadata"]


def test_roles_are_used_for_targets_and_stripped_from_the_result() -> None:
    body = """
    rules:
    - name: env
      target: $command
      patch:
        env:
        - {name: INDEX, value: '${{ string(index) }}'}
        - {name: NAME, value: '${{ container.name }}'}
    """
    decision = run(SKELETON, policy("env", "customize", body))
    main, second, db = containers(decision)
    assert main["env"] == [{"name": "INDEX", "value": "0"}, {"name": "NAME", "value": "main"}]
    assert second["env"] == [{"name": "INDEX", "value": "1"}, {"name": "NAME", "value": "second"}]
    assert "env" not in db
    assert all("$role" not in c for c in containers(decision))


def test_named_and_init_targets() -> None:
    body = """
    rules:
    - {name: by-name, target: db, defaults: {resources: {limits: {cpu: '1'}}}}
    - {name: init, target: $init, defaults: {imagePullPolicy: Always}}
    """
    decision = run(SKELETON, policy("t", "customize", body))
    assert containers(decision)[2]["resources"] == {"limits": {"cpu": "1"}}
    assert decision.manifest["spec"]["template"]["spec"]["initContainers"][0]["imagePullPolicy"] == "Always"


def test_rule_expressions_see_the_document_before_the_rule() -> None:
    body = """
    rules:
    - name: swap
      target: main
      jsonPatch:
      - {op: replace, path: /image, value: '${{ container.name }}-image'}
      - {op: add, path: /args, value: ['${{ container.image }}']}
    """
    main = containers(run(SKELETON, policy("swap", "customize", body)))[0]
    assert main["image"] == "main-image"
    assert main["args"] == ["alpine"]


def test_defaults_do_not_override() -> None:
    body = "rules:\n- {name: d, target: $containers, defaults: {image: other, workingDir: /w}}\n"
    result = containers(run(SKELETON, policy("d", "customize", body)))
    assert [c["image"] for c in result] == ["alpine", "busybox", "postgres"]
    assert {c["workingDir"] for c in result} == {"/w"}


def test_variables_are_visible_to_later_policies() -> None:
    first = policy("define", "build", "variables:\n- name: size\n  value: large\n")
    second = policy(
        "use", "customize", "rules:\n- name: r\n  patch: {metadata: {labels: {size: '${{ vars.size }}'}}}\n"
    )
    assert run(SKELETON, first, second).manifest["metadata"]["labels"] == {"size": "large"}


def test_denials_from_one_phase_are_all_reported_and_later_phases_do_not_run() -> None:
    deny = """
    rules:
    - {name: one, deny: {message: first}}
    - {name: two, deny: {when: 'tags.queue == "gpu"', message: 'second on ${{ tags.queue }}'}}
    - {name: three, deny: {when: 'false', message: never}}
    """
    later = policy("later", "enforce", "rules:\n- {name: x, patch: {metadata: {labels: {ran: 'yes'}}}}\n")
    decision = run(SKELETON, policy("deny", "customize", deny), later)
    assert not decision.admitted
    assert [(d.policy, d.rule, d.message) for d in decision.denials] == [
        ("deny", "one", "first"),
        ("deny", "two", "second on gpu"),
    ]
    assert "labels" not in decision.manifest["metadata"]
    assert decision.failure_message == (
        "first (denied by policy deny, rule one)\nsecond on gpu (denied by policy deny, rule two)"
    )


def test_warn_rules_and_rule_warnings() -> None:
    body = """
    rules:
    - {name: note, warn: {message: 'queue is ${{ tags.queue }}'}}
    - {name: clamp, target: main, patch: {image: clamped}, warning: '${{ container.name }} clamped'}
    - {name: noop, target: main, patch: {image: clamped}, warning: never shown}
    """
    decision = run(SKELETON, policy("w", "customize", body))
    assert decision.admitted
    assert [(w.rule, w.message) for w in decision.warnings] == [
        ("note", "queue is gpu"),
        ("clamp", "main clamped"),
    ]


def test_a_failing_expression_stops_with_an_error_denial() -> None:
    body = "rules:\n- {name: bad, patch: {metadata: {name: '${{ job.env.MISSING }}'}}}\n"
    after = policy("after", "customize", "rules:\n- {name: x, patch: {metadata: {labels: {ran: 'yes'}}}}\n")
    decision = run(SKELETON, policy("broken", "customize", body), after)
    [denial] = decision.denials
    assert denial.kind == "error"
    text = "---\n".join((SKELETON, policy("broken", "customize", body), after))
    bad_rule = "  - {name: bad, patch: {metadata: {name: '${{ job.env.MISSING }}'}}}"
    rule_line = text.splitlines().index(bad_rule) + 1
    policy_line = text.splitlines().index("metadata: {name: broken}") + 1
    assert rule_line != policy_line
    assert denial.message == (
        f"policy broken (test.yaml:{rule_line}) rule bad failed: no such key: 'MISSING' in job.env"
    )
    assert "labels" not in decision.manifest["metadata"]


def test_non_boolean_condition_is_an_error() -> None:
    decision = run(SKELETON, policy("x", "customize", "rules:\n- {name: r, when: '1', patch: {}}\n"))
    assert decision.denials[0].kind == "error"
    assert "when must be true or false, got '1'" in decision.denials[0].message


def test_enforce_owns_what_it_sets() -> None:
    enforce = """
    rules:
    - {name: pin, patch: {spec: {template: {spec: {nodeSelector: {pool: secure}}}}}}
    - {name: unpin, patch: {spec: {template: {spec: {nodeSelector: {pool: cheap}}}}}}
    - {name: other, patch: {spec: {template: {spec: {priorityClassName: low}}}}}
    """
    second = policy(
        "late",
        "enforce",
        "rules:\n- {name: again, patch: {spec: {template: {spec: {nodeSelector: null}}}}}\n",
    )
    decision = run(SKELETON, policy("pin", "enforce", enforce), second)
    pod = decision.manifest["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "secure"}
    assert pod["priorityClassName"] == "low"
    assert [(w.rule, w.message) for w in decision.warnings] == [
        (
            "unpin",
            "skipped: it would change spec.template.spec.nodeSelector.pool, "
            "which enforce rule pin/pin already set",
        ),
        (
            "again",
            "skipped: it would change spec.template.spec.nodeSelector, "
            "which enforce rule pin/pin already set",
        ),
    ]


def test_trace_records_each_change() -> None:
    body = "rules:\n- {name: img, target: main, patch: {image: 'alpine:3'}}\n"
    decision = run(SKELETON, policy("img", "customize", body))
    last = [record for record in decision.trace if record.policy != "stack"][-1]
    assert (last.policy, last.rule, last.op, last.path, last.old, last.new) == (
        "img",
        "img",
        "replace",
        "spec.template.spec.containers[0].image",
        "alpine",
        "alpine:3",
    )
    assert decision.trace[0].policy == "skeleton"


def test_json_patch_with_computed_null_is_skipped() -> None:
    body = "rules:\n- name: r\n  jsonPatch: [{op: add, path: /metadata/labels, value: '${{ null }}'}]\n"
    decision = run(SKELETON, policy("x", "customize", body))
    assert "labels" not in decision.manifest["metadata"]
    assert decision.admitted


def test_append_role_requires_maps() -> None:
    body = "rules:\n- name: r\n  append: {path: /spec/template/spec/containers, role: sidecar, items: [x]}\n"
    decision = run(SKELETON, policy("x", "customize", body))
    assert decision.denials[0].kind == "error"
    assert "needs container maps" in decision.denials[0].message


def test_config_and_stack_are_in_scope() -> None:
    body = """
    rules:
    - name: r
      patch: {metadata: {namespace: '${{ config.namespace }}', labels: {v: '${{ stack.version }}'}}}
    """
    decision = run(SKELETON, policy("x", "customize", body), config={"namespace": "ci"})
    assert decision.manifest["metadata"]["namespace"] == "ci"
    assert decision.manifest["metadata"]["labels"]["v"]
