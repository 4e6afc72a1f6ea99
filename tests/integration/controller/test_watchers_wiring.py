"""End to end: the runtime feeds the watchers (their behaviour is tested with the watchers themselves)."""

from __future__ import annotations

from tests.fakes.buildkite import FakeBuildkite
from tests.harness import kubelet
from tests.integration.controller.conftest import Controllers, wait_for


def test_an_init_container_failure_fails_the_buildkite_job(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    uuid = buildkite.add_job()
    controller = controllers.start()
    pod = controllers.pod_of(uuid)
    init_container = pod["spec"]["initContainers"][0]["name"]

    kubelet.set_init_container_terminated(
        controllers.core, controllers.namespace, pod["metadata"]["name"], init_container, 1, reason="Error"
    )

    wait_for("the Buildkite job to be failed", lambda: buildkite.job(uuid).state == "FINISHED")
    log = buildkite.job(uuid).log
    assert log.startswith("The following init containers failed:")
    assert init_container in log
    # counted once the whole protocol (finish, then disconnect) returned, a moment after FINISHED
    wait_for(
        "the failure to be counted",
        lambda: controller.metric("buildkite_pod_watcher_jobs_failed_on_buildkite_total") == 1,
    )
