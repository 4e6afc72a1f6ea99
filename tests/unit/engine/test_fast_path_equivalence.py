"""Whole decisions are identical whether expressions run on the fast path or through the CEL library.

The fast evaluator is checked expression by expression in ``tests/unit/cel_fast``; this checks the
composition: every golden fixture and example job gives the same manifest, denials and warnings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.core.function_registry import REGISTRY
from engine.inputs import load_config_file, load_job_file
from engine.policy.loader import load_policies
from tests.golden import GoldenFixture, golden_fixtures

ROOT = Path(__file__).resolve().parents[3]


def _policies(fixture: GoldenFixture, monkeypatch: pytest.MonkeyPatch, fast: bool) -> PolicySet:
    with monkeypatch.context() as patch:
        patch.setattr(REGISTRY, "fast", fast)
        extra = [fixture.policies] if fixture.policies is not None else []
        return load_policies(extra)


@pytest.mark.parametrize("fixture", list(golden_fixtures()), ids=lambda f: f.name)
def test_fast_path_gives_the_same_decision(fixture: GoldenFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    job = load_job_file(fixture.job)
    config = load_config_file(fixture.config).expression_view()
    fast = evaluate(_policies(fixture, monkeypatch, True), job, config)
    slow = evaluate(_policies(fixture, monkeypatch, False), job, config)
    assert fast.manifest == slow.manifest
    assert fast.denials == slow.denials
    assert fast.warnings == slow.warnings
    assert [(t.policy, t.rule, t.op, t.path) for t in fast.trace] == [
        (t.policy, t.rule, t.op, t.path) for t in slow.trace
    ]


def test_the_fast_path_is_really_used() -> None:
    policies = load_policies([ROOT / "examples" / "policies"])
    conditions = [p.match for p in policies.policies if p.match is not None]
    assert conditions
    assert all(c.fast is not None or c.member_chain is not None for c in conditions)
