"""End to end: max-in-flight holds, and tokens come back when Kubernetes finishes the Jobs."""

from __future__ import annotations

import time

from engine.kube.labels import JOB_UUID_LABEL
from tests.fakes.buildkite import FakeBuildkite
from tests.harness import kubelet
from tests.integration.controller.conftest import Controllers, unfinished, wait_for

LIMIT = 5
TOTAL = 12


def running_uuids(controllers: Controllers) -> set[str]:
    return {job["metadata"]["labels"][JOB_UUID_LABEL] for job in unfinished(controllers.jobs())}


def wait_until_running(controllers: Controllers, count: int) -> None:
    wait_for(f"{count} running Jobs", lambda: len(running_uuids(controllers)) >= count)


def wait_until_finished(controllers: Controllers, uuids: set[str]) -> None:
    wait_for("the job controller to complete them", lambda: not uuids & running_uuids(controllers))


def test_max_in_flight_is_respected_and_finished_jobs_return_their_tokens(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuids = set(buildkite.add_jobs(TOTAL))
    controller = controllers.start(max_in_flight=LIMIT)
    finished: set[str] = set()
    batches = []

    while len(finished) < TOTAL:
        expected = min(LIMIT, TOTAL - len(finished))
        wait_until_running(controllers, expected)
        time.sleep(2.5)  # two more polls: the limit must hold while these jobs run
        batch = running_uuids(controllers)
        assert len(batch) == expected
        batches.append(len(batch))
        for uuid in batch:
            pod = controllers.pod_of(uuid)
            kubelet.set_pod_succeeded(controllers.core, controllers.namespace, pod["metadata"]["name"])
        wait_until_finished(controllers, batch)
        finished |= batch

    assert batches == [5, 5, 2]
    assert finished == uuids
    assert set(controllers.jobs_by_uuid()) == uuids
    assert controller.metric("buildkite_scheduler_job_create_success_total") == TOTAL
    wait_for("every token back", lambda: controller.metric("buildkite_limiter_tokens_available") == LIMIT)
    assert controller.metric("buildkite_limiter_token_underflows_total", source="informer") == 0
