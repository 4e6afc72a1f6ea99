"""End to end: guardrails hold through the controller, from the fake Buildkite's GraphQL to the real
control plane. The job facts come from the GraphQL job node, the job's env cannot change the stack's
env, and a build reaching for the controller's identity or nesting its plugin config absurdly deep is
failed in Buildkite with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import AGENT_TOKEN_SECRET, Controllers, wait_for

ROOT = Path(__file__).resolve().parents[3]
PLUGIN_KEY = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}


def last_env(container: dict[str, Any], name: str) -> Any:
    entries = [e for e in container.get("env", []) if e["name"] == name]
    return entries[-1].get("value", entries[-1].get("valueFrom")) if entries else None


def test_trusted_facts_and_the_protected_env_reach_the_cluster(
    controllers: Controllers, buildkite: FakeBuildkite, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(ROOT / "examples" / "policies" / "50-deploy-secrets.yaml", policies)
    payments = buildkite.add_job(pipeline="payments-api", branch="main")
    spoofed = buildkite.add_job(
        pipeline="web",
        branch="main",
        appended_env=[
            "BUILDKITE_PIPELINE_SLUG=payments-api",
            "BUILDKITE_AGENT_TOKEN=stolen",
            f"BUILDKITE_AGENT_ACQUIRE_JOB={payments}",
        ],
    )
    controllers.start(policy_dirs=(policies,))

    jobs = wait_for("both Kubernetes Jobs", lambda: j if len(j := controllers.jobs_by_uuid()) == 2 else None)
    granted = containers(jobs[payments][0])
    assert granted["container-0"]["envFrom"] == [{"secretRef": {"name": "payments-deploy-credentials"}}]
    refused = containers(jobs[spoofed][0])
    assert "envFrom" not in refused["container-0"]
    for name in ("agent", "checkout", "container-0"):
        assert last_env(refused[name], "BUILDKITE_AGENT_ACQUIRE_JOB") == spoofed
        assert last_env(refused[name], "BUILDKITE_AGENT_TOKEN") == {
            "secretKeyRef": {"name": AGENT_TOKEN_SECRET, "key": "BUILDKITE_AGENT_TOKEN"}
        }


def test_reaching_for_the_controllers_identity_or_nesting_deeply_fails_the_job_once(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    as_controller = buildkite.add_job(plugins=[{PLUGIN_KEY: {"podSpecPatch": {"serviceAccountName": "ctl"}}}])
    graphql_token = buildkite.add_job(
        plugins=[{PLUGIN_KEY: {"gitEnvFrom": [{"secretRef": {"name": "gql"}}]}}]
    )
    deep = json.dumps([{PLUGIN_KEY: {"podSpecPatch": {"x": "@"}}}]).replace(
        '"@"', "[" * 20_000 + "]" * 20_000
    )
    nested = buildkite.add_job(plugins=deep)
    fine = buildkite.add_job()
    controller = controllers.start(controller_service_account="ctl", controller_secrets=["gql"])

    def all_failed() -> bool:
        return all(buildkite.job(u).state == "FINISHED" for u in (as_controller, graphql_token, nested))

    wait_for("the three jobs to be failed", all_failed, timeout=60)
    assert buildkite.job(as_controller).log == (
        "the pod may not run as the controller's service account ctl; use another serviceAccountName "
        "(denied by policy controller-identity, rule not-the-controllers-service-account)"
    )
    assert buildkite.job(graphql_token).log.startswith("the pod may not use the controller's Secret gql (")
    assert buildkite.job(nested).log == (
        "agent-stack-k8s failed to parse the job: failed parsing plugins: the JSON is nested too deeply "
        "(denied by policy plugin-problems, rule plugins-must-parse)"
    )
    wait_for("the fine job's Kubernetes Job", lambda: fine in controllers.jobs_by_uuid())
    assert set(controllers.jobs_by_uuid()) == {fine}
    assert controller.metric("buildkite_scheduler_jobs_failed_on_buildkite_total") == 3
