"""Running suite cases through ``evaluate`` and checking each expectation.

Each case is evaluated exactly as ``engine test`` and the controller evaluate a job; then every
expectation the case states is checked and each failure is one message saying what was expected and
what the decision had. A case passes when it has no failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import jmespath

from engine.core.evaluate import evaluate
from engine.core.patch.strategic import json_equal
from engine.explain.blame import Blame, blame
from engine.explain.paths import Step, resolve
from engine.model.decision import Decision
from engine.model.jsonvalue import JSON, render_path
from engine.suite.load import CompiledAssertion, CompiledExpect, LoadedCase, LoadedSuite
from engine.suite.subset import show, subset_mismatches


@dataclass(frozen=True, slots=True)
class Failure:
    """One unmet expectation: its kind (``decision``, ``manifest``, …), a summary and detail lines."""

    kind: str
    message: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseResult:
    suite: str
    name: str
    where: str
    failures: tuple[Failure, ...] = ()
    decision: Decision | None = field(default=None, compare=False, repr=False)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_suite(suite: LoadedSuite, case_filter: re.Pattern[str] | None = None) -> list[CaseResult]:
    """Every case of ``suite`` (those whose name matches ``case_filter``), in order."""
    results: list[CaseResult] = []
    for case in suite.cases:
        if case_filter is not None and not case_filter.search(case.name):
            continue
        results.append(run_case(suite, case))
    return results


def run_case(suite: LoadedSuite, case: LoadedCase) -> CaseResult:
    decision = evaluate(suite.policies, case.job, case.config.expression_view())
    failures = check(case.expect, decision)
    return CaseResult(str(suite.file), case.name, case.where, tuple(failures), decision)


def check(expect: CompiledExpect, decision: Decision) -> list[Failure]:
    """Every failure of ``decision`` to meet ``expect``."""
    failures: list[Failure] = []
    wanted = expect.expect.decision or ("deny" if expect.denial is not None else None)
    got = "admit" if decision.admitted else "deny"
    if wanted is not None and wanted != got:
        reasons = tuple(f"{d.render()}" for d in decision.denials)
        suffix = f" ({'; '.join(reasons)})" if reasons else ""
        failures.append(Failure("decision", f"expected {wanted}, got {got}{suffix}"))
    if expect.denial is not None and not decision.admitted:
        messages = [d.message for d in decision.denials] + [d.render() for d in decision.denials]
        if not any(expect.denial.search(m) for m in messages):
            failures.append(
                Failure(
                    "denial",
                    f"no denial matches /{expect.denial.pattern}/",
                    tuple(f"got: {d.render()}" for d in decision.denials),
                )
            )
    if expect.warnings is not None:
        failures.extend(_warning_failures(expect.warnings, decision))
    manifest_expected = expect.expect.manifest
    if manifest_expected is not None:
        lines = subset_mismatches(manifest_expected, decision.manifest)
        if lines:
            failures.append(Failure("manifest", lines[0], tuple(lines[1:])))
    for assertion in expect.assertions:
        failure = _assertion_failure(assertion, decision.manifest)
        if failure is not None:
            failures.append(failure)
    if expect.set_by:
        state = blame(decision)
        for item in expect.set_by:
            failure = _set_by_failure(item.path, item.steps, item.policy, item.rule, decision, state)
            if failure is not None:
                failures.append(failure)
    return failures


def _warning_failures(patterns: tuple[re.Pattern[str], ...], decision: Decision) -> list[Failure]:
    rendered = [w.render() for w in decision.warnings]
    if not patterns:
        if rendered:
            return [Failure("warnings", "expected no warnings", tuple(f"got: {w}" for w in rendered))]
        return []
    out: list[Failure] = []
    for pattern in patterns:
        if not any(pattern.search(w) for w in rendered):
            got = tuple(f"got: {w}" for w in rendered) or ("got: no warnings",)
            out.append(Failure("warnings", f"no warning matches /{pattern.pattern}/", got))
    return out


def _assertion_failure(item: CompiledAssertion, manifest: JSON) -> Failure | None:
    expression = item.assertion.jmespath
    result = item.expression.search(manifest, options=jmespath.Options())
    name, expected = item.assertion.check
    ok: bool
    if name == "equals":
        ok = json_equal(expected, result)
    elif name == "notEquals":
        ok = not json_equal(expected, result)
    elif name == "matches":
        ok = isinstance(result, str) and item.pattern is not None and item.pattern.search(result) is not None
    elif name == "exists":
        ok = (result is not None) == bool(expected)
    elif name == "contains":
        if isinstance(result, list):
            ok = any(json_equal(expected, element) for element in result)
        else:
            ok = isinstance(result, str) and isinstance(expected, str) and expected in result
    else:  # length
        ok = isinstance(result, list | dict | str) and len(result) == expected
    if ok:
        return None
    shown = (
        f"/{expected}/"
        if name == "matches"
        else show(expected)
        if name != "exists"
        else str(expected).lower()
    )
    return Failure("assertion", f"{expression}: expected {name} {shown}, got {show(result)}")


def _set_by_failure(
    text: str,
    steps: tuple[Step, ...],
    policy: str,
    rule: str | None,
    decision: Decision,
    state: Blame,
) -> Failure | None:
    path = resolve(decision.manifest, steps)
    wanted = f"{policy}/{rule}" if rule is not None else policy
    if path is None:
        return Failure("setBy", f"{text}: expected a field set by {wanted}, but the Job has no such field")
    node = state.node_at(path)
    if node is None or not node.writers:
        return Failure("setBy", f"{text}: expected {wanted}, but no rule wrote it")
    last = node.writers[-1]
    if last.policy == policy and (rule is None or last.rule == rule):
        return None
    earlier = tuple(f"before that: {w.render()}" for w in reversed(node.writers[:-1]))
    return Failure("setBy", f"{render_path(path)}: expected set by {wanted}, got {last.render()}", earlier)
