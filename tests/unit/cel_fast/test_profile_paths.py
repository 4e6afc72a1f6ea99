"""The upstream-v0.47 profile gives the same decisions on both evaluation paths.

The profile's policies are compiled twice: as the engine does (the fast path wherever an expression is
in its subset) and with every expression left to the ``cel`` library (the reference). Every golden
fixture of the profile must then get the same Job, denials and warnings from both.
"""

from __future__ import annotations

import pytest

from engine.core.cel_fast import compile_fast
from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.core.expressions import _rewrite_vars
from engine.core.function_registry import REGISTRY
from engine.dry_run import read_pod_templates
from engine.inputs import load_config_file, load_job_file
from engine.policy.loader import load_policies
from tests.golden import V047_PROFILE_DIR as PROFILE_DIR
from tests.golden import GoldenFixture, v047_fixtures
from tests.unit.cel_fast import FUNCTIONS
from tests.unit.cel_fast.test_policies import policy_expressions

FIXTURES = v047_fixtures()


def _policies(fast: bool, monkeypatch: pytest.MonkeyPatch) -> PolicySet:
    with monkeypatch.context() as patched:
        patched.setattr(REGISTRY, "fast", fast)
        return load_policies([], profile="upstream-v0.47")


@pytest.fixture(scope="module")
def both_paths() -> tuple[PolicySet, PolicySet]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _policies(True, monkeypatch), _policies(False, monkeypatch)


def test_the_library_only_set_has_no_fast_programs(both_paths: tuple[PolicySet, PolicySet]) -> None:
    fast, library = both_paths

    def programs(policies: PolicySet) -> list[object]:
        return [e.fast for p in policies.policies for v in p.variables for e in v.value.expressions()]

    assert any(programs(fast))
    assert not any(programs(library))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_both_paths_decide_alike(fixture: GoldenFixture, both_paths: tuple[PolicySet, PolicySet]) -> None:
    fast, library = both_paths
    job = load_job_file(fixture.job)
    view = load_config_file(fixture.config).expression_view()
    templates_dir = fixture.path / "pod-templates"
    files = sorted(templates_dir.glob("*.yaml")) if templates_dir.is_dir() else []
    arguments = [f"{f.stem}={f}" for f in files]
    templates, problems = read_pod_templates(arguments)
    assert problems == []
    one = evaluate(fast, job, view, pod_templates=templates)
    other = evaluate(library, job, view, pod_templates=templates)
    assert (one.admitted, one.manifest, one.denials, one.warnings) == (
        other.admitted,
        other.manifest,
        other.denials,
        other.warnings,
    )


PROFILE_EXPRESSIONS = policy_expressions(sorted(PROFILE_DIR.glob("*.yaml")))


def test_the_profile_holds_many_expressions() -> None:
    assert len(PROFILE_EXPRESSIONS) > 100


@pytest.mark.parametrize(("file", "source"), PROFILE_EXPRESSIONS)
def test_every_profile_expression_is_in_the_fast_subset(file: str, source: str) -> None:
    compile_fast(_rewrite_vars(source), FUNCTIONS)
