"""Two controller replicas with one config on one queue (the Stacks API mode): each Buildkite job gets
exactly one Kubernetes Job, and no job is left reserved without one.

The guarantee does not rest on the replicas happening not to overlap. Reservations keep other stacks
away, but the replicas share one stack key, and the reference leaves open what Buildkite does when one
key reserves a job twice; the fake answers ``reserved`` both times (see ``tests/fakes/stacks.py``). The
second test makes the replicas' reservations overlap on purpose: both hold every job, both create, and
the Kubernetes Job's name (``AlreadyExists`` is a duplicate, dropped) is what keeps it to one.
"""

from __future__ import annotations

from engine.model.config import DEFAULT_STACK_KEY
from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers, RunningController, wait_for

JOBS = 30


def assert_each_job_once_and_none_left_reserved(
    controllers: Controllers, buildkite: FakeBuildkite, uuids: list[str]
) -> None:
    by_uuid = controllers.jobs_by_uuid()
    assert set(by_uuid) == set(uuids)
    assert sorted(uuid for uuid, jobs in by_uuid.items() if len(jobs) > 1) == []
    reserved_without_a_job = [
        uuid for uuid in uuids if buildkite.job(uuid).reserved_by is not None and uuid not in by_uuid
    ]
    assert reserved_without_a_job == []
    assert all(buildkite.job(uuid).state == "SCHEDULED" for uuid in uuids)  # left for the agents


def created(replicas: list[RunningController]) -> float:
    return sum(r.metric("buildkite_scheduler_job_create_success_total") for r in replicas)


def duplicates(replicas: list[RunningController]) -> float:
    """Jobs a replica held but found created already: by the other replica's Job in its informer (the
    deduper), or by the Job's name when it tried to create it (``AlreadyExists``)."""
    return sum(r.metric("buildkite_monitor_job_handler_errors_total", reason="duplicate") for r in replicas)


def test_two_replicas_share_a_queue_and_create_each_job_once(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    first = controllers.start(mode="stacks")
    second = controllers.start(mode="stacks")
    uuids = buildkite.add_jobs(JOBS)
    wait_for(f"{JOBS} Kubernetes Jobs", lambda: len(controllers.jobs_by_uuid()) == JOBS, timeout=60)
    wait_for("more polls", lambda: second.metric("buildkite_monitor_job_queries_total") >= 4)

    assert_each_job_once_and_none_left_reserved(controllers, buildkite, uuids)
    assert created([first, second]) == JOBS
    assert buildkite.stacks.stacks[DEFAULT_STACK_KEY].registrations == 2


def test_when_both_replicas_hold_the_same_jobs_the_job_name_keeps_them_to_one(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuids = buildkite.add_jobs(JOBS)
    held = buildkite.faults.hold("stacks", only="batch-reserve", count=2)
    first = controllers.start(mode="stacks")
    wait_for("the first replica's reservation to be under way", lambda: held.hits == 1)
    second = controllers.start(mode="stacks")
    wait_for("the second replica's reservation to be under way", lambda: held.hits == 2)
    held.release()  # both answered "reserved" for every job: one stack key, twice

    wait_for(f"{JOBS} Kubernetes Jobs", lambda: len(controllers.jobs_by_uuid()) == JOBS, timeout=60)
    wait_for(
        "both replicas to have tried every job",
        lambda: created([first, second]) + duplicates([first, second]) >= 2 * JOBS,
        timeout=60,
    )

    assert all(buildkite.stacks.times_reserved(uuid) == 2 for uuid in uuids)
    assert_each_job_once_and_none_left_reserved(controllers, buildkite, uuids)
    assert created([first, second]) == JOBS
    assert duplicates([first, second]) == JOBS
    assert (
        sum(r.metric("buildkite_stacks_reservations_expired_total", reason="stale") for r in [first, second])
        == 0
    )
