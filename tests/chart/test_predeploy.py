"""The supported pre-deploy check: ``helm template ... | engine validate --from-manifests -`` loads
the config and policies the chart would mount exactly as ``engine run`` would, and fails with each
problem named by object, key and position.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.model.policy import API_VERSION
from tests.chart import TOKENS, template_result

ENGINE = str(Path(sys.executable).parent / "engine")
GOOD_POLICY = f"apiVersion: {API_VERSION}\nkind: Policy\nmetadata: {{name: extra}}\nspec: {{phase: build}}\n"
BROKEN_POLICY = (
    f"apiVersion: {API_VERSION}\nkind: Policy\nmetadata: {{name: broken}}\nspec:\n  phase: customize\n"
    "  rules:\n  - name: typo\n    patch: {spec: {template: {spec: {nodeSelectr: {a: b}}}}}\n"
)


def check(*helm_args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rendered = template_result([], helm_args)
    assert rendered.returncode == 0, rendered.stderr
    manifests = tmp_path / "rendered.yaml"
    manifests.write_text(rendered.stdout, encoding="utf-8")
    return subprocess.run(
        [ENGINE, "validate", "--from-manifests", "-"],
        input=rendered.stdout,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def policy_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_good_release_passes_with_its_policies_loaded(tmp_path: Path) -> None:
    result = check(
        *TOKENS,
        "--set-file",
        f"policies.extra\\.yaml={policy_file(tmp_path, GOOD_POLICY)}",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "OK: Deployment ci-agent-stack-k8s: config ConfigMap ci-agent-stack-k8s-config"
    )
    assert "(1 files mounted)" in result.stdout


def test_a_policy_the_controller_would_refuse_fails_the_check_with_its_position(tmp_path: Path) -> None:
    result = check(
        *TOKENS,
        "--set-file",
        f"policies.broken\\.yaml={policy_file(tmp_path, BROKEN_POLICY)}",
        tmp_path=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        'ConfigMap ci-agent-stack-k8s-policies broken.yaml:8:38: unknown field "nodeSelectr" in PodSpec'
        ' (did you mean "nodeSelector"?)'
    )


def test_config_the_schema_cannot_see_is_still_checked(tmp_path: Path) -> None:
    """Environment variables override the file: a bad MAX_IN_FLIGHT in controllerEnv is caught."""
    result = check(
        *TOKENS, "--set-json", 'controllerEnv=[{"name":"MAX_IN_FLIGHT","value":"lots"}]', tmp_path=tmp_path
    )
    assert result.returncode == 2
    assert 'env MAX_IN_FLIGHT: max-in-flight: expected an integer, got the string "lots"' in result.stderr


def test_what_is_not_rendered_is_named_not_guessed(tmp_path: Path) -> None:
    result = check(
        "--set",
        "agentStackSecret=tokens",
        "--set",
        "config.org=o",
        "--set",
        "policiesConfigMap=mine",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "note: Deployment ci-agent-stack-k8s: Secret tokens is not in the manifests" in result.stderr
    assert "ConfigMap mine is not in the manifests; only the default set was checked" in result.stderr


def test_manifests_without_a_controller_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [ENGINE, "validate", "--from-manifests", "-"],
        input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "no controller found" in result.stderr
