"""The completions watcher gives a Job a deadline once its pod's agent container has terminated."""

from __future__ import annotations

from typing import Any

from engine.controller.metrics import ControllerMetrics
from engine.controller.watchers.completions import CompletionsWatcher, job_name_of
from tests.unit.watchers.fakes import (
    NAMESPACE,
    UUID,
    FakeKube,
    container_status,
    event,
    metric,
    not_found,
    pod,
    terminated,
)

RUNNING = {"running": {"startedAt": "2025-01-01T12:00:00Z"}}
JOB_NAME = f"buildkite-{UUID}"


def agent_done(phase: str = "Running") -> dict[str, Any]:
    return pod(
        phase=phase,
        statuses=[container_status("agent", terminated(0, "Completed")), container_status("nginx", RUNNING)],
    )


def agent_running() -> dict[str, Any]:
    return pod(
        phase="Running", statuses=[container_status("agent", RUNNING), container_status("nginx", RUNNING)]
    )


async def test_terminated_agent_gives_the_job_a_60_second_deadline() -> None:
    kube, metrics = FakeKube(), ControllerMetrics()
    watcher = CompletionsWatcher(kube, metrics)

    watcher.on_event(event("modified", agent_done(), old=agent_running()))
    await watcher.idle()

    assert kube.deadlines == [(JOB_NAME, 60, NAMESPACE)]
    assert metric(metrics, "buildkite_completion_watcher_cleanups_total") == 1
    assert metric(metrics, "buildkite_completion_watcher_onupdate_events_total") == 1


async def test_pods_listed_at_start_up_are_checked_too() -> None:
    kube, metrics = FakeKube(), ControllerMetrics()
    watcher = CompletionsWatcher(kube, metrics)

    watcher.on_event(event("added", agent_done()))
    await watcher.idle()

    assert kube.deadlines == [(JOB_NAME, 60, NAMESPACE)]
    assert metric(metrics, "buildkite_completion_watcher_onadd_events_total") == 1


async def test_nothing_happens_while_the_agent_runs_or_after_it_was_handled() -> None:
    kube = FakeKube()
    watcher = CompletionsWatcher(kube, ControllerMetrics())

    watcher.on_event(event("added", agent_running()))
    watcher.on_event(event("modified", agent_done(), old=agent_done()))
    watcher.on_event(event("deleted", agent_done()))
    await watcher.idle()

    assert kube.deadlines == []


async def test_finished_pods_need_no_deadline() -> None:
    kube = FakeKube()
    watcher = CompletionsWatcher(kube, ControllerMetrics())

    watcher.on_event(event("modified", agent_done(phase="Succeeded"), old=agent_running()))
    await watcher.idle()

    assert kube.deadlines == []


async def test_a_failed_update_is_counted_not_raised() -> None:
    kube, metrics = FakeKube(errors={"set_job_active_deadline": not_found("patch")}), ControllerMetrics()
    watcher = CompletionsWatcher(kube, metrics)

    watcher.on_event(event("added", agent_done()))
    await watcher.idle()

    assert metric(metrics, "buildkite_completion_watcher_cleanup_errors_total", reason="NotFound") == 1
    assert metric(metrics, "buildkite_completion_watcher_cleanups_total") == 0


def test_job_name_comes_from_labels_or_the_owner() -> None:
    labelled = pod(labels={"batch.kubernetes.io/job-name": "newer", "job-name": "older"})
    assert job_name_of(labelled) == "newer"
    owned = pod(labels={})
    owned["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "not-this", "controller": True},
        {"kind": "Job", "name": "the-job", "controller": True},
    ]
    assert job_name_of(owned) == "the-job"
    assert job_name_of(pod(labels={})) == ""
