"""End to end, profile upstream-v0.47: a step's podTemplate is read from the controller's namespace
(the PodTemplate object on the real API server) and its spec becomes the pod; a name the namespace does
not have fails the Buildkite job with upstream's message."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers, wait_for

KUBERNETES_PLUGIN = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"


def _plugins(config: dict[str, object]) -> str:
    return json.dumps([{KUBERNETES_PLUGIN: config}])


def test_the_named_pod_template_is_the_pod_spec(controllers: Controllers, buildkite: FakeBuildkite) -> None:
    core: Any = controllers.core  # untyped: the client takes a plain dict as the body
    core.create_namespaced_pod_template(
        controllers.namespace,
        {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "integration-tests-pod-template"},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "alpine:3.20",
                            "env": [{"name": "TEST_POD_TEMPLATE", "value": "kunanyi"}],
                        }
                    ]
                }
            },
        },
    )
    uuid = buildkite.add_job(
        command='echo "$TEST_POD_TEMPLATE is a mountain"',
        env={"BUILDKITE_PLUGINS": _plugins({"podTemplate": "integration-tests-pod-template"})},
    )
    controllers.start(profile="upstream-v0.47")

    [job] = wait_for("the Kubernetes Job", lambda: controllers.jobs_by_uuid().get(uuid))
    spec = job["spec"]["template"]["spec"]
    main = next(c for c in spec["containers"] if c["name"] == "main")
    assert main["image"] == "alpine:3.20"
    assert main["env"][0] == {"name": "TEST_POD_TEMPLATE", "value": "kunanyi"}
    assert {"name": "BUILDKITE_COMMAND", "value": 'echo "$TEST_POD_TEMPLATE is a mountain"'} in main["env"]
    annotations = job["metadata"]["annotations"]
    assert annotations["buildkite.com/pod-template-name"] == "integration-tests-pod-template"
    assert [c["name"] for c in spec["initContainers"]] == ["copy-agent", "imagecheck-0"]


def test_a_missing_pod_template_fails_the_job(controllers: Controllers, buildkite: FakeBuildkite) -> None:
    uuid = buildkite.add_job(env={"BUILDKITE_PLUGINS": _plugins({"podTemplate": "missing"})})
    controller = controllers.start(profile="upstream-v0.47")

    wait_for("the job to be failed", lambda: buildkite.job(uuid).state == "FINISHED" or None)
    assert buildkite.job(uuid).log == (
        'Error fetching podTemplate "missing": podtemplates "missing" not found '
        "(denied by policy job-metadata, rule pod-template-exists)"
    )
    assert controllers.jobs() == []
    assert controller.metric("buildkite_scheduler_jobs_failed_on_buildkite_total") == 1


def test_the_default_profile_ignores_pod_templates(
    controllers: Controllers, buildkite: FakeBuildkite
) -> None:
    """v0.20.2 had no podTemplate: the step gets the default pod (and a warning that the field is ignored)."""
    uuid = buildkite.add_job(env={"BUILDKITE_PLUGINS": _plugins({"podTemplate": "missing"})})
    controllers.start()

    [job] = wait_for("the Kubernetes Job", lambda: controllers.jobs_by_uuid().get(uuid))
    names = [c["name"] for c in job["spec"]["template"]["spec"]["containers"]]
    assert names == ["container-0", "agent", "checkout"]
