"""What the informers keep of each Job and pod: only the fields their subscribers read.

An informer holds every object it watches for as long as it exists, and the controller's Jobs and pods
are mostly pod template: a few containers with about 150 environment variables between them, which no
subscriber reads. Like client-go's informer transform functions, these run on each object as it
arrives (list or watch), before anything stores it, so memory grows with the handful of fields below
instead of with the size of the pod spec.

What each subscriber reads (``tests/integration/kube/test_transforms.py`` runs each one's real code on full
and on transformed objects and fails if one reads something dropped here):

* Jobs (deduper, limiter, job watcher): ``metadata`` (name, namespace, uid, labels,
  creationTimestamp, resourceVersion), ``spec.suspend``, ``status``;
* pods (completions watcher, pod watcher): ``metadata`` (the above plus ownerReferences), the
  ``name`` and ``image`` of each container and init container, ``status``.

``metadata`` is kept whole except ``managedFields`` (server-side-apply bookkeeping, often larger than
the rest of the object); ``status`` is kept whole (small, and what the watchers are about).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.model.jsonvalue import JSONObject

Transform = Callable[[JSONObject], JSONObject]
"""Turns an object as the API server sent it into what an informer stores and delivers."""

JOB_SPEC_FIELDS = ("suspend",)
"""``spec`` fields of a Job that a subscriber reads (a suspended Job waits for a pod on purpose)."""
POD_CONTAINER_LISTS = ("initContainers", "containers")
POD_CONTAINER_FIELDS = ("name", "image")
"""What the pod watcher reads of each container: the image it names when an image cannot be pulled."""
_TOP_LEVEL = ("apiVersion", "kind")


def without_managed_fields(obj: JSONObject) -> JSONObject:
    """The object without ``metadata.managedFields`` (the transform for objects of any other kind)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    return {**obj, "metadata": _metadata(obj)}


def lean_job(job: JSONObject) -> JSONObject:
    """A Job reduced to what the deduper, limiter and job watcher read (see the module doc)."""
    lean = _common(job)
    spec = job.get("spec")
    if isinstance(spec, dict):
        lean["spec"] = {key: spec[key] for key in JOB_SPEC_FIELDS if key in spec}
    return lean


def lean_pod(pod: JSONObject) -> JSONObject:
    """A pod reduced to what the completions and pod watchers read (see the module doc)."""
    lean = _common(pod)
    spec = pod.get("spec")
    if isinstance(spec, dict):
        lean["spec"] = {
            key: [_container(container) for container in spec[key]]
            for key in POD_CONTAINER_LISTS
            if isinstance(spec.get(key), list)
        }
    return lean


def _common(obj: JSONObject) -> JSONObject:
    lean: JSONObject = {key: obj[key] for key in _TOP_LEVEL if key in obj}
    if isinstance(obj.get("metadata"), dict):
        lean["metadata"] = _metadata(obj)
    if "status" in obj:
        lean["status"] = obj["status"]
    return lean


def _metadata(obj: JSONObject) -> JSONObject:
    metadata: dict[str, Any] = obj["metadata"]
    return {key: value for key, value in metadata.items() if key != "managedFields"}


def _container(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    return {key: container[key] for key in POD_CONTAINER_FIELDS if key in container}
