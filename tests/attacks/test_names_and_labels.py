"""Names and labels the stack owns.

Empty names: a container or sidecar whose ``name`` (or ``workingDir``) is present but empty gets the
default (``container-N``, ``sidecar-N``, ``/workspace``), as upstream does; an empty name is refused by
the API, so a dry run must never show one.

System labels and annotations: ``buildkite.com/job-uuid``, ``buildkite.com/controller-id``, the
``tag.buildkite.com/*`` labels and the stack's annotations are what the controller and its watchers
read back; the author's ``metadata`` cannot set or add to them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.attacks.harness import (
    ALLOWED_IMAGE,
    UUID,
    Job,
    only_container,
    pod,
    policies,
    require_admitted,
    run,
    step_container,
)
from tests.attacks.oracle import all_containers


def assert_every_container_named(plugin: dict[str, Any]) -> None:
    decision = run(policies(), Job(plugin=plugin))
    if decision.admitted:
        unnamed = [ref.where for ref in all_containers(pod(decision)) if not ref.container.get("name")]
        assert unnamed == []


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        pytest.param(
            {"podSpec": {"containers": [step_container(name="")]}}, ["container-0"], id="podSpec-empty-name"
        ),
        pytest.param(
            {"podSpec": {"containers": [step_container(name=None)]}}, ["container-0"], id="podSpec-null-name"
        ),
        pytest.param(
            {"podSpec": {"containers": [step_container(name="first"), step_container(name="")]}},
            ["container-1"],
            id="second-podSpec-container-empty-name",
        ),
        pytest.param(
            {"sidecars": [{"name": "", "image": ALLOWED_IMAGE}]}, ["sidecar-0"], id="sidecar-empty-name"
        ),
        pytest.param(
            {"sidecars": [{"name": "db", "image": ALLOWED_IMAGE}, {"name": "", "image": ALLOWED_IMAGE}]},
            ["sidecar-1"],
            id="second-sidecar-empty-name",
        ),
    ],
)
def test_an_empty_name_gets_the_default(plugin: dict[str, Any], expected: list[str]) -> None:
    assert_every_container_named(plugin)
    decision = run(policies(), Job(plugin=plugin))
    for name in expected:
        only_container(decision, name)


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param({"podSpec": {"containers": [step_container(workingDir="")]}}, id="empty-workingDir"),
        pytest.param({"podSpec": {"containers": [step_container(workingDir=None)]}}, id="null-workingDir"),
    ],
)
def test_an_empty_working_dir_gets_the_workspace(plugin: dict[str, Any]) -> None:
    decision = run(policies(), Job(plugin=plugin))
    require_admitted(decision)
    actual = only_container(decision, "app")["workingDir"]
    assert actual == "/workspace"


# --- system labels and annotations -----------------------------------------------------------------

TAG_PREFIX = "tag.buildkite.com/"


def metadata_views(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The Job's metadata and its pod template's metadata."""
    return [manifest.get("metadata", {}), manifest.get("spec", {}).get("template", {}).get("metadata", {})]


LABEL_ATTACKS = [
    pytest.param({"buildkite.com/job-uuid": "0193a0a7-7ac4-4000-8000-0000000000ff"}, id="job-uuid"),
    pytest.param({"buildkite.com/controller-id": "another-controller"}, id="controller-id"),
    pytest.param({TAG_PREFIX + "queue": "other"}, id="tag-label-overridden"),
    pytest.param({TAG_PREFIX + "priority": "high"}, id="tag-label-added"),
    pytest.param({TAG_PREFIX + "Queue": "other"}, id="tag-label-case-variant"),
]


@pytest.mark.parametrize("labels", LABEL_ATTACKS)
def test_the_authors_metadata_cannot_set_system_labels(labels: dict[str, str]) -> None:
    decision = run(policies(), Job(plugin={"metadata": {"labels": labels}}))
    if not decision.admitted:
        return
    for metadata in metadata_views(decision.manifest):
        found = metadata.get("labels", {})
        assert found.get("buildkite.com/job-uuid") == UUID
        assert found.get("buildkite.com/controller-id") != labels.get("buildkite.com/controller-id", "-")
        tag_labels = {k: v for k, v in found.items() if k.startswith(TAG_PREFIX)}
        assert tag_labels == {TAG_PREFIX + "queue": "kubernetes"}


def test_a_pod_spec_patch_cannot_reach_the_metadata() -> None:
    patch = {"metadata": {"labels": {"buildkite.com/job-uuid": "0193a0a7-7ac4-4000-8000-0000000000ff"}}}
    decision = run(policies(), Job(plugin={"podSpecPatch": patch}))
    if not decision.admitted:
        return
    for metadata in metadata_views(decision.manifest):
        found = metadata.get("labels", {}).get("buildkite.com/job-uuid")
        assert found == UUID


@pytest.mark.parametrize(
    "annotations",
    [
        pytest.param({"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}, id="safe-to-evict"),
        pytest.param({"buildkite.com/job-url": "https://attacker.example"}, id="job-url"),
    ],
)
def test_the_authors_metadata_cannot_set_system_annotations(annotations: dict[str, str]) -> None:
    decision = run(policies(), Job(plugin={"metadata": {"annotations": annotations}}))
    if not decision.admitted:
        return
    for metadata in metadata_views(decision.manifest):
        found = metadata.get("annotations", {})
        assert found.get("cluster-autoscaler.kubernetes.io/safe-to-evict") == "false"
        assert found.get("buildkite.com/job-url", "").endswith("#" + UUID)


def test_ordinary_labels_are_kept() -> None:
    decision = run(
        policies(), Job(plugin={"metadata": {"labels": {"team": "web"}, "annotations": {"owner": "web"}}})
    )
    require_admitted(decision)
    for metadata in metadata_views(decision.manifest):
        assert metadata["labels"]["team"] == "web"
        assert metadata["annotations"]["owner"] == "web"
