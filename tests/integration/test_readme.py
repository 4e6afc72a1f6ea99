"""The README's commands work verbatim on this checkout (CI runs this on a fresh clone)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)
CACHE_BIN = Path(os.environ.get("AGENT_STACK_CACHE", Path.home() / ".cache" / "agent-stack-policy")) / "bin"


def _run(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_setup_command_installs_and_dry_runs_the_example() -> None:
    setup = BLOCKS[0].strip()
    assert setup.startswith("./scripts/install.sh && ")
    result = _run(setup)
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load(result.stdout)
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"


def test_test_command_is_what_ci_runs() -> None:
    assert BLOCKS[1].strip() == "./scripts/test.sh"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "exec ./scripts/test.sh" in ci


def test_helm_install_command_renders() -> None:
    helm = shutil.which("helm") or str(CACHE_BIN / "helm")
    if not Path(helm).exists():
        if os.environ.get("REQUIRE_KUBE") == "1":
            pytest.fail("helm is missing: run scripts/install-helm.sh")
        pytest.skip("helm is missing: run scripts/install-helm.sh")
    installs = [b for b in BLOCKS if b.startswith("helm install")]
    assert len(installs) == 2  # the agent token alone (Stacks API), and with a GraphQL token
    secrets = []
    for install in installs:
        command = (
            install.strip().replace("helm install", f"{helm} template", 1).replace("--create-namespace", "")
        )
        result = _run(
            command, {"BUILDKITE_AGENT_TOKEN": "agent-token", "BUILDKITE_GRAPHQL_TOKEN": "graphql-token"}
        )
        assert result.returncode == 0, result.stderr
        documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        assert {"Deployment", "ConfigMap", "Secret", "Role"} <= {doc["kind"] for doc in documents}
        secrets.append(sum(doc["kind"] == "Secret" for doc in documents))
    assert secrets == [1, 2]  # no GraphQL token Secret without a GraphQL token


def test_policy_example_in_the_readme_is_valid(tmp_path: Path) -> None:
    [policy] = re.findall(r"```yaml\n# my-policies/gpu.yaml\n(.*?)```", README, flags=re.DOTALL)
    (tmp_path / "gpu.yaml").write_text(policy, encoding="utf-8")
    result = _run(f".venv/bin/engine validate {tmp_path}")
    assert result.returncode == 0, result.stderr


def test_testing_policies_section_shows_the_real_output_of_its_suite(tmp_path: Path) -> None:
    [policy] = re.findall(r"```yaml\n# my-policies/gpu.yaml\n(.*?)```", README, flags=re.DOTALL)
    [suite] = re.findall(r"```yaml\n# my-policies/gpu.suite.yaml\n(.*?)```", README, flags=re.DOTALL)
    pattern = r"```console\n\$ (\.venv/bin/engine test --suite .*?)\n(.*?)```"
    [console] = re.findall(pattern, README, flags=re.DOTALL)
    command, output = console
    (tmp_path / "my-policies").mkdir()
    (tmp_path / "my-policies" / "gpu.yaml").write_text(policy, encoding="utf-8")
    (tmp_path / "my-policies" / "gpu.suite.yaml").write_text(suite, encoding="utf-8")
    result = subprocess.run(
        [str(ROOT / command.split()[0]), *command.split()[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout == output
    assert result.returncode == 1  # the section shows a failing case on purpose
    assert result.stderr == ""


def test_the_pre_deploy_check_in_the_migration_section_works_verbatim() -> None:
    helm = shutil.which("helm") or str(CACHE_BIN / "helm")
    if not Path(helm).exists():
        if os.environ.get("REQUIRE_KUBE") == "1":
            pytest.fail("helm is missing: run scripts/install-helm.sh")
        pytest.skip("helm is missing: run scripts/install-helm.sh")
    [check] = [b.strip() for b in BLOCKS if "--from-manifests" in b]
    assert check.startswith("helm template ")
    assert check.endswith("| .venv/bin/engine validate --from-manifests -")
    values = ROOT / "tests" / "chart" / "values" / "upstream.yaml"
    result = _run(check.replace("helm", helm, 1).replace("-f values.yaml", f"-f {values}"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: Deployment agent-stack-agent-stack-k8s: config ")
    bad = _run(
        check.replace("helm", helm, 1).replace("-f values.yaml", f"-f {values} --set config.max-inflight=3")
    )
    assert bad.returncode != 0
    assert "additional properties 'max-inflight' not allowed" in bad.stderr


def test_the_profile_command_in_the_v047_section_dry_runs_a_v047_job() -> None:
    [command] = [b.strip() for b in BLOCKS if "--profile upstream-v0.47" in b]
    result = _run(command)
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load(result.stdout)
    containers = {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}
    assert containers["container-0"]["args"] == ["--", "/workspace/buildkite-agent", "kubernetes-bootstrap"]
    assert job["spec"]["activeDeadlineSeconds"] == 21600
