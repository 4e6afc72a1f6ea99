"""End to end: jobs that get no Kubernetes Job are failed in Buildkite with the reason as their log."""

from __future__ import annotations

from pathlib import Path

from engine.controller.runtime import ControllerFatalError
from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers, wait_for

DENY_DEPLOYS = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: no-deploys-here}
spec:
  phase: enforce
  rules:
  - name: deploys-run-elsewhere
    deny:
      when: job.command.startsWith("deploy")
      message: "deploy steps may not run on queue ${{ tags.queue }}; use the deploy queue"
"""


def finished(buildkite: FakeBuildkite, uuid: str) -> bool:
    return buildkite.job(uuid).state == "FINISHED"


def test_a_policy_denial_fails_the_job_with_the_policy_message(
    controllers: Controllers, buildkite: FakeBuildkite, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "90-deny.yaml").write_text(DENY_DEPLOYS)
    denied = buildkite.add_job(command="deploy production")
    controller = controllers.start(policy_dirs=(policies,), max_in_flight=1)

    wait_for("the denied job to be failed", lambda: finished(buildkite, denied))
    job = buildkite.job(denied)
    assert job.log == (
        "deploy steps may not run on queue kubernetes; use the deploy queue"
        " (denied by policy no-deploys-here, rule deploys-run-elsewhere)"
    )
    assert job.exit_status == "1"
    assert job.agent_name == f"buildkite-{denied}"
    allowed = buildkite.add_job(command="make test")
    # With max-in-flight 1, the allowed job only gets its Job because the denial returned its token.
    wait_for("the allowed job's Kubernetes Job", lambda: allowed in controllers.jobs_by_uuid())
    assert denied not in controllers.jobs_by_uuid()
    labels = {"policy": "no-deploys-here", "rule": "deploys-run-elsewhere", "kind": "deny"}
    assert controller.metric("buildkite_engine_denials_total", **labels) == 1
    assert controller.metric("buildkite_scheduler_jobs_failed_on_buildkite_total") == 1


def test_unparseable_plugins_fail_the_job_with_upstreams_message(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuid = buildkite.add_job(plugins='[{"docker#v5.0.0": {"image": ')
    controllers.start()
    wait_for("the job to be failed", lambda: finished(buildkite, uuid))
    log = buildkite.job(uuid).log
    assert log.startswith("agent-stack-k8s failed to parse the job: failed parsing plugins: ")
    assert controllers.jobs() == []


def test_the_controller_waits_out_a_rate_limit_and_recovers(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    buildkite.inject_rate_limit(1, retry_after=3)
    uuid = buildkite.add_job()
    controller = controllers.start()
    wait_for(
        "the rate-limited poll", lambda: controller.metric("buildkite_monitor_job_query_errors_total") == 1
    )
    asked_at = len(buildkite.graphql_requests())
    wait_for("the Kubernetes Job", lambda: uuid in controllers.jobs_by_uuid(), timeout=15)
    waited = controller.metric("buildkite_monitor_job_queries_total")
    assert asked_at == 1
    assert waited == 2  # no poll in between, although the poll interval is 1 s
    assert buildkite.counters["graphql.injected_429"] == 1


def test_an_invalid_organization_stops_the_controller_with_a_clear_error(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    controller = controllers.start(org="no-such-org", may_fail=True)
    error = controller.wait_failed()
    assert isinstance(error, ControllerFatalError)
    assert str(error).startswith('monitor stopped: invalid organization: "no-such-org"')
    assert buildkite.graphql_token not in str(error)
