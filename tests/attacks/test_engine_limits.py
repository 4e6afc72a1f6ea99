"""No input slows or wedges the engine, and both evaluation paths mean the same thing.

* ``matches()`` on an author-controlled string finishes whatever the pattern (RE2 is linear). Each
  evaluation runs in a forked child that is killed after a generous deadline: a hang guard, not a
  timing test (the target is milliseconds; figures belong in ``bench/``).
* ``matches()`` agrees with the ``cel`` library itself, which is the reference for CEL semantics.
* Deeply nested or huge plugin input is refused with a denial, never an exception.
* Integers outside 64 bits give the ``cel`` library's result, or a clear denial.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import cel
import pytest
import yaml

from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.model.decision import Decision
from engine.model.job import JobInputError, parse_job
from tests.attacks.harness import (
    PLUGIN_KEY,
    Job,
    config_view,
    policies,
    require_admitted,
    require_denied,
    run,
    step_container,
)
from tests.attacks.oracle import integers_outside_int64

DEADLINE_SECONDS = 60.0
RESULT = "result.attack.test/value"


def policy_file(directory: Path, name: str, expression: str) -> Path:
    """A customize policy that records ``expression`` (a CEL string) as an annotation."""
    document = {
        "apiVersion": "policy.agent-stack.dev/v1",
        "kind": "Policy",
        "metadata": {"name": name},
        "spec": {
            "phase": "customize",
            "rules": [
                {
                    "name": "record",
                    "patch": {"metadata": {"annotations": {RESULT: "${{ " + expression + " }}"}}},
                }
            ],
        },
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=False), encoding="utf-8")
    return path


def recorded(decision: Decision) -> str:
    value: str = decision.manifest["metadata"]["annotations"][RESULT]
    return value


def cel_literal(text: str) -> str:
    """``text`` as a CEL string literal (JSON escapes are valid CEL escapes)."""
    return json.dumps(text, ensure_ascii=True)


# --- regular expressions: linear time --------------------------------------------------------------


def _evaluate_in_child(policy_set: PolicySet, node: dict[str, Any], connection: Any) -> None:
    try:
        decision = evaluate(policy_set, parse_job(node), config_view())
        connection.send(("ok", decision.admitted))
    except Exception as exc:
        connection.send(("raised", f"{type(exc).__name__}: {exc}"[:500]))


def evaluate_with_deadline(policy_set: PolicySet, job: Job) -> tuple[str, Any]:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_evaluate_in_child, args=(policy_set, job.node(), sender), daemon=True)
    child.start()
    try:
        if not receiver.poll(DEADLINE_SECONDS):
            pytest.fail(f"evaluation did not finish within {DEADLINE_SECONDS:.0f} s")
        outcome: tuple[str, Any] = receiver.recv()
        return outcome
    finally:
        child.kill()
        child.join()


LONG = "a" * 5000 + "!"


@pytest.mark.parametrize(
    ("expression", "job"),
    [
        pytest.param(
            'tags.subject.matches("a*a*a*a*a*a*b")',
            Job(tags=("queue=kubernetes", f"subject={LONG}")),
            id="star-chain-on-a-tag",
        ),
        pytest.param(
            'job.env.SUBJECT.matches("^a*a*a*a*a*a*$")', Job(env=(f"SUBJECT={LONG}",)), id="star-chain-on-env"
        ),
        pytest.param('job.command.matches("a*a*a*a*a*a*b")', Job(command=LONG), id="star-chain-on-command"),
        pytest.param('job.command.matches("(a|aa)*b")', Job(command=LONG), id="alternation-on-command"),
        pytest.param(
            'job.command.matches("^(a+)+$")', Job(command="a" * 30000 + "!"), id="nested-plus-on-command"
        ),
    ],
)
def test_catastrophic_patterns_finish(expression: str, job: Job, tmp_path: Path) -> None:
    policy_set = policies(policy_file(tmp_path, "attack-regex", f'{expression} ? "match" : "no-match"'))
    status, detail = evaluate_with_deadline(policy_set, job)
    assert status == "ok", detail


# --- regular expressions: RE2 semantics ------------------------------------------------------------

RE2_CASES = [
    ("(?i)i", "\u0130", "dotted-capital-I-folds-only-in-python"),
    ("(?i)\u0131", "I", "dotless-i-folds-only-in-python"),
    ("(?i)k", "\u212a", "kelvin-sign"),
    ("(?i)s", "\u017f", "long-s"),
    ("^\\d+$", "\u0663\u0664", "arabic-indic-digits"),
    ("^\\d$", "\uff11", "fullwidth-digit"),
    ("^a$", "a\n", "dollar-before-final-newline"),
    ("(?m)^b$", "a\nb\n", "multiline-dollar"),
    ("^.$", "\n", "dot-and-newline"),
    ("(?s)^.$", "\n", "dot-all"),
    ("^\\s$", "\x1c", "file-separator-is-not-space"),
    ("^\\s$", "\u00a0", "no-break-space"),
    ("^[[:alpha:]]+$", "abc", "posix-class"),
    ("^\\pL+$", "\u00e9t\u00e9", "unicode-letter-class"),
    ("caf\u00e9", "cafe\u0301", "combining-accent"),
    ("^\\x{1F600}$", "\U0001f600", "astral-code-point"),
    ("(?i)\u00df", "\u1e9e", "sharp-s"),
    ("^\\w+$", "na\u00efve", "word-with-diaeresis"),
]


RE2_SYNTAX = {
    "arabic-indic-digits": False,
    "fullwidth-digit": False,
    "no-break-space": False,
    "word-with-diaeresis": False,
}
"""Correction: where the ``cel`` library is not RE2, RE2's own syntax reference decides. CEL defines
``matches`` by RE2, whose Perl classes are ASCII (``\\d`` is ``[0-9]``, ``\\s`` is ``[\\t\\n\\f\\r ]``,
``\\w`` is ``[0-9A-Za-z_]``), as in Kubernetes' CEL (cel-go); the library's engine (Rust's ``regex``)
makes them Unicode classes. The issue asks for RE2 semantics on both evaluation paths, so these four
expect RE2's answer; every other case is one where the library and RE2 agree."""


@pytest.mark.parametrize(("pattern", "subject"), [pytest.param(p, s, id=i) for p, s, i in RE2_CASES])
def test_matches_agrees_with_the_cel_library(pattern: str, subject: str, tmp_path: Path) -> None:
    expression = f'job.env.SUBJECT.matches({cel_literal(pattern)}) ? "match" : "no-match"'
    policy_set = policies(policy_file(tmp_path, "attack-re2", expression))
    case = next(i for p, s, i in RE2_CASES if (p, s) == (pattern, subject))
    reference = (
        RE2_SYNTAX[case] if case in RE2_SYNTAX else cel.evaluate("s.matches(p)", {"s": subject, "p": pattern})
    )
    decision = run(policy_set, Job(env=(f"SUBJECT={subject}",)))
    require_admitted(decision)
    actual = recorded(decision)
    assert actual == ("match" if reference else "no-match")


# --- deep and huge input ---------------------------------------------------------------------------


def refusal(job: Job) -> str:
    """``denied`` or ``refused-as-input``; an admitted job or an exception fails the attempt."""
    try:
        parsed = parse_job(job.node())
    except JobInputError:
        return "refused-as-input"
    try:
        decision = evaluate(policies(), parsed, config_view())
    except Exception as exc:
        pytest.fail(f"evaluate raised {type(exc).__name__}: {str(exc)[:200]}")
    require_denied(decision, "a deeply nested or huge plugin config was admitted")
    return "denied"


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    "plugins_json",
    [
        pytest.param(
            f'[{{"{PLUGIN_KEY}": {{"podSpec": {{"x": {nested_lists(20000)}}}}}}}]',
            id="plugin-lists-20000-deep",
        ),
        pytest.param(
            f'[{{"{PLUGIN_KEY}": {{"podSpecPatch": {{"affinity": {nested_objects(20000)}}}}}}}]',
            id="patch-objects-20000-deep",
        ),
        pytest.param(f'[{{"docker#v5": {nested_lists(20000)}}}]', id="other-plugin-20000-deep"),
        pytest.param(nested_lists(20000), id="plugins-list-itself-20000-deep"),
    ],
)
def test_deep_plugin_json_is_refused(plugins_json: str) -> None:
    assert refusal(Job(plugins_json=plugins_json)) in ("denied", "refused-as-input")


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param({"metadata": {"annotations": {"note": "x" * (16 * 2**20)}}}, id="16MiB-annotation"),
        pytest.param(
            {"podSpecPatch": {"nodeSelector": {f"k{i}": "v" * 64 for i in range(200000)}}},
            id="200k-entry-patch",
        ),
        pytest.param(
            {"podSpec": {"containers": [step_container(env=[{"name": "X", "value": "v" * (16 * 2**20)}])]}},
            id="16MiB-env-value",
        ),
    ],
)
def test_huge_plugin_json_is_refused(plugin: dict[str, Any]) -> None:
    assert refusal(Job(plugin=plugin)) in ("denied", "refused-as-input")


@pytest.mark.parametrize("depth", [100, 500])
def test_moderately_nested_plugin_json_never_raises(depth: int) -> None:
    job = Job(
        plugins_json=f'[{{"{PLUGIN_KEY}": {{"podSpecPatch": {{"affinity": {nested_objects(depth)}}}}}}}]'
    )
    try:
        parsed = parse_job(job.node())
    except JobInputError:
        return
    try:
        evaluate(policies(), parsed, config_view())
    except Exception as exc:
        pytest.fail(f"evaluate raised {type(exc).__name__}: {str(exc)[:200]}")


# --- integers beyond 64 bits -----------------------------------------------------------------------

BIG_VALUES = [
    pytest.param(2**64, id="2^64"),
    pytest.param(2**70, id="2^70"),
    pytest.param(2**63, id="2^63-uint-range"),
    pytest.param(-(2**63) - 1, id="below-int64"),
]


@pytest.mark.parametrize("value", BIG_VALUES)
@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("string(plugin.extra)", id="string"),
        pytest.param('plugin.extra > 100 ? "gt" : "le"', id="compare"),
        pytest.param("string(plugin.extra + 1)", id="add"),
        pytest.param('plugin.extra == 18446744073709551615u ? "eq" : "ne"', id="equals-uint64-max-literal"),
    ],
)
def test_big_integers_in_plugin_data_agree_with_the_cel_library(
    value: int, expression: str, tmp_path: Path
) -> None:
    policy_set = policies(policy_file(tmp_path, "attack-big-int", expression))
    plugin = {"podSpec": {"containers": [step_container()]}, "extra": value}
    decision = run(policy_set, Job(plugin=plugin))
    if not decision.admitted:
        return  # a clear denial is an acceptable answer
    try:
        reference = cel.evaluate(expression, {"plugin": plugin})
    except Exception as exc:
        pytest.fail(f"the cel library fails ({type(exc).__name__}: {exc}) but the job was admitted")
    actual = recorded(decision)
    assert actual == str(reference)


def test_int64_overflow_in_arithmetic_agrees_with_the_cel_library(tmp_path: Path) -> None:
    policy_set = policies(policy_file(tmp_path, "attack-overflow", "string(plugin.extra + 1)"))
    plugin = {"podSpec": {"containers": [step_container()]}, "extra": 2**63 - 1}
    decision = run(policy_set, Job(plugin=plugin))
    with pytest.raises(Exception, match="overflow"):
        cel.evaluate("string(plugin.extra + 1)", {"plugin": plugin})
    if decision.admitted:
        pytest.fail(f"admitted with {recorded(decision)!r} where CEL overflows")


def test_a_big_job_priority_agrees_with_the_cel_library(tmp_path: Path) -> None:
    policy_set = policies(policy_file(tmp_path, "attack-priority", "string(job.priority)"))
    node = Job().node()
    node["priority"] = {"number": 2**70}
    try:
        parsed = parse_job(node)
    except JobInputError:
        return  # refusing the job is an acceptable answer
    decision = evaluate(policy_set, parsed, config_view())
    if decision.admitted:
        actual = recorded(decision)
        assert actual == str(cel.evaluate("string(job.priority)", {"job": {"priority": 2**70}}))


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(
            {"podSpec": {"activeDeadlineSeconds": 2**70, "containers": [step_container()]}},
            id="activeDeadlineSeconds",
        ),
        pytest.param(
            {"podSpec": {"terminationGracePeriodSeconds": 2**64, "containers": [step_container()]}},
            id="terminationGracePeriod",
        ),
        pytest.param(
            {"podSpec": {"containers": [step_container(securityContext={"runAsUser": 2**64})]}},
            id="runAsUser",
        ),
        pytest.param(
            {"podSpec": {"securityContext": {"runAsUser": -(2**63) - 1}, "containers": [step_container()]}},
            id="pod-runAsUser",
        ),
        pytest.param({"podSpecPatch": {"activeDeadlineSeconds": 2**70}}, id="patch-activeDeadlineSeconds"),
    ],
)
def test_big_integers_never_reach_the_manifest(plugin: dict[str, Any]) -> None:
    decision = run(policies(), Job(plugin=plugin))
    if decision.admitted:
        actual = integers_outside_int64(decision.manifest)
        assert actual == []


def _app_context(spec: dict[str, Any]) -> Any:
    return (
        next(c for c in spec["containers"] if c.get("name") == "app")
        .get("securityContext", {})
        .get("runAsUser")
    )


@pytest.mark.parametrize(
    ("plugin", "read"),
    [
        pytest.param(
            {"podSpec": {"containers": [step_container(securityContext={"runAsUser": 1000.5})]}},
            _app_context,
            id="runAsUser-fraction",
        ),
        pytest.param(
            {"podSpec": {"containers": [step_container(securityContext={"runAsUser": 1000.0})]}},
            _app_context,
            id="runAsUser-float",
        ),
        pytest.param(
            {"podSpec": {"containers": [step_container(securityContext={"runAsUser": "1000"})]}},
            _app_context,
            id="runAsUser-string",
        ),
        pytest.param(
            {"podSpec": {"containers": [step_container(securityContext={"runAsUser": True})]}},
            _app_context,
            id="runAsUser-boolean",
        ),
        pytest.param(
            {"podSpec": {"activeDeadlineSeconds": 1e400, "containers": [step_container()]}},
            lambda spec: spec.get("activeDeadlineSeconds"),
            id="activeDeadlineSeconds-infinite",
        ),
        pytest.param(
            {"podSpecPatch": {"terminationGracePeriodSeconds": 30.5}},
            lambda spec: spec.get("terminationGracePeriodSeconds"),
            id="patch-terminationGracePeriod-fraction",
        ),
    ],
)
def test_non_integers_where_integers_belong_never_reach_the_manifest(
    plugin: dict[str, Any], read: Any
) -> None:
    decision = run(policies(), Job(plugin=plugin))
    if decision.admitted:
        value = read(decision.manifest["spec"]["template"]["spec"])
        assert isinstance(value, int), f"admitted with {value!r}"
        assert not isinstance(value, bool), f"admitted with {value!r}"
