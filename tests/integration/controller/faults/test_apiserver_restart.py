"""The API server killed (SIGKILL) and restarted mid-burst, with ``engine run`` connected to it.

This test has a control plane of its own: killing the session's shared API server would make every
other test's failure possible, and a fault test must keep its fault to itself.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s_client

from tests.fakes.buildkite import FakeBuildkite
from tests.harness.cluster import KubeCluster
from tests.harness.cluster_fixtures import binaries_or_skip
from tests.integration.controller.conftest import AGENT_TOKEN_SECRET
from tests.integration.controller.faults.tools import (
    EngineProcess,
    Figures,
    assert_alive_and_ready,
    assert_each_job_ended_once,
    jobs_by_uuid,
    wait_until,
)

BURST = 150
NAMESPACE = "apiserver-restart"


@pytest.fixture
def own_cluster() -> Iterator[KubeCluster]:
    cluster = KubeCluster(binaries_or_skip())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _count(batch: k8s_client.BatchV1Api) -> int:
    return len(jobs_by_uuid(batch, NAMESPACE))


def test_the_api_server_killed_and_restarted_mid_burst_loses_and_duplicates_nothing(
    own_cluster: KubeCluster, buildkite: FakeBuildkite, tmp_path: Path, figures: Figures
) -> None:
    with contextlib.closing(own_cluster.api_client()) as api:
        core, batch = k8s_client.CoreV1Api(api), k8s_client.BatchV1Api(api)
        core.create_namespace(k8s_client.V1Namespace(metadata=k8s_client.V1ObjectMeta(name=NAMESPACE)))
        token = base64.b64encode(buildkite.agent_token.encode()).decode()
        core.create_namespaced_secret(
            NAMESPACE,
            k8s_client.V1Secret(
                metadata=k8s_client.V1ObjectMeta(name=AGENT_TOKEN_SECRET),
                data={"BUILDKITE_AGENT_TOKEN": token},
            ),
        )
        uuids = buildkite.add_jobs(BURST)
        controller = EngineProcess(
            tmp_path,
            buildkite,
            namespace=NAMESPACE,
            kubeconfig=own_cluster.kubeconfig_path,
            agent_token_secret=AGENT_TOKEN_SECRET,
            job_creation_concurrency=1,
        )
        controller.start()
        try:
            controller.wait_ready()
            wait_until(
                "the burst to be under way",
                lambda: controller.metric("buildkite_scheduler_job_create_success_total") >= 20,
                timeout=120,
                interval=0.05,
            )
            own_cluster.kill_apiserver()
            killed = time.monotonic()
            created = controller.metric("buildkite_scheduler_job_create_success_total")
            time.sleep(3)  # the controller keeps polling, its creates and watches fail meanwhile
            assert controller.alive()
            own_cluster.restart_apiserver()
            back = time.monotonic()
            figures.note(
                f"API server killed after {created:.0f} of {BURST} creates, down {back - killed:.1f}s"
            )
            assert created < BURST, "the API server must go down mid-burst"
            wait_until(
                "the controller to create Jobs again",
                lambda: controller.metric("buildkite_scheduler_job_create_success_total") > created,
                timeout=120,
                interval=0.05,
            )
            figures.note(f"first Job {time.monotonic() - back:.1f}s after the API server was back")
            wait_until(f"{BURST} Kubernetes Jobs", lambda: _count(batch) >= BURST, timeout=180, interval=0.5)
            figures.note(f"all {BURST} Jobs {time.monotonic() - back:.1f}s after the API server was back")
            polls = controller.metric("buildkite_monitor_job_queries_total")
            wait_until(
                "two more polls",
                lambda: controller.metric("buildkite_monitor_job_queries_total") >= polls + 2,
            )

            assert_alive_and_ready(controller)
            assert_each_job_ended_once(figures, batch, NAMESPACE, buildkite, scheduled=uuids)
        finally:
            assert controller.stop() == 0
