"""The job watcher fails Buildkite jobs whose Kubernetes Job never got a pod."""

from __future__ import annotations

from typing import Any

import pytest

from engine.controller.metrics import ControllerMetrics
from engine.controller.watchers.job_watcher import ENDED_WITHOUT_POD, FAILED_BEFORE_ACQUIRE, JobWatcher
from tests.unit.watchers.fakes import (
    NAMESPACE,
    OTHER_UUID,
    START,
    TAGS,
    UUID,
    FakeBuildkiteJobs,
    FakeClock,
    FakeFailer,
    FakeKube,
    config,
    event,
    job,
    metric,
    not_found,
    stamp,
)

JOB_NAME = f"buildkite-{UUID}"
GRACE = 30
STARTED = {"startTime": stamp(START)}
FAILED_WITHOUT_POD = {
    "startTime": stamp(START),
    "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
}


class Setup:
    def __init__(self, *outcomes: Any, grace: float = GRACE) -> None:
        self.kube = FakeKube()
        self.failer = FakeFailer(*outcomes)
        self.clock = FakeClock()
        self.metrics = ControllerMetrics()
        self.watcher = JobWatcher(
            self.kube, self.failer, config(**{"empty-job-grace-period": grace}), self.metrics, self.clock
        )

    def count(self, name: str, **labels: str) -> float:
        return metric(self.metrics, f"buildkite_job_watcher_{name}", **labels)

    def live(self, obj: dict[str, Any]) -> None:
        """What a fresh GET of the Job returns."""
        self.kube.jobs[(NAMESPACE, obj["metadata"]["name"])] = obj


async def test_a_job_that_ended_without_a_pod_is_failed_at_once() -> None:
    s = Setup()

    s.watcher.on_event(event("modified", job(status=FAILED_WITHOUT_POD)))
    await s.watcher.idle()

    [call] = s.failer.calls
    assert (call.uuid, call.tags, call.namespace) == (UUID, TAGS, NAMESPACE)
    assert call.message == ENDED_WITHOUT_POD + f"<events of Job {JOB_NAME}>"
    assert ENDED_WITHOUT_POD == "The Kubernetes job ended without starting a pod.\n"
    assert s.kube.events_asked == [("Job", JOB_NAME, NAMESPACE)]
    assert s.count("jobs_finished_without_pod_total") == 1
    assert s.count("jobs_failed_on_buildkite_total") == 1
    assert s.kube.deadlines == []


async def test_a_finished_job_is_failed_only_once() -> None:
    s = Setup()
    finished = job(status=FAILED_WITHOUT_POD)

    s.watcher.on_event(event("added", finished))
    s.watcher.on_event(event("modified", finished))
    await s.watcher.idle()

    assert len(s.failer.calls) == 1


@pytest.mark.parametrize("counts", [{"succeeded": 1}, {"failed": 1}])
async def test_a_job_that_finished_with_a_pod_is_fine(counts: dict[str, int]) -> None:
    s = Setup()
    status = {**STARTED, **counts, "conditions": [{"type": "Complete", "status": "True"}]}

    s.watcher.on_event(event("modified", job(status=status)))
    await s.watcher.idle()

    assert s.failer.calls == []


async def test_a_job_without_a_pod_past_the_grace_period_is_failed_and_given_a_deadline() -> None:
    s = Setup()
    stalled = job(status=STARTED)
    s.live(stalled)
    s.watcher.on_event(event("added", stalled))

    s.clock.advance(GRACE - 1)
    s.watcher.check_stalled()
    await s.watcher.idle()
    assert s.failer.calls == []
    assert s.count("num_stalling_jobs") == 1

    s.clock.advance(2)
    s.watcher.check_stalled()
    await s.watcher.idle()

    [call] = s.failer.calls
    assert call.message == f"The Kubernetes job spent 31s without starting a pod.\n<events of Job {JOB_NAME}>"
    assert (call.uuid, call.tags, call.namespace) == (UUID, TAGS, NAMESPACE)
    assert s.kube.deadlines == [(JOB_NAME, 1, NAMESPACE)]
    assert s.count("jobs_stalled_without_pod_total") == 1
    assert s.count("cleanups_total") == 1
    assert s.count("num_stalling_jobs") == 0

    s.watcher.on_event(event("modified", job(status={**STARTED, "active": 0})))
    s.clock.advance(GRACE * 2)
    s.watcher.check_stalled()
    await s.watcher.idle()
    assert len(s.failer.calls) == 1, "a cleaned-up job is ignored until it is deleted"


async def test_a_pod_arriving_later_cancels_the_stall_even_from_an_older_snapshot() -> None:
    # Upstream bug 3: entries were keyed by object, so the first snapshot survived the update.
    s = Setup()
    s.watcher.on_event(event("added", job(status=STARTED)))
    s.watcher.on_event(event("modified", job(status={**STARTED, "active": 1})))

    s.clock.advance(GRACE * 3)
    s.watcher.check_stalled()
    await s.watcher.idle()

    assert s.failer.calls == []
    assert s.kube.deadlines == []


@pytest.mark.parametrize(
    "live_status",
    [{**STARTED, "active": 1}, {**STARTED, "uncountedTerminatedPods": {"failed": ["pod-uid"]}}],
    ids=["active", "uncounted"],
)
async def test_a_live_job_with_a_pod_is_left_alone(live_status: dict[str, Any]) -> None:
    s = Setup()
    s.live(job(status=live_status))
    s.watcher.on_event(event("added", job(status=STARTED)))

    s.clock.advance(GRACE + 1)
    s.watcher.check_stalled()
    await s.watcher.idle()

    assert s.failer.calls == []
    assert s.kube.deadlines == []


@pytest.mark.parametrize("live_uid", [None, "a-new-job"], ids=["gone", "replaced"])
async def test_a_job_gone_or_replaced_meanwhile_is_left_alone(live_uid: str | None) -> None:
    s = Setup()
    if live_uid is not None:
        s.live(job(status=STARTED, uid=live_uid))
    s.watcher.on_event(event("added", job(status=STARTED)))

    s.clock.advance(GRACE + 1)
    s.watcher.check_stalled()
    await s.watcher.idle()

    assert s.failer.calls == []
    assert s.kube.deadlines == []
    assert s.count("num_ignored_jobs") == 0, "left alone, not ignored: a later event is judged afresh"


async def test_without_start_time_the_creation_time_counts_unless_suspended() -> None:
    # Kubernetes 1.20 never records startTime while every pod creation fails.
    s = Setup()
    fresh = job(status={})
    s.live(fresh)
    s.watcher.on_event(event("added", fresh))
    s.watcher.on_event(event("added", job(uuid=OTHER_UUID, status={}, suspend=True)))

    s.clock.advance(GRACE)
    s.watcher.check_stalled()
    await s.watcher.idle()

    assert [call.uuid for call in s.failer.calls] == [UUID]


async def test_a_failed_fail_and_a_failed_deadline_are_counted() -> None:
    s = Setup("rejected")
    s.kube.errors["set_job_active_deadline"] = not_found("patch")
    stalled = job(status=STARTED)
    s.live(stalled)
    s.watcher.on_event(event("added", stalled))

    s.clock.advance(GRACE)
    s.watcher.check_stalled()
    await s.watcher.idle()

    assert s.count("job_fail_on_buildkite_errors_total") == 1
    assert s.count("jobs_failed_on_buildkite_total") == 0
    assert s.count("cleanup_errors_total", reason="NotFound") == 1


async def test_deletion_forgets_the_job() -> None:
    s = Setup()
    s.watcher.on_event(event("added", job(status=FAILED_WITHOUT_POD)))
    await s.watcher.idle()
    s.watcher.on_event(event("deleted", job(status=FAILED_WITHOUT_POD)))
    assert s.count("num_ignored_jobs") == 0

    s.watcher.on_event(event("added", job(status=FAILED_WITHOUT_POD)))  # recreated under the same UUID
    await s.watcher.idle()
    assert len(s.failer.calls) == 2
    assert s.count("ondelete_events_total") == 1


async def test_a_job_without_a_valid_uuid_is_skipped() -> None:
    s = Setup()
    broken = job(status=FAILED_WITHOUT_POD)
    broken["metadata"]["labels"]["buildkite.com/job-uuid"] = "nope"

    s.watcher.on_event(event("added", broken))
    await s.watcher.idle()

    assert s.failer.calls == []
    assert s.count("onadd_events_total") == 1


async def test_a_zero_grace_period_means_immediately() -> None:
    s = Setup(grace=0)
    stalled = job(status=STARTED)
    s.live(stalled)
    s.watcher.on_event(event("added", stalled))

    s.watcher.check_stalled()
    await s.watcher.idle()

    assert s.failer.calls[0].message.startswith("The Kubernetes job spent 0s without starting a pod.\n")


# ---- the Stacks API mode: a pod that failed before any agent acquired the job --------------------------

FAILED_WITH_A_POD = {
    "startTime": stamp(START),
    "failed": 1,
    "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
}


@pytest.mark.parametrize(("state", "failed"), [("RESERVED", True), ("RUNNING", False), ("FINISHED", False)])
async def test_a_failed_pod_of_a_still_reserved_job_fails_the_job(state: str, failed: bool) -> None:
    s = Setup()
    states = FakeBuildkiteJobs()
    states.set_state(UUID, state)
    s.watcher = JobWatcher(
        s.kube,
        s.failer,
        config(**{"empty-job-grace-period": GRACE}),
        s.metrics,
        s.clock,
        reserved_jobs=states,
    )
    s.watcher.on_event(event("modified", job(status=FAILED_WITH_A_POD)))
    s.watcher.on_event(event("modified", job(status=FAILED_WITH_A_POD)))  # seen again: asked once
    await s.watcher.idle()
    assert states.state_queries == 1
    assert [call.message.startswith(FAILED_BEFORE_ACQUIRE) for call in s.failer.calls] == (
        [True] if failed else []
    )
    assert s.count("jobs_failed_before_agent_acquire_total") == (1 if failed else 0)


async def test_without_reservations_a_failed_pod_is_the_agents_to_report() -> None:
    s = Setup()
    s.watcher.on_event(event("modified", job(status=FAILED_WITH_A_POD)))
    await s.watcher.idle()
    assert s.failer.calls == []


async def test_a_podless_job_of_a_cancelled_job_is_deleted() -> None:
    """The pod watcher never sees a Job that has no pod (a quota, an admission webhook that holds it):
    its job's cancellation is checked here, and the Job deleted."""
    s = Setup()
    states = FakeBuildkiteJobs()
    states.set_state(UUID, "RESERVED", "CANCELED")
    states.set_state(OTHER_UUID, "RUNNING")
    s.watcher = JobWatcher(
        s.kube, s.failer, config(**{"empty-job-grace-period": 3600}), s.metrics, s.clock, reserved_jobs=states
    )
    s.watcher.on_event(event("added", job(status=STARTED)))
    s.watcher.on_event(event("added", job(uuid=OTHER_UUID, status=STARTED)))
    assert sorted(s.watcher.podless) == sorted([UUID, OTHER_UUID])
    s.watcher.check_cancelled()
    await s.watcher.idle()
    assert s.watcher.podless == [UUID]  # the running one is the agent's business now
    assert s.kube.deleted_jobs == []
    s.watcher.check_cancelled()
    await s.watcher.idle()
    assert s.kube.deleted_jobs == [(JOB_NAME, NAMESPACE)]
    assert s.watcher.podless == []
    assert s.count("jobs_deleted_cancelled_total") == 1


async def test_a_job_with_a_pod_is_not_asked_about() -> None:
    s = Setup()
    states = FakeBuildkiteJobs()
    s.watcher = JobWatcher(
        s.kube,
        s.failer,
        config(**{"empty-job-grace-period": GRACE}),
        s.metrics,
        s.clock,
        reserved_jobs=states,
    )
    s.watcher.on_event(event("added", job(status={**STARTED, "active": 1})))
    s.watcher.check_cancelled()
    await s.watcher.idle()
    assert states.state_queries == 0
