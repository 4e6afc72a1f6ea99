"""The reliability faults against the Stacks API mode: ``engine run`` on the real control plane while
the fake Stacks API answers 500s, 429 with ``Retry-After``, hangs, and refuses to finish bad jobs.

As for GraphQL (``test_buildkite_faults.py``): each phase's ordinary jobs may wait at most 5 s longer
than the baseline's slowest job, every job ends as one Kubernetes Job or one finished Buildkite job,
none is left reserved without a Job, and the controller stays alive and ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client as k8s_client

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers
from tests.integration.controller.faults.test_buildkite_faults import DENIALS, DENY_BAD_JOBS, SPACING
from tests.integration.controller.faults.tools import (
    EngineProcess,
    Figures,
    JobClock,
    add_spread,
    assert_alive_and_ready,
    assert_each_job_ended_once,
    assert_within_normal,
    latencies,
    wait_until,
)

JOBS_PER_PHASE = 5


def _until_elapsed(started: float, seconds: float) -> None:
    time.sleep(max(0.0, started + seconds - time.monotonic()))


def test_stacks_api_500s_a_rate_limit_and_hangs_cost_only_their_own_time(
    controllers: Controllers,
    buildkite: FakeBuildkite,
    engine_run: Callable[..., EngineProcess],
    kube_api: k8s_client.ApiClient,
    figures: Figures,
) -> None:
    controller = engine_run(mode="stacks", http_timeout="2s")
    controller.start()
    controller.wait_ready()
    everything: list[str] = []
    with JobClock(kube_api, controllers.namespace) as clock:
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        baseline = latencies(added, clock)
        figures.latency("baseline", baseline)
        everything += added

        # An outage: every Stacks API call answers 500 for 2 s (listing, reserving, details, states,
        # notifications alike).
        started = time.monotonic()
        buildkite.faults.fail("stacks", 500)
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        _until_elapsed(started, 2.0)
        buildkite.faults.clear("stacks")
        assert_within_normal(figures, "Stacks API 500 for 2s", baseline, latencies(added, clock))
        everything += added
        assert_alive_and_ready(controller)

        # A rate-limited listing asking for 2 s: the next poll waits that long.
        buildkite.faults.fail("stacks", 429, count=1, retry_after=2, only="scheduled-jobs")
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        assert_within_normal(figures, "listing 429 Retry-After 2s", baseline, latencies(added, clock))
        everything += added
        polls = buildkite.stacks_requests("scheduled-jobs")
        limited = next(index for index, request in enumerate(polls) if request.status == 429)
        waited = polls[limited + 1].received_at - polls[limited].received_at
        figures.note(f"next poll {waited:.2f}s after the 429 (Retry-After 2s)")
        assert 1.95 <= waited < 4.0

        # A reservation that gets no answer within http-timeout (2 s), and a job's details that fail
        # once (the details are asked for again a second later): each costs its own time, no job is
        # lost and none is left reserved.
        buildkite.faults.hang("stacks", count=1, only="batch-reserve")
        buildkite.faults.fail("stacks", 502, count=1, only="get-job")
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        assert_within_normal(figures, "reserve hang, get-job 502", baseline, latencies(added, clock))
        everything += added

        # One listing hangs: it costs that one cycle.
        buildkite.faults.hang("stacks", count=1, only="scheduled-jobs")
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        assert_within_normal(figures, "listing hang (http-timeout 2s)", baseline, latencies(added, clock))
        everything += added
        assert controller.metric("buildkite_http_request_timeouts_total", api="stacks") >= 2

    assert_alive_and_ready(controller)
    assert controller.metric("buildkite_stacks_reservations_total", result="reserved") >= len(everything)
    assert_each_job_ended_once(
        figures, controllers.batch, controllers.namespace, buildkite, scheduled=everything
    )


def test_a_finish_outage_with_bad_jobs_waiting_does_not_hold_up_ordinary_jobs(
    controllers: Controllers,
    buildkite: FakeBuildkite,
    engine_run: Callable[..., EngineProcess],
    kube_api: k8s_client.ApiClient,
    figures: Figures,
    tmp_path: Path,
) -> None:
    """The finish call answers 500 for 8 s while bad jobs wait to be failed; then the controller is
    SIGKILLed and restarted. The bad jobs it had reserved are not listed to the new process until
    their reservations expire (10 s here), then they are decided and finished again, once each."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "90-no-bad-jobs.yaml").write_text(DENY_BAD_JOBS)
    controller = engine_run(policy_dirs=(policies,), mode="stacks", reservation_expiry_seconds=10)
    controller.start()
    controller.wait_ready()
    with JobClock(kube_api, controllers.namespace) as clock:
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        baseline = latencies(added, clock)
        figures.latency("baseline", baseline)
        ordinary = list(added)

        outage = time.monotonic()
        buildkite.faults.fail("stacks", 500, only="finish")
        bad = buildkite.add_jobs(3, command="bad idea")
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        during = latencies(added, clock)
        ordinary += added
        wait_until(
            "the bad jobs to wait in the fail queue",
            lambda: controller.metric("buildkite_fail_queue_size") == len(bad),
            timeout=20,
        )
        _until_elapsed(outage, 8.0)
        assert all(buildkite.job(uuid).state == "SCHEDULED" for uuid in bad)
        assert_within_normal(figures, "finish 500 for 8s, 3 bad jobs waiting", baseline, during)
        assert controller.metric("buildkite_engine_denials_total", **DENIALS) == len(bad)

        controller.kill()
        buildkite.faults.clear("stacks")
        cleared = time.monotonic()
        controller.start()
        controller.wait_ready()
        wait_until(
            "the bad jobs to be finished",
            lambda: all(buildkite.job(uuid).state == "FINISHED" for uuid in bad),
            timeout=90,
        )
        figures.note(
            f"after a SIGKILL and restart, the bad jobs were finished {time.monotonic() - cleared:.1f}s "
            "later (their reservations, held by the dead process, expired after 10 s)"
        )

    assert all(
        buildkite.job(uuid).log
        == "bad jobs are not allowed on kubernetes (denied by policy no-bad-jobs, rule no-bad)"
        for uuid in bad
    )
    assert_alive_and_ready(controller)
    assert_each_job_ended_once(
        figures, controllers.batch, controllers.namespace, buildkite, scheduled=ordinary, failed=bad
    )
