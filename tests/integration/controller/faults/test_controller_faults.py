"""Faults of the controller itself and of its inputs, against ``engine run`` on the real control plane:
SIGKILL at random points of a burst (restarted as a Deployment would, three times), and a broken
policy file pushed mid-burst and then fixed."""

from __future__ import annotations

import random
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
    jobs_by_uuid,
    latencies,
    wait_until,
)

BURST = 200
KILLS = 3

TEAM_LABEL = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {{name: team-label}}
spec:
  phase: customize
  rules:
  - name: label
    patch: {{metadata: {{labels: {{team: {team}}}}}}}
"""
BROKEN = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: team-label}
spec:
  phase: customize
  match: tags.queue ==
  rules:
  - name: label
    patch: {metadata: {labels: {team: c}}}
"""


def test_sigkill_at_random_points_of_a_burst_three_times_loses_and_duplicates_nothing(
    controllers: Controllers,
    buildkite: FakeBuildkite,
    engine_run: Callable[..., EngineProcess],
    kube_api: k8s_client.ApiClient,
    figures: Figures,
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    kill_after = [rng.randint(5, 45) for _ in range(KILLS)]
    figures.note(f"seed {seed}: each run killed after creating {kill_after} Jobs")
    uuids = buildkite.add_jobs(BURST)
    controller = engine_run()
    with JobClock(kube_api, controllers.namespace) as clock:
        started = time.monotonic()
        controller.start()
        for run, count in enumerate(kill_after, start=1):
            run_started = time.monotonic()
            controller.wait_ready()
            ready = time.monotonic() - run_started
            before = len(clock.seen)
            clock.wait_for(min(before + count, BURST - 10))  # always leave some for the last run
            controller.kill()
            figures.note(f"run {run}: ready {ready:.1f}s after starting; SIGKILL at {len(clock.seen)} Jobs")
            controller.start()  # straight away, as a Deployment replaces its pod
        clock.wait_for(BURST, timeout=180)
        figures.note(f"{BURST} jobs through {KILLS} kills in {time.monotonic() - started:.1f}s")
    polls = controller.metric("buildkite_monitor_job_queries_total")
    wait_until(
        "two more polls", lambda: controller.metric("buildkite_monitor_job_queries_total") >= polls + 2
    )

    assert_alive_and_ready(controller)
    assert_each_job_ended_once(figures, controllers.batch, controllers.namespace, buildkite, scheduled=uuids)
    assert controller.stop() == 0


def test_a_broken_policy_pushed_mid_burst_and_fixed_keeps_scheduling_with_the_last_good_set(
    controllers: Controllers,
    buildkite: FakeBuildkite,
    engine_run: Callable[..., EngineProcess],
    kube_api: k8s_client.ApiClient,
    figures: Figures,
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    policy = policies / "50-team.yaml"
    policy.write_text(TEAM_LABEL.format(team="a"))
    controller = engine_run(policy_dirs=(policies,))
    controller.start()
    controller.wait_ready()
    with JobClock(kube_api, controllers.namespace) as clock:
        good = add_spread(buildkite, 10, 0.2)
        figures.latency("valid policies", latencies(good, clock))

        policy.write_text(BROKEN)  # an admin pushes a broken file
        pushed = time.monotonic()
        during = add_spread(buildkite, 10, 0.2)
        wait_until("the reload to be rejected", lambda: not controller.ready(), timeout=30)
        figures.note(f"/readyz 503 {time.monotonic() - pushed:.1f}s after the broken push")
        during |= add_spread(buildkite, 10, 0.2)
        figures.latency("broken file on disk", latencies(during, clock))
        assert controller.alive()
        assert controller.metric("buildkite_engine_policy_set_valid") == 0

        policy.write_text(TEAM_LABEL.format(team="b"))  # and fixes it
        fixed = time.monotonic()
        wait_until("the fixed set to load", controller.ready, timeout=30)
        figures.note(f"/readyz 200 {time.monotonic() - fixed:.1f}s after the fix")
        after = add_spread(buildkite, 10, 0.2)
        figures.latency("fixed policies", latencies(after, clock))

    jobs = jobs_by_uuid(controllers.batch, controllers.namespace)
    team = {uuid: found[0]["metadata"]["labels"].get("team") for uuid, found in jobs.items()}
    assert {team[uuid] for uuid in good} == {"a"}
    assert {team[uuid] for uuid in during} == {"a"}  # the last good set kept scheduling
    assert {team[uuid] for uuid in after} == {"b"}
    assert_alive_and_ready(controller)
    assert_each_job_ended_once(
        figures,
        controllers.batch,
        controllers.namespace,
        buildkite,
        scheduled=[*good, *during, *after],
    )
