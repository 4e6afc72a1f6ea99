"""The finishing step inside evaluate, the Kubernetes check's denials, warnings and failure text."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import __version__
from engine.core.compiler import PolicyError, PolicySet
from engine.core.evaluate import evaluate
from engine.core.finish import (
    ADDITIONAL_HOOKS_ENV,
    CHANGED_BY_ANNOTATION,
    CONTROLLER_ID_LABEL,
    WARNINGS_HOOK_ANNOTATION,
    WARNINGS_HOOKS_DIR,
    WARNINGS_VOLUME,
    warnings_hook,
)
from engine.model.config import parse_config
from engine.model.decision import Decision, PolicyWarning
from engine.model.job import parse_job
from engine.policy.loader import load_policies

from .policy_text import policy, policy_set

ROOT = Path(__file__).resolve().parents[3]
DEFAULTS = load_policies([])
CONFIG = parse_config({"namespace": "ci", "tags": ["queue=linux"]}, "test")


def job(plugins: Any = None, **extra: Any) -> Any:
    env = ["BUILDKITE_BUILD_URL=https://buildkite.com/o/p/builds/1"]
    if plugins is not None:
        env.append("BUILDKITE_PLUGINS=" + json.dumps(plugins))
    return parse_job(
        {
            "uuid": "0190a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b",
            "command": "make test",
            "env": env,
            "agentQueryRules": ["queue=linux"],
            **extra,
        }
    )


def kubernetes(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": config}]


def decide(job_: Any = None, policies: Any = DEFAULTS, config: Any = CONFIG) -> Decision:
    return evaluate(policies, job_ or job(), config.expression_view())


def test_the_finished_job_is_in_the_configured_namespace_and_labelled_with_the_controller_id() -> None:
    decision = decide()
    metadata = decision.manifest["metadata"]
    assert metadata["namespace"] == "ci"
    assert metadata["labels"][CONTROLLER_ID_LABEL] == "ci.linux"
    assert decision.manifest["spec"]["template"]["metadata"]["labels"][CONTROLLER_ID_LABEL] == "ci.linux"
    configured = parse_config({"namespace": "ci", "tags": ["queue=linux"], "id": "stack-a"}, "test")
    assert decide(config=configured).manifest["metadata"]["labels"][CONTROLLER_ID_LABEL] == "stack-a"


def test_a_policy_cannot_move_the_job_out_of_the_controllers_namespace() -> None:
    moved = policy("mover", "enforce", "rules:\n- {name: ns, patch: {metadata: {namespace: elsewhere}}}\n")
    decision = evaluate(
        policy_set(*(Path(p).read_text() for p in sorted((ROOT / "policies").glob("*.yaml"))), moved),
        job(),
        CONFIG.expression_view(),
    )
    assert decision.manifest["metadata"]["namespace"] == "ci"
    assert [w.render() for w in decision.warnings if w.policy == "mover"] == [
        "mover/ns: skipped: it would change metadata.namespace, which the finishing step (stack/finish) "
        "already set"
    ]


def digest_of_file_document(name: str) -> str:
    for file in sorted((ROOT / "policies").glob("*.yaml")):
        for document in yaml.safe_load_all(file.read_text()):
            if document["metadata"]["name"] == name:
                canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                return hashlib.sha256(canonical.encode()).hexdigest()[:8]
    raise KeyError(name)


def test_changed_by_names_each_policy_that_changed_the_job_with_its_digest_then_the_stack() -> None:
    decision = decide()
    entries = decision.manifest["metadata"]["annotations"][CHANGED_BY_ANNOTATION].split(",")
    names = list(dict.fromkeys(r.policy for r in decision.trace if r.policy != "stack"))
    assert [entry.split("@")[0] for entry in entries] == [*names, "stack"]
    assert entries[-1] == f"stack@{__version__}"
    for entry in entries[:-1]:
        name, digest = entry.split("@")
        assert digest == digest_of_file_document(name)


def test_a_digest_changes_with_the_meaning_of_a_policy_not_its_formatting() -> None:
    body = "rules:\n- {name: l, patch: {metadata: {labels: {a: b}}}}\n"
    same = policy("p", "customize", body)
    reformatted = same.replace(
        "{name: l, patch: {metadata: {labels: {a: b}}}}",
        "name: l\n    patch:\n      metadata: {labels: {a: b}}  # a comment",
    )
    changed = policy("p", "customize", body.replace("{a: b}", "{a: c}"))
    digests = [policy_set(text).digests["p"] for text in (same, reformatted, changed)]
    assert digests[0] == digests[1] != digests[2]


def test_the_finishing_step_is_traced_as_stack_finish_after_every_policy() -> None:
    decision = decide()
    finish = [r for r in decision.trace if r.policy == "stack"]
    assert {r.rule for r in finish} == {"finish"}
    assert decision.trace[-len(finish) :] == tuple(finish)
    assert 'metadata.labels["buildkite.com/controller-id"]' in {r.path for r in finish}


def test_the_name_stack_is_reserved() -> None:
    with pytest.raises(PolicyError, match="the policy name 'stack' is reserved"):
        policy_set(policy("stack", "build", "rules: []\n"))


def test_unknown_plugin_fields_are_warnings_with_did_you_mean_and_reach_the_job_log() -> None:
    decision = decide(job(kubernetes({"comandParams": {"interposer": "vector"}, "sidecars": []})))
    assert decision.admitted
    [warning] = [w for w in decision.warnings if w.policy == "stack"]
    assert warning.rule == "kubernetes-plugin"
    assert warning.message == (
        'kubernetes plugin: comandParams: unknown field (did you mean "commandParams"?); '
        "it is ignored, so the pod is built without it"
    )
    template = decision.manifest["spec"]["template"]
    hook = template["metadata"]["annotations"][WARNINGS_HOOK_ANNOTATION]
    assert hook == warnings_hook(decision.warnings)
    [volume] = [v for v in template["spec"]["volumes"] if v["name"] == WARNINGS_VOLUME]
    assert volume["downwardAPI"]["items"] == [
        {
            "path": "environment",
            "fieldRef": {"fieldPath": f"metadata.annotations['{WARNINGS_HOOK_ANNOTATION}']"},
            "mode": 0o755,
        }
    ]
    containers = template["spec"]["containers"]
    mounted = [
        c["name"] for c in containers if any(m["name"] == WARNINGS_VOLUME for m in c.get("volumeMounts", []))
    ]
    assert mounted == ["checkout"]  # container 0 of the agent: printed once, first
    [checkout] = [c for c in containers if c["name"] == "checkout"]
    assert checkout["env"][-1] == {"name": ADDITIONAL_HOOKS_ENV, "value": WARNINGS_HOOKS_DIR}


def test_without_checkout_the_hook_goes_to_the_first_command_container() -> None:
    plugin = kubernetes({"checkout": {"skip": True}, "podSpecPatch": {"nodeSelectr": {"a": "b"}}})
    decision = decide(job(plugin))
    assert not decision.admitted  # the typo reaches the pod spec: the Kubernetes check refuses it
    decision = decide(job(kubernetes({"checkout": {"skip": True}, "metadata": {"label": {}}})))
    containers = decision.manifest["spec"]["template"]["spec"]["containers"]
    mounted = [
        c["name"] for c in containers if any(m["name"] == WARNINGS_VOLUME for m in c.get("volumeMounts", []))
    ]
    assert mounted == ["container-0"]


def test_the_job_log_hook_can_be_turned_off() -> None:
    config = parse_config({"job-log-warnings": False}, "test")
    decision = decide(job(kubernetes({"comandParams": {}})), config=config)
    assert decision.warnings
    assert WARNINGS_HOOK_ANNOTATION not in decision.manifest["spec"]["template"]["metadata"].get(
        "annotations", {}
    )


def test_the_hook_prints_every_warning_verbatim_whatever_it_contains(tmp_path: Path) -> None:
    warnings = [
        PolicyWarning("p", "r", 'it\'s $HOME and `date` and "quotes" \\ back'),
        PolicyWarning("q", "s", "second"),
    ]
    script = tmp_path / "environment"
    script.write_text(warnings_hook(warnings))
    result = subprocess.run(["sh", "-eu", str(script)], capture_output=True, text=True, check=True, env={})
    assert result.stdout.splitlines() == [
        "+++ :warning: agent-stack-policy: 2 warnings",
        'p/r: it\'s $HOME and `date` and "quotes" \\ back',
        "q/s: second",
    ]


def test_a_job_the_api_would_refuse_is_denied_naming_the_rule_that_wrote_the_field() -> None:
    bad = policy(
        "labels", "customize", "rules:\n- {name: team, patch: {metadata: {labels: {team: 'a b'}}}}\n"
    )
    decision = evaluate(
        policy_set(*(Path(p).read_text() for p in sorted((ROOT / "policies").glob("*.yaml"))), bad),
        job(),
        CONFIG.expression_view(),
    )
    assert not decision.admitted
    [denial] = decision.denials
    assert (denial.policy, denial.rule, denial.kind) == ("labels", "team", "invalid")
    assert denial.message.startswith(
        'Kubernetes would refuse this Job: metadata.labels.team: "a b" is not a valid label value'
    )
    assert decision.failure_message.endswith("(last set by policy labels, rule team)")


def test_a_step_podspec_typo_is_denied_at_the_field_naming_the_rule_that_copied_it() -> None:
    decision = decide(
        job(
            kubernetes(
                {"podSpecPatch": {"containers": [{"name": "container-0", "imagePullPolcy": "Always"}]}}
            )
        )
    )
    assert not decision.admitted
    [denial] = decision.denials
    assert denial.policy == "step-pod-spec-patch"
    assert 'imagePullPolcy" in Container (did you mean "imagePullPolicy"?)' in denial.message


def test_failure_message_names_policy_and_rule_after_the_message() -> None:
    deny = policy("gate", "enforce", "rules:\n- {name: never, deny: {message: 'not here'}}\n")
    decision = evaluate(policy_set(deny), job(), {})
    assert decision.failure_message == "not here (denied by policy gate, rule never)"


def test_run_time_plugin_warnings_say_what_engine_lint_says(tmp_path: Path) -> None:
    from engine.lint import lint_pipeline  # noqa: PLC0415 - only this test needs the linter

    plugin = {
        "comandParams": {"interposer": "vector"},
        "podSpec": {"containers": [{"image": "a", "imagee": "b"}]},
    }
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(yaml.safe_dump({"steps": [{"command": "x", "plugins": [{"kubernetes": plugin}]}]}))
    linted = {
        p.path.removeprefix("steps[0].plugins[0].kubernetes."): p.message
        for p in lint_pipeline(pipeline).problems
    }
    decision = decide(job(kubernetes(plugin)))
    warned = {
        w.message.removeprefix("kubernetes plugin: ").split(": ", 1)[0]: w.message.split(": ", 2)[2].split(
            ";"
        )[0]
        for w in decision.warnings
        if w.rule == "kubernetes-plugin"
    }
    assert warned == linted
    assert warned["comandParams"] == 'unknown field (did you mean "commandParams"?)'


def _has_hook(decision: Decision) -> bool:
    return WARNINGS_HOOK_ANNOTATION in decision.manifest["spec"]["template"]["metadata"].get(
        "annotations", {}
    )


def test_the_hook_is_in_place_for_a_job_an_enforce_policy_may_warn_about_and_only_for_it() -> None:
    """The hook must exist before the enforce phase (nothing changes the pod after it), so it is put
    in place when an enforce policy that could warn matches the job; a match decided only by the
    job and config keeps the hook (and its volume) off every other job's pod."""

    def with_defaults(document: str) -> PolicySet:
        return PolicySet.build([*DEFAULTS.policies, *policy_set(document).policies])

    warn = "rules:\n- {name: w, warn: {message: careful}}\n"
    policies = with_defaults(policy("warner", "enforce", warn, match='pipeline.slug == "p"'))
    other = decide(job(pipeline={"slug": "other", "name": "other"}), policies)
    assert other.admitted
    assert not other.warnings
    assert not _has_hook(other)
    matched = decide(job(pipeline={"slug": "p", "name": "p"}), policies)
    assert [w.message for w in matched.warnings] == ["careful"]
    assert _has_hook(matched)
    # a match that reads the pod is decided in the enforce phase: the hook is put in place anyway
    by_pod = with_defaults(policy("by-pod", "enforce", warn, match="size(pod) < 0"))
    undecided = decide(job(pipeline={"slug": "other", "name": "other"}), by_pod)
    assert undecided.admitted
    assert not undecided.warnings
    assert _has_hook(undecided)


def test_a_match_on_the_jobs_tags_or_plugin_is_decided_before_the_hook_is_placed() -> None:
    """``tags`` and ``plugin`` come from the job, as ``pipeline`` does: the finishing step cannot change
    them, so a job such a match leaves out gets no hook."""
    warn = "rules:\n- {name: w, warn: {message: careful}}\n"
    for match in ('"gpu" in tags', "plugin != null"):
        policies = PolicySet.build(
            [*DEFAULTS.policies, *policy_set(policy("w", "enforce", warn, match=match)).policies]
        )
        decision = decide(job(), policies)
        assert decision.admitted
        assert not decision.warnings
        assert not _has_hook(decision), match
