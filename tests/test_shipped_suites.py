"""The suites that ship with the default policy set and with every example policy pass, through the
real ``engine test --suite`` command, as CI runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "policies"
SUITE_DIRS = [ROOT / "tests" / "suites", EXAMPLES / "suites"]


@pytest.mark.parametrize("directory", SUITE_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_suites_pass(directory: Path) -> None:
    result = CliRunner().invoke(app, ["test", "--suite", str(directory)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stderr == ""
    summary = result.stdout.splitlines()[-1]
    passed = int(summary.split()[0])
    assert summary == f"{passed} passed, 0 failed"
    assert passed >= 9


def test_every_example_policy_has_its_own_suite() -> None:
    examples = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    suites = sorted(p.name.removesuffix(".suite.yaml") for p in (EXAMPLES / "suites").glob("*.suite.yaml"))
    assert examples == suites
    for name in examples:
        text = (EXAMPLES / "suites" / f"{name}.suite.yaml").read_text(encoding="utf-8")
        # the example itself, after what it builds on (41 reads the baseline policy's variables)
        assert yaml.safe_load(text)["policies"][-1] == f"../{name}.yaml"
        assert text.count("\n- name: ") >= 2, (
            f"{name}: a case where the policy acts and one where it does not"
        )
