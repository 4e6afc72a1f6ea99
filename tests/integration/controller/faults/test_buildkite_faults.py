"""Buildkite-side faults against ``engine run`` on the real control plane: GraphQL 500s, 429 with
Retry-After and a hung request; the Agent REST API answering 500 while bad jobs wait to be failed.

Each test first measures normal scheduling latency (the baseline), then the same load during the
fault. Ordinary jobs must wait at most 5 s longer than the baseline's slowest job, every job must end
as one Kubernetes Job or one failed Buildkite job, and the controller must stay alive and ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client as k8s_client

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers
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

JOBS_PER_PHASE = 6
SPACING = 0.5
"""Seconds between jobs of a phase: a phase's jobs span the whole fault window."""

DENY_BAD_JOBS = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: no-bad-jobs}
spec:
  phase: enforce
  rules:
  - name: no-bad
    deny:
      when: job.command.startsWith("bad")
      message: "bad jobs are not allowed on ${{ tags.queue }}"
"""
DENIALS = {"policy": "no-bad-jobs", "rule": "no-bad", "kind": "deny"}


def _until_elapsed(started: float, seconds: float) -> None:
    time.sleep(max(0.0, started + seconds - time.monotonic()))


def test_graphql_500s_a_rate_limit_and_a_hung_request_cost_only_their_own_time(
    controllers: Controllers,
    buildkite: FakeBuildkite,
    engine_run: Callable[..., EngineProcess],
    kube_api: k8s_client.ApiClient,
    figures: Figures,
) -> None:
    controller = engine_run(http_timeout="2s")
    controller.start()
    controller.wait_ready()
    everything: list[str] = []
    with JobClock(kube_api, controllers.namespace) as clock:
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        baseline = latencies(added, clock)
        figures.latency("baseline", baseline)
        everything += added

        # An outage: every GraphQL request answers 500 for 2 s (a job listed meanwhile cannot be seen
        # before it ends; what is measured is that nothing else is added to that).
        started = time.monotonic()
        buildkite.faults.fail("graphql", 500)
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        _until_elapsed(started, 2.0)
        buildkite.faults.clear("graphql")
        cleared = time.monotonic()
        assert_within_normal(figures, "GraphQL 500 for 2s", baseline, latencies(added, clock))
        first_job = min(clock.seen[uuid] for uuid in added)
        figures.note(f"first Job {first_job - cleared:.2f}s after the outage ended")
        everything += added
        assert_alive_and_ready(controller)

        # A rate limit asking for 2 s: the next poll waits that long, no more, no less.
        buildkite.faults.fail("graphql", 429, count=1, retry_after=2, only="GetScheduledJobs")
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        assert_within_normal(figures, "GraphQL 429 Retry-After 2s", baseline, latencies(added, clock))
        everything += added
        polls = buildkite.graphql_requests("GetScheduledJobs")
        limited = next(index for index, request in enumerate(polls) if request.status == 429)
        waited = polls[limited + 1].received_at - polls[limited].received_at
        figures.note(f"next poll {waited:.2f}s after the 429 (Retry-After 2s)")
        assert 1.95 <= waited < 4.0
        assert_alive_and_ready(controller)

        # One poll hangs far beyond http-timeout (2 s): it costs that one cycle.
        buildkite.faults.hang("graphql", count=1, only="GetScheduledJobs")
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        assert_within_normal(figures, "GraphQL hang (http-timeout 2s)", baseline, latencies(added, clock))
        everything += added
        assert controller.metric("buildkite_http_request_timeouts_total", api="graphql") >= 1

    assert_alive_and_ready(controller)
    assert_each_job_ended_once(
        figures, controllers.batch, controllers.namespace, buildkite, scheduled=everything
    )


def test_an_agent_api_outage_with_bad_jobs_waiting_does_not_hold_up_ordinary_jobs(
    controllers: Controllers,
    buildkite: FakeBuildkite,
    engine_run: Callable[..., EngineProcess],
    kube_api: k8s_client.ApiClient,
    figures: Figures,
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "90-no-bad-jobs.yaml").write_text(DENY_BAD_JOBS)
    controller = engine_run(policy_dirs=(policies,))
    controller.start()
    controller.wait_ready()
    with JobClock(kube_api, controllers.namespace) as clock:
        added = add_spread(buildkite, JOBS_PER_PHASE, SPACING)
        baseline = latencies(added, clock)
        figures.latency("baseline", baseline)
        ordinary = list(added)

        # The Agent REST API answers 500 to everything for 8 s; bad jobs arrive first.
        outage = time.monotonic()
        buildkite.faults.fail("agent", 500)
        bad = buildkite.add_jobs(4, command="bad idea")
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
        oldest = controller.metric("buildkite_fail_queue_oldest_seconds")
        assert_within_normal(figures, "Agent API 500 for 8s, 4 bad jobs waiting", baseline, during)
        figures.note(f"fail queue: {len(bad)} jobs waiting, oldest {oldest:.1f}s")
        # ~8 polls listed the bad jobs meanwhile; each was decided once, not once per poll
        assert controller.metric("buildkite_engine_denials_total", **DENIALS) == len(bad)

        # The controller dies with the queue full; nothing was persisted, nothing is lost: the next
        # one sees the bad jobs again and queues them again.
        controller.kill()
        controller.start()
        controller.wait_ready()
        wait_until(
            "the restarted controller to queue the bad jobs again",
            lambda: controller.metric("buildkite_fail_queue_size") == len(bad),
            timeout=20,
        )
        buildkite.faults.clear("agent")
        cleared = time.monotonic()
        wait_until(
            "the bad jobs to be failed",
            lambda: all(buildkite.job(uuid).state == "FINISHED" for uuid in bad),
            timeout=60,
        )
        figures.note(
            f"after a SIGKILL and restart mid-outage, the bad jobs were failed "
            f"{time.monotonic() - cleared:.1f}s after the Agent API came back"
        )

    # each bad job was decided once per controller: polls while it waited did not hand it on again
    assert controller.metric("buildkite_engine_denials_total", **DENIALS) == len(bad)
    assert all(
        buildkite.job(uuid).log
        == "bad jobs are not allowed on kubernetes (denied by policy no-bad-jobs, rule no-bad)"
        for uuid in bad
    )
    wait_until("the queue to empty", lambda: controller.metric("buildkite_fail_queue_size") == 0)
    assert controller.metric("buildkite_fail_queue_outcomes_total", outcome="failed") == len(bad)
    assert_alive_and_ready(controller)
    assert_each_job_ended_once(
        figures, controllers.batch, controllers.namespace, buildkite, scheduled=ordinary, failed=bad
    )


def test_a_job_that_makes_deciding_fail_is_failed_once_not_every_poll(
    controllers: Controllers,
    buildkite: FakeBuildkite,
    engine_run: Callable[..., EngineProcess],
    figures: Figures,
) -> None:
    """A plugin nested 20,000 deep: deciding that job fails (today with a RecursionError inside the
    engine; an input guard may refuse it earlier). Either way it is failed once, with a message and
    no traceback, and scheduling goes on."""
    nested = "[" * 20_000 + "]" * 20_000
    plugins = (
        f'[{{"github.com/buildkite-plugins/kubernetes-buildkite-plugin":{{"podSpec":{{"x":{nested}}}}}}}]'
    )
    deep = buildkite.add_job(plugins=plugins)
    controller = engine_run()
    controller.start()
    controller.wait_ready()
    ordinary = buildkite.add_job()

    wait_until("the deep job to be failed", lambda: buildkite.job(deep).state == "FINISHED", timeout=60)
    wait_until("the ordinary job's Kubernetes Job", lambda: ordinary in controllers.jobs_by_uuid())
    polls = controller.metric("buildkite_monitor_job_queries_total")
    wait_until(
        "five more polls", lambda: controller.metric("buildkite_monitor_job_queries_total") >= polls + 5
    )

    job = buildkite.job(deep)
    acquisitions = [r for r in buildkite.agent_requests("acquire") if deep in r.path]
    figures.note(f"failed with: {job.log.splitlines()[0]!r}; acquired {len(acquisitions)} time(s)")
    assert job.exit_status == "1"
    assert job.log.startswith("agent-stack-k8s ")
    assert "Traceback" not in job.log
    assert len(acquisitions) == 1
    assert_alive_and_ready(controller)
    assert_each_job_ended_once(
        figures, controllers.batch, controllers.namespace, buildkite, scheduled=[ordinary], failed=[deep]
    )
