"""End to end: scheduled Buildkite jobs become Kubernetes Jobs on the real control plane."""

from __future__ import annotations

import itertools

from engine.core.evaluate import evaluate
from engine.core.finish import CHANGED_BY_ANNOTATION
from engine.kube.labels import CONTROLLER_ID_LABEL
from engine.model.controller_id import default_controller_id
from engine.model.job import parse_job
from engine.policy.loader import load_policies
from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers, wait_for


def test_a_scheduled_job_becomes_exactly_one_job_built_by_the_default_policies(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuid = buildkite.add_job(command="make test")
    controller = controllers.start()

    [job] = wait_for("the Kubernetes Job", lambda: controllers.jobs_by_uuid().get(uuid))
    wait_for("a few more polls", lambda: controller.metric("buildkite_monitor_job_queries_total") >= 3)
    assert len(controllers.jobs()) == 1

    config = controllers.config()
    expected = evaluate(load_policies([]), parse_job(buildkite.job(uuid).node), config.expression_view())
    assert job["metadata"]["name"] == f"buildkite-{uuid}"
    controller_id = default_controller_id(controllers.namespace, "kubernetes")
    assert controller.runtime.controller_id == controller_id
    assert job["metadata"]["labels"] == expected.manifest["metadata"]["labels"]
    assert job["metadata"]["labels"][CONTROLLER_ID_LABEL] == controller_id
    template = job["spec"]["template"]
    assert template["metadata"]["labels"][CONTROLLER_ID_LABEL] == controller_id
    assert [c["name"] for c in template["spec"]["containers"]] == [
        c["name"] for c in expected.manifest["spec"]["template"]["spec"]["containers"]
    ]
    assert [c["name"] for c in template["spec"]["initContainers"]] == [
        c["name"] for c in expected.manifest["spec"]["template"]["spec"]["initContainers"]
    ]
    assert job["metadata"]["annotations"][CHANGED_BY_ANNOTATION].startswith("job-metadata@")
    assert buildkite.job(uuid).state == "SCHEDULED"  # left for the agent in the pod to acquire
    assert controller.metric("buildkite_scheduler_job_create_success_total") == 1
    assert controller.metric("buildkite_monitor_jobs_skipped_in_flight_total") >= 1  # seen again, left out


def test_a_burst_of_300_jobs_across_pages_gives_300_distinct_jobs(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuids = set(buildkite.add_jobs(300))
    controller = controllers.start()

    wait_for("300 Kubernetes Jobs", lambda: len(controllers.jobs()) >= 300, timeout=90, interval=0.5)
    wait_for("one more poll", lambda: controller.metric("buildkite_monitor_job_queries_total") >= 3)
    by_uuid = controllers.jobs_by_uuid()
    assert set(by_uuid) == uuids
    assert all(len(jobs) == 1 for jobs in by_uuid.values())
    assert controller.metric("buildkite_scheduler_job_create_success_total") == 300
    pages = buildkite.graphql_requests("GetScheduledJobs")
    first_poll = list(
        itertools.takewhile(lambda r: r.variables is not None and "after" in r.variables, pages[1:])
    )
    assert len(first_poll) >= 2  # pages 2 and 3 of the first poll, each asked for with a cursor
    assert all(job.state == "SCHEDULED" for job in (buildkite.job(uuid) for uuid in uuids))
