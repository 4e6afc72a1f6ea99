"""A handful of attacks end to end through ``engine test`` in a subprocess, as an admin dry-runs them.

Exit codes are the interface: 0 admitted (the Job on stdout), 1 denied, 2 unusable input. An attack
must end in 1 (or 2 for input that is not a job), or in 0 with a Job the oracle finds clean; never in
an internal error or a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.attacks.harness import PAYMENTS_MAIN, PLUGIN_KEY, REPO, Job, example, step_container
from tests.attacks.oracle import manifest_pss_violations, pod_spec_of, references_to


def engine_test(
    tmp_path: Path, job: Job, *policy_paths: Path, config: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job.node()), encoding="utf-8")
    command = [
        sys.executable,
        "-c",
        "from engine.cli import main; main()",
        "test",
        *map(str, policy_paths),
        "--job",
        str(job_file),
        "-o",
        "json",
    ]
    if config is not None:
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        command += ["--config", str(config_file)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def assert_no_crash(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    assert result.returncode in (0, 1, 2), result.stderr[-2000:]


def baseline_file() -> Path:
    return example("40-pod-security-baseline.yaml", "40-pod-security.yaml")


def test_a_privileged_patch_on_the_agent_is_denied_or_clean(tmp_path: Path) -> None:
    job = Job(
        plugin={"podSpecPatch": {"containers": [{"name": "agent", "securityContext": {"privileged": True}}]}}
    )
    result = engine_test(tmp_path, job, baseline_file())
    assert_no_crash(result)
    if result.returncode == 0:
        assert manifest_pss_violations(json.loads(result.stdout), "baseline") == []
    else:
        assert result.returncode == 1


def test_a_forged_slug_does_not_earn_the_deploy_secret(tmp_path: Path) -> None:
    job = Job(env=("BUILDKITE_PIPELINE_SLUG=payments-api", "BUILDKITE_BRANCH=main"))
    result = engine_test(tmp_path, job, example("50-deploy-secrets.yaml"))
    assert_no_crash(result)
    if result.returncode == 0:
        assert references_to(pod_spec_of(json.loads(result.stdout)), "payments-deploy-credentials") == []


def test_the_real_payments_pipeline_gets_the_deploy_secret(tmp_path: Path) -> None:
    result = engine_test(tmp_path, Job(facts=PAYMENTS_MAIN), example("50-deploy-secrets.yaml"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert references_to(pod_spec_of(json.loads(result.stdout)), "payments-deploy-credentials") != []


def test_a_deeply_nested_plugin_is_refused_with_a_message(tmp_path: Path) -> None:
    depth = 20000
    job = Job(plugins_json=f'[{{"{PLUGIN_KEY}": {{"podSpec": {{"x": {"[" * depth + "]" * depth}}}}}}}]')
    result = engine_test(tmp_path, job)
    assert_no_crash(result)
    assert result.returncode in (1, 2)
    assert result.stderr.strip()


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_hello_world_passes_the_pod_security_examples(tmp_path: Path, level: str) -> None:
    # restricted is used with the example that prepares the stack's own containers for it (the
    # restricted example says every job is denied without it): see the README, "Corrections"
    files = [baseline_file()] + (
        [example("41-pod-security-restricted.yaml"), example("42-pod-security-restricted-stack.yaml")]
        if level == "restricted"
        else []
    )
    result = engine_test(tmp_path, Job(), *files)
    assert result.returncode == 0, result.stderr[-2000:]
    assert manifest_pss_violations(json.loads(result.stdout), level) == []


def test_the_controller_service_account_is_denied(tmp_path: Path) -> None:
    job = Job(
        plugin={"podSpec": {"serviceAccountName": "agent-stack-controller", "containers": [step_container()]}}
    )
    config = {
        "controller-service-account": "agent-stack-controller",
        "controller-secrets": ["agent-stack-graphql"],
    }
    result = engine_test(tmp_path, job, config=config)
    assert_no_crash(result)
    assert result.returncode == 1, result.stderr[-2000:]
