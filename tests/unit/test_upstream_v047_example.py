"""An upstream agent-stack-k8s v0.47 user's files load unchanged with the profile selected, and their
dry run builds the Job as v0.47 does (reference §11, §12).

``examples/upstream-v0.47/config.yaml`` has the shape of upstream's HEAD ``examples/config.yaml`` (plus
``profile``); ``values.yaml`` that of a HEAD chart install. Both load exactly as they are: with only
the agent token and ``queue`` they select the Stacks API mode, as v0.47 runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.model.config import ControllerConfig, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "upstream-v0.47"
NO_RATE_LIMIT = "accepted, but this controller's Kubernetes client does not rate-limit"
KNOWN = {str(field.alias) for field in ControllerConfig.model_fields.values()}


def unchanged(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the file has it, after checking that every key is one of the model's."""
    assert set(config) - KNOWN == set()
    return config


def example_config() -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLE / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_example_config_loads_with_the_profile() -> None:
    config = parse_config(unchanged(example_config()), "config.yaml")
    assert config.profile == "upstream-v0.47"
    assert (config.job_prefix, config.default_termination_grace_period_seconds) == ("testkite-", 80)
    assert config.resource_classes is not None
    assert config.default_resource_class_name == "small"
    assert config.kubernetes_version == "1.29"
    assert (config.mode().name, config.queue, config.pagination_page_size) == ("stacks", "my-queue", 1000)


def test_the_example_values_config_loads_with_the_profile() -> None:
    values = yaml.safe_load((EXAMPLE / "values.yaml").read_text(encoding="utf-8"))
    config = parse_config(unchanged(values["config"]), "values.yaml config")
    assert (config.profile, config.job_prefix, config.default_image_pull_policy) == (
        "upstream-v0.47",
        "ci-",
        "IfNotPresent",
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    directory = tmp_path_factory.mktemp("example")
    config_file = directory / "config.yaml"
    config_file.write_text(yaml.safe_dump(unchanged(example_config())), encoding="utf-8")
    job = {
        "uuid": "0193a047-aaaa-4d2a-9f3b-0c1d2e3f4a01",
        "command": "echo hello",
        "env": ["BUILDKITE_BUILD_URL=https://buildkite.com/org/pipe/builds/1", "BUILDKITE_BRANCH=main"],
        "agentQueryRules": ["queue=my-queue"],
        "pipeline": {"slug": "pipe", "name": "pipe"},
        "build": {"number": 1, "branch": "main"},
    }
    job_file = directory / "job.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["test", "--job", str(job_file), "--config", str(config_file), "-o", "json"]
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def _containers(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = manifest["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["initContainers"] + spec["containers"]}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_the_dry_run_builds_the_job_as_v0_47_does(dry_run: tuple[dict[str, Any], str]) -> None:
    manifest, _ = dry_run
    spec = manifest["spec"]["template"]["spec"]
    containers = _containers(manifest)
    # §12.2 steps 2, 8, 10: name, grace period, deadline
    assert manifest["metadata"]["name"] == "testkite-0193a047-aaaa-4d2a-9f3b-0c1d2e3f4a01"
    assert (manifest["spec"]["activeDeadlineSeconds"], manifest["spec"]["ttlSecondsAfterFinished"]) == (
        21600,
        300,
    )
    assert spec["terminationGracePeriodSeconds"] == 80
    # §12.2 step 16: the agent's env, grace periods from 80 s
    agent = _env(containers["agent"])
    assert (agent["BUILDKITE_CANCEL_GRACE_PERIOD"], agent["BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS"]) == (
        "80",
        "70",
    )
    assert agent["BUILDKITE_AGENT_ENDPOINT"] == "http://agent.buildkite.localhost/v3"
    assert agent["BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR"] == "warn"
    assert "BUILDKITE_AGENT_TOKEN" not in _env(containers["container-0"])
    # §12.4: default-image-pull-policy Never everywhere; copy-agent does not pull as eagerly as the
    # check's IfNotPresent (default-image-check-pull-policy), so the agent image gets a check
    assert {name: c.get("imagePullPolicy") for name, c in containers.items()} == {
        "copy-agent": "Never",
        "imagecheck-0": "IfNotPresent",
        "container-0": "Never",
        "agent": "Never",
        "checkout": "Never",
    }
    assert containers["imagecheck-0"]["image"] == "my.registry.dev/buildkite-agent:latest"
    assert containers["imagecheck-0"]["resources"]["limits"] == {"cpu": "201m", "memory": "129Mi"}
    # §11.3 then §12.2 step 21: the default resource class, then the controller's patch over it
    command = containers["container-0"]
    assert command["image"] == "example.org/my-container@latest"
    assert command["resources"]["requests"] == {
        "cpu": "1000m",
        "memory": "512Mi",
        "hugepages-2Mi": "2Mi",
        "mem": "4Gi",
    }
    assert (
        _env(command)["BUILDKITE_COMMAND"] == "echo hello"
    )  # no podSpec: the step's command, not interposed
    assert (spec["serviceAccountName"], spec["nodeSelector"]) == (
        "buildkite-agent-sa",
        {"selectors.example.com/my-selector": "example-value"},
    )
    # the workspace volume and the checkout's git credentials and env sources
    assert {v["name"] for v in spec["volumes"]} == {
        "workspace-2-the-reckoning",
        "git-credentials-ro",
        "git-credentials",
    }
    assert all(c["volumeMounts"][0]["name"] == "workspace-2-the-reckoning" for c in containers.values())
    assert containers["checkout"]["envFrom"] == [
        {"prefix": "GITHUB_", "secretRef": {"name": "github-secrets"}}
    ]
    assert command["envFrom"] == [{"prefix": "DEPLOY_", "secretRef": {"name": "deploy-secrets"}}]
    assert manifest["metadata"]["labels"]["argocd.argoproj.io/tracking-id"] == "example-id-here"


def test_the_dry_run_says_which_keys_do_nothing(dry_run: tuple[dict[str, Any], str]) -> None:
    _, stderr = dry_run
    prefix = "warning: config: "
    assert stderr.splitlines() == [
        prefix
        + "enable-queue-pause: accepted, but it does nothing: agent-stack-k8s has ignored it since v0.28.0",
        prefix + "work-queue-limit: accepted, but this controller has no priority work queue to limit",
        prefix + "k8s-client-rate-limiter-qps: " + NO_RATE_LIMIT,
        prefix + "k8s-client-rate-limiter-burst: " + NO_RATE_LIMIT,
    ]
