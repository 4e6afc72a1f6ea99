"""End to end: a controller restarted mid-burst neither duplicates nor loses jobs (spec §4.13)."""

from __future__ import annotations

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers, wait_for

TOTAL = 150


def test_a_restart_mid_burst_gives_every_job_exactly_one_kubernetes_job(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuids = set(buildkite.add_jobs(TOTAL))
    first = controllers.start(job_creation_concurrency=2)
    wait_for("the burst to be under way", lambda: len(controllers.jobs()) >= 20, interval=0.05)
    first.stop()
    created_before = len(controllers.jobs())
    assert 20 <= created_before < TOTAL, "the first controller should have been stopped mid-burst"
    # (creates in flight when it stopped may still land: the API server finishes what it was sent)

    second = controllers.start(job_creation_concurrency=2)
    wait_for(f"{TOTAL} Kubernetes Jobs", lambda: len(controllers.jobs()) >= TOTAL, timeout=180, interval=0.5)
    wait_for("another poll", lambda: second.metric("buildkite_monitor_job_queries_total") >= 2)

    by_uuid = controllers.jobs_by_uuid()
    assert set(by_uuid) == uuids
    assert all(len(jobs) == 1 for jobs in by_uuid.values())
    # The second controller knew the first one's Jobs from its initial list: it never even tried them.
    assert second.metric("buildkite_scheduler_job_create_success_total") == TOTAL - created_before
    assert second.metric("buildkite_scheduler_job_create_errors_total", reason="already_exists") == 0
    assert second.metric("buildkite_deduper_jobs_marked_running_total", source="informer") >= created_before
    assert all(buildkite.job(uuid).state == "SCHEDULED" for uuid in uuids)
