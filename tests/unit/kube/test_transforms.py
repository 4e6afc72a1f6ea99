"""The informer transforms keep exactly the documented fields (which ones the subscribers need is proved
against real objects in ``tests/integration/kube/test_transforms.py``)."""

from __future__ import annotations

from typing import Any

from engine.kube.transforms import lean_job, lean_pod, without_managed_fields

METADATA = {
    "name": "buildkite-x",
    "namespace": "ns",
    "uid": "u-1",
    "resourceVersion": "7",
    "creationTimestamp": "2025-01-01T00:00:00Z",
    "labels": {"buildkite.com/job-uuid": "x"},
    "annotations": {"a": "b"},
    "ownerReferences": [{"kind": "Job", "name": "buildkite-x", "controller": True}],
    "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:status": {}}}],
}
CONTAINER = {"name": "agent", "image": "buildkite/agent:3", "env": [{"name": "A", "value": "1"}] * 50}


def test_a_job_keeps_metadata_suspend_and_status() -> None:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": METADATA,
        "spec": {"suspend": False, "backoffLimit": 0, "template": {"spec": {"containers": [CONTAINER]}}},
        "status": {"active": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    }
    metadata = {key: value for key, value in METADATA.items() if key != "managedFields"}
    assert lean_job(job) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {"suspend": False},
        "status": job["status"],
    }
    assert job["metadata"]["managedFields"], "the original is left alone"


def test_a_pod_keeps_container_names_and_images_and_status() -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": METADATA,
        "spec": {
            "initContainers": [{**CONTAINER, "name": "copy-agent"}],
            "containers": [CONTAINER, {"name": "no-image"}],
            "volumes": [{"name": "workspace", "emptyDir": {}}],
            "nodeSelector": {"a": "b"},
        },
        "status": {"phase": "Pending", "containerStatuses": [{"name": "agent", "state": {"waiting": {}}}]},
    }
    lean = lean_pod(pod)
    assert lean["spec"] == {
        "initContainers": [{"name": "copy-agent", "image": "buildkite/agent:3"}],
        "containers": [{"name": "agent", "image": "buildkite/agent:3"}, {"name": "no-image"}],
    }
    assert lean["status"] == pod["status"]
    assert "managedFields" not in lean["metadata"]
    assert lean["metadata"]["ownerReferences"] == METADATA["ownerReferences"]


def test_odd_shapes_pass_through_without_raising() -> None:
    assert lean_job({"metadata": {"name": "x"}}) == {"metadata": {"name": "x"}}
    assert lean_pod({"spec": {"containers": ["not-a-mapping"]}}) == {
        "spec": {"containers": ["not-a-mapping"]}
    }
    assert lean_pod({"spec": "nonsense"}) == {}
    assert lean_job({}) == {}


def test_without_managed_fields_copies_only_when_there_are_some() -> None:
    untouched = {"metadata": {"name": "x"}}
    assert without_managed_fields(untouched) is untouched
    assert without_managed_fields({"metadata": METADATA, "spec": 1})["metadata"].get("managedFields") is None
