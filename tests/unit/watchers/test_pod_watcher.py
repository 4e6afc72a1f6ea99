"""The pod watcher ends Buildkite jobs whose pods cannot run, and frees pods of cancelled jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.controller.metrics import ControllerMetrics
from engine.controller.watchers.pod_watcher import PodWatcher
from tests.unit.watchers.fakes import (
    NAMESPACE,
    TAGS,
    UUID,
    FakeBuildkiteJobs,
    FakeClock,
    FakeFailer,
    FakeKube,
    config,
    container_status,
    event,
    metric,
    not_found,
    pod,
    terminated,
    waiting,
)

POD_NAME = f"buildkite-{UUID}-abcde"
GRACE = 30
PENDING_TIMEOUT = 600
CHECK = 0.01


class Setup:
    def __init__(self, *outcomes: Any, state: str | None = "SCHEDULED") -> None:
        self.kube = FakeKube()
        self.failer = FakeFailer(*outcomes)
        self.buildkite = FakeBuildkiteJobs()
        self.buildkite.set_state(UUID, state)
        self.clock = FakeClock()
        self.metrics = ControllerMetrics()
        self.settings = config(
            **{
                "image-pull-backoff-grace-period": GRACE,
                "job-cancel-checker-poll-interval": CHECK,
                "pod-pending-timeout": PENDING_TIMEOUT,
            }
        )
        self.watcher = PodWatcher(
            self.kube, self.failer, self.buildkite, self.settings, self.metrics, self.clock
        )

    def count(self, name: str, **labels: str) -> float:
        return metric(self.metrics, f"buildkite_pod_watcher_{name}", **labels)

    async def send(self, kind: Any, obj: dict[str, Any]) -> None:
        self.watcher.on_event(event(kind, obj))
        await self.watcher.idle()

    async def scan(self) -> None:
        self.watcher.check_pods()
        await self.watcher.idle()


def running_pod(**options: Any) -> dict[str, Any]:
    return pod(phase="Running", statuses=[container_status("agent", {"running": {}})], **options)


# ---- init containers ----------------------------------------------------------------------------------


async def test_failed_init_containers_fail_the_job_with_a_table() -> None:
    s = Setup()
    failed = pod(
        phase="Failed",
        init_statuses=[
            container_status("copy-agent", terminated(0, "Completed")),
            container_status("zeta", terminated(2, "Error", "well this isn't going to work", signal=0)),
            container_status("broken", terminated(127, "ContainerCannotRun", "exec: not found")),
        ],
    )

    await s.send("modified", failed)

    [call] = s.failer.calls
    assert (call.uuid, call.tags, call.namespace) == (UUID, TAGS, NAMESPACE)
    lines = call.message.splitlines()
    assert lines[0] == "The following init containers failed:"
    assert lines[1] == ""
    assert [cell.strip() for cell in lines[3].split("|")[1:-1]] == [
        "CONTAINER",
        "EXIT CODE",
        "SIGNAL",
        "REASON",
        "MESSAGE",
    ]
    assert [cell.strip() for cell in lines[5].split("|")[1:-1]] == [
        "broken",
        "127",
        "0",
        "ContainerCannotRun",
        "exec: not found",
    ]
    assert "zeta" in lines[6]
    assert "well this isn't going to work" in lines[6]
    assert "copy-agent" not in call.message
    assert s.kube.evicted == [], "a failing pod is not evicted"
    assert s.count("jobs_failed_on_buildkite_total") == 1

    await s.send("modified", failed)
    assert len(s.failer.calls) == 1, "failed once, not on every update"


async def test_an_init_failure_that_could_not_be_reported_is_retried_on_the_next_update() -> None:
    s = Setup("error", "failed")
    failed = pod(phase="Failed", init_statuses=[container_status("broken", terminated(1))])

    await s.send("modified", failed)
    await s.send("modified", failed)

    assert len(s.failer.calls) == 2
    assert s.count("job_fail_on_buildkite_errors_total") == 1
    assert s.count("jobs_failed_on_buildkite_total") == 1


# ---- images -------------------------------------------------------------------------------------------


def pull_back_off(image: str = "buildkite/non-existant-image:latest", **options: Any) -> dict[str, Any]:
    return pod(
        init_statuses=[container_status("imagepullcheck-0", waiting("ImagePullBackOff"), image)], **options
    )


async def test_image_pull_back_off_waits_for_the_grace_period_then_fails_and_evicts() -> None:
    s = Setup()
    await s.send("added", pull_back_off())
    s.clock.advance(GRACE - 1)
    await s.scan()
    assert s.failer.calls == []

    s.clock.advance(1)
    await s.scan()

    [call] = s.failer.calls
    assert call.message == (
        'The following container images couldn\'t be pulled:\n * "buildkite/non-existant-image:latest"\n'
    )
    assert (call.uuid, call.tags, call.namespace) == (UUID, TAGS, NAMESPACE)
    assert s.kube.evicted == [POD_NAME]
    assert s.count("pods_evicted_total", eviction_reason="image_pull_failure") == 1

    s.clock.advance(GRACE)
    await s.send("modified", pull_back_off())
    await s.scan()
    assert len(s.failer.calls) == 1, "handled jobs are ignored until the pod is deleted"


async def test_the_grace_period_needs_a_start_time() -> None:
    s = Setup()
    await s.send("added", pull_back_off(started=None))
    s.clock.advance(GRACE * 10)
    await s.scan()
    assert s.failer.calls == []


async def test_invalid_image_name_fails_at_once() -> None:
    s = Setup()
    bad = pod(statuses=[container_status("nginx", waiting("InvalidImageName"), "nginx:latest plus junk")])

    await s.send("added", bad)

    [call] = s.failer.calls
    assert call.message.endswith(' * "nginx:latest plus junk"\n')
    assert s.kube.evicted == [POD_NAME]


@pytest.mark.parametrize(("container", "counts"), [("container-0", True), ("agent", True), ("nginx", False)])
async def test_regular_containers_count_only_when_they_are_the_stacks_own(
    container: str, counts: bool
) -> None:
    s = Setup()
    await s.send(
        "added", pod(phase="Running", statuses=[container_status(container, waiting("ImagePullBackOff"))])
    )
    s.clock.advance(GRACE)
    await s.scan()
    assert bool(s.failer.calls) is counts


async def test_images_are_listed_once_each_and_sorted() -> None:
    s = Setup()
    bad = pod(
        init_statuses=[
            container_status("imagepullcheck-1", waiting("InvalidImageName"), "zz:1"),
            container_status("imagepullcheck-0", waiting("ImagePullBackOff"), "aa:1"),
        ],
        statuses=[container_status("container-0", waiting("InvalidImageName"), "zz:1")],
    )
    await s.send("added", bad)
    assert s.failer.calls[0].message.splitlines()[1:] == [' * "aa:1"', ' * "zz:1"']


@pytest.mark.parametrize("state", ["ACCEPTED", "ASSIGNED", "RUNNING"])
async def test_a_job_an_agent_already_has_is_cancelled_instead(state: str) -> None:
    s = Setup(state=state)
    await s.send("added", pod(statuses=[container_status("container-0", waiting("InvalidImageName"))]))

    assert s.failer.calls == []
    assert s.buildkite.cancelled == [(UUID, POD_NAME)]
    assert s.count("jobs_cancelled_on_buildkite_total") == 1
    assert s.kube.evicted == []


async def test_a_refused_acquisition_falls_back_to_cancelling() -> None:
    s = Setup("rejected")
    await s.send("added", pod(statuses=[container_status("container-0", waiting("InvalidImageName"))]))

    assert len(s.failer.calls) == 1
    assert s.buildkite.cancelled == [(UUID, POD_NAME)]
    assert s.kube.evicted == []


@pytest.mark.parametrize("state", ["CANCELED", "FINISHED", "SKIPPED"])
async def test_a_job_that_is_over_is_left_alone(state: str) -> None:
    s = Setup(state=state)
    await s.send("added", pod(statuses=[container_status("container-0", waiting("InvalidImageName"))]))
    await s.send("modified", pod(statuses=[container_status("container-0", waiting("InvalidImageName"))]))

    assert s.failer.calls == []
    assert s.buildkite.cancelled == []
    assert s.buildkite.state_queries == 1, "ignored after the first look"


async def test_a_failed_cancel_is_counted_and_retried() -> None:
    s = Setup(state="RUNNING")
    s.buildkite.cancel_error = RuntimeError("GraphQL is down")
    await s.send(
        "added", pod(phase="Running", statuses=[container_status("agent", waiting("InvalidImageName"))])
    )
    assert s.count("job_cancel_on_buildkite_errors_total") == 1

    s.buildkite.cancel_error = None
    await s.scan()
    assert s.buildkite.cancelled == [(UUID, POD_NAME)]


async def test_an_eviction_error_is_counted() -> None:
    s = Setup()
    s.kube.errors["evict_pod"] = not_found("evict")
    await s.send("added", pod(statuses=[container_status("container-0", waiting("InvalidImageName"))]))
    assert (
        s.count("pod_eviction_errors_total", eviction_reason="image_pull_failure", error_reason="NotFound")
        == 1
    )


# ---- cancel checker -----------------------------------------------------------------------------------


async def wait_until(condition: Any, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(CHECK)


async def test_a_pending_pod_of_a_cancelled_job_is_evicted() -> None:
    s = Setup()
    s.buildkite.set_state(UUID, "SCHEDULED", "SCHEDULED", "CANCELED")
    s.watcher.on_event(event("added", pod()))
    assert s.count("num_job_cancel_checkers") == 1

    await wait_until(lambda: s.kube.evicted)

    assert s.kube.evicted == [POD_NAME]
    assert s.buildkite.state_queries == 3
    assert s.count("pods_evicted_total", eviction_reason="bk_job_cancelled") == 1
    await wait_until(lambda: s.count("num_job_cancel_checkers") == 0)


async def test_the_cancel_checker_stops_once_the_pod_runs() -> None:
    s = Setup()
    s.watcher.on_event(event("added", pod()))
    await wait_until(lambda: s.buildkite.state_queries >= 1)

    s.watcher.on_event(event("modified", running_pod()))
    asked = s.buildkite.state_queries
    await asyncio.sleep(CHECK * 10)

    assert s.buildkite.state_queries <= asked + 1
    assert s.count("num_job_cancel_checkers") == 0
    assert s.kube.evicted == []


async def test_the_cancel_checker_stops_when_an_agent_has_the_job() -> None:
    s = Setup()
    s.buildkite.set_state(UUID, "ACCEPTED")
    s.watcher.on_event(event("added", pod()))
    await wait_until(lambda: s.count("num_job_cancel_checkers") == 0)
    assert s.buildkite.state_queries == 1
    assert s.kube.evicted == []


# ---- pending too long ---------------------------------------------------------------------------------


async def test_a_pod_pending_too_long_fails_the_job_and_is_deleted() -> None:
    s = Setup()
    conditions = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available",
        }
    ]
    stuck = pod(started=None, conditions=conditions)
    await s.send("added", stuck)
    s.clock.advance(PENDING_TIMEOUT - 1)
    await s.scan()
    assert s.failer.calls == []

    s.clock.advance(1)
    await s.scan()

    [call] = s.failer.calls
    assert call.message == (
        "The pod has been in Pending state for 10m0s without starting.\n"
        "\nPod Conditions:\n"
        "  - PodScheduled: False (Reason: Unschedulable, Message: 0/3 nodes are available)\n"
        f"\n<events of Pod {POD_NAME}>"
    )
    assert (call.uuid, call.tags, call.namespace) == (UUID, TAGS, NAMESPACE)
    assert s.kube.deleted == [(POD_NAME, NAMESPACE, 0)]
    assert s.count("pods_timed_out_pending_total") == 1


async def test_pending_timeout_leaves_image_failures_to_the_image_check() -> None:
    s = Setup(state="FINISHED")
    await s.send("added", pull_back_off(started=None))
    s.clock.advance(PENDING_TIMEOUT * 2)
    await s.scan()
    assert s.failer.calls == []
    assert s.kube.deleted == []


async def test_pending_timeout_retries_when_the_job_could_not_be_failed() -> None:
    s = Setup("error", "failed")
    await s.send("added", pod(started=None))
    s.clock.advance(PENDING_TIMEOUT)
    await s.scan()
    assert s.kube.deleted == []
    await s.scan()
    assert len(s.failer.calls) == 2
    assert s.kube.deleted == [(POD_NAME, NAMESPACE, 0)]


# ---- bookkeeping --------------------------------------------------------------------------------------


async def test_deleting_the_pod_forgets_the_job() -> None:
    s = Setup()
    bad = pod(statuses=[container_status("container-0", waiting("InvalidImageName"))])
    await s.send("added", bad)
    assert s.count("num_ignored_jobs") == 1

    await s.send("deleted", bad)
    assert s.count("num_ignored_jobs") == 0
    await s.send("added", bad)
    assert len(s.failer.calls) == 2


async def test_a_pod_without_a_valid_uuid_is_skipped() -> None:
    s = Setup()
    await s.send(
        "added", pod(labels={"app": "x"}, statuses=[container_status("agent", waiting("InvalidImageName"))])
    )
    assert s.failer.calls == []
    assert s.count("onadd_events_total") == 1


async def test_run_scans_until_cancelled() -> None:
    s = Setup()
    s.watcher = PodWatcher(
        s.kube,
        s.failer,
        s.buildkite,
        config(**{"image-pull-backoff-grace-period": GRACE}),
        s.metrics,
        s.clock,
        check_interval=CHECK,
    )
    s.watcher.on_event(event("added", pull_back_off()))
    runner = asyncio.create_task(s.watcher.run())
    s.clock.advance(GRACE)
    await wait_until(lambda: s.kube.evicted)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert len(s.failer.calls) == 1


# ---- the Stacks API mode ------------------------------------------------------------------------------


async def test_a_reserved_job_counts_as_waiting_for_an_agent() -> None:
    s = Setup(state="RESERVED")
    await s.send("added", pod(statuses=[container_status("container-0", waiting("InvalidImageName"))]))
    assert len(s.failer.calls) == 1
    assert s.kube.evicted == [POD_NAME]


async def test_a_job_that_can_only_be_told_is_told_once_with_the_images() -> None:
    s = Setup(state="RUNNING")
    s.buildkite.stop_outcome = "notified"
    await s.send("added", pod(statuses=[container_status("container-0", waiting("InvalidImageName"))]))
    await s.scan()
    assert s.buildkite.stop_reasons == ['container-0: InvalidImageName ("img:1")']
    assert s.count("jobs_cancelled_on_buildkite_total") == 0


async def test_with_delete_cancelled_jobs_the_job_goes_instead_of_the_pod() -> None:
    s = Setup()
    s.watcher = PodWatcher(
        s.kube, s.failer, s.buildkite, s.settings, s.metrics, s.clock, delete_cancelled_jobs=True
    )
    s.buildkite.set_state(UUID, "SCHEDULED", "CANCELED")
    s.watcher.on_event(event("added", pod()))
    await wait_until(lambda: s.kube.deleted_jobs)
    assert s.kube.deleted_jobs == [(f"buildkite-{UUID}", NAMESPACE)]
    assert s.kube.evicted == []
    assert s.count("jobs_deleted_total", delete_reason="bk_job_cancelled") == 1
