"""A fake kubelet: moves Pods through their lifecycle by patching ``pods/status``.

Why: the test cluster has no kubelet (and no scheduler), so Pods created by the job controller stay
``Pending`` with an empty status forever. A real kubelet reports progress only through the Pod's
status subresource; these functions write the same shapes it would (phase, startTime, the four
standard conditions, and a status entry for every init and app container, filled from the Pod's own
spec), so the job controller and the code under test react as they would on a real node.

Each function reads the Pod, builds a complete new status, sends it as a JSON merge patch (lists are
replaced whole, like a kubelet's status update) and returns the patched ``V1Pod``. Containers whose
state a function does not mention keep the state they already had.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import CoreV1Api, V1Pod

JSONDict = dict[str, Any]

_MERGE_PATCH = "application/merge-patch+json"
_PODS_NOT_INITIALIZED = "PodInitializing"
_CREATING = "ContainerCreating"


# ---- small builders ---------------------------------------------------------------------------------


def _timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with second precision, as the API server stores it."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def image_id_for(image: str) -> str:
    """A plausible resolved image reference (``docker.io/library/alpine@sha256:…``) for ``image``.

    A runtime reports the registry-qualified repository plus the digest it pulled; the digest here is
    derived from the image string so it is stable across calls.
    """
    if "@" in image:
        repository, digest = image.split("@", 1)
    else:
        repository, digest = image, f"sha256:{_digest(image)}"
        last_part = repository.rsplit("/", 1)[-1]
        if ":" in last_part:
            repository = repository[: repository.rfind(":")]
    first_part = repository.split("/", 1)[0]
    if "/" not in repository:
        repository = f"docker.io/library/{repository}"
    elif "." not in first_part and ":" not in first_part and first_part != "localhost":
        repository = f"docker.io/{repository}"
    return f"{repository}@{digest}"


def _container_id(pod_uid: str, container: str, restart_count: int) -> str:
    return f"containerd://{_digest(f'{pod_uid}/{container}/{restart_count}')}"


def _waiting(reason: str, message: str | None = None) -> JSONDict:
    waiting: JSONDict = {"reason": reason}
    if message:
        waiting["message"] = message
    return {"waiting": waiting}


def _running(started_at: str) -> JSONDict:
    return {"running": {"startedAt": started_at}}


def _terminated(
    exit_code: int, reason: str | None, message: str | None, container_id: str, started_at: str
) -> JSONDict:
    terminated: JSONDict = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": _timestamp(),
        "containerID": container_id,
    }
    if message:
        terminated["message"] = message
    return {"terminated": terminated}


def _state_kind(state: Mapping[str, Any]) -> str:
    """``waiting``, ``running`` or ``terminated``."""
    return next(iter(state), "waiting")


# ---- the pod being patched --------------------------------------------------------------------------


class _PodView:
    """The Pod as JSON plus what the builders need: spec containers and the statuses reported so far."""

    def __init__(self, core_v1: CoreV1Api, namespace: str, name: str) -> None:
        pod = core_v1.read_namespaced_pod(name, namespace)
        pod_json: JSONDict = core_v1.api_client.sanitize_for_serialization(pod)
        self.namespace = namespace
        self.name = name
        spec: JSONDict = pod_json.get("spec") or {}
        status: JSONDict = pod_json.get("status") or {}
        self.uid: str = (pod_json.get("metadata") or {}).get("uid", name)
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        self.init_specs: list[JSONDict] = list(spec.get("initContainers") or [])
        self.app_specs: list[JSONDict] = list(spec.get("containers") or [])
        self.start_time: str = status.get("startTime") or _timestamp()
        self.old_conditions: dict[str, JSONDict] = {c["type"]: c for c in status.get("conditions") or []}
        self.old_statuses: dict[str, JSONDict] = {
            s["name"]: s
            for s in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        }

    def require(self, container: str, *, init: bool) -> None:
        specs = self.init_specs if init else self.app_specs
        names = [c["name"] for c in specs]
        if container not in names:
            kind = "init container" if init else "container"
            raise ValueError(f"pod {self.namespace}/{self.name} has no {kind} {container!r} (has {names})")

    def previous_state(self, container: str) -> JSONDict | None:
        old = self.old_statuses.get(container)
        return dict(old["state"]) if old and old.get("state") else None

    def state_once_initialized(self, container: str, default: JSONDict) -> JSONDict:
        """The container's earlier state, or ``default`` if it had none or was only waiting for init."""
        previous = self.previous_state(container)
        if not previous or (previous.get("waiting") or {}).get("reason") == _PODS_NOT_INITIALIZED:
            return default
        return previous

    def status_entry(
        self,
        spec: JSONDict,
        state: JSONDict,
        *,
        restart_count: int | None = None,
        last_state: JSONDict | None = None,
    ) -> JSONDict:
        """A containerStatuses item as a kubelet writes it: pulled images have an imageID."""
        name: str = spec["name"]
        image: str = spec.get("image", "")
        old = self.old_statuses.get(name, {})
        restarts = restart_count if restart_count is not None else int(old.get("restartCount", 0))
        kind = _state_kind(state)
        pulled = kind != "waiting" or restarts > 0
        entry: JSONDict = {
            "name": name,
            "image": image,
            "imageID": image_id_for(image) if pulled else "",
            "ready": kind == "running",
            "restartCount": restarts,
            "started": kind == "running",
            "state": state,
            "lastState": last_state if last_state is not None else old.get("lastState", {}),
        }
        if pulled:
            entry["containerID"] = _container_id(self.uid, name, restarts)
        return entry

    def completed_state(self, spec: JSONDict) -> JSONDict:
        """A successful termination, reusing the start time of an earlier ``running`` state if any."""
        previous = self.previous_state(spec["name"]) or {}
        if _state_kind(previous) == "terminated" and previous["terminated"].get("exitCode") == 0:
            return previous
        started = (previous.get("running") or {}).get("startedAt", self.start_time)
        return _terminated(0, None, None, _container_id(self.uid, spec["name"], 0), started)

    def terminated_state(
        self, spec: JSONDict, exit_code: int, reason: str | None, message: str | None
    ) -> JSONDict:
        previous = self.previous_state(spec["name"]) or {}
        started = (previous.get("running") or {}).get("startedAt", self.start_time)
        restarts = int(self.old_statuses.get(spec["name"], {}).get("restartCount", 0))
        return _terminated(
            exit_code, reason, message, _container_id(self.uid, spec["name"], restarts), started
        )

    def condition(
        self, kind: str, ok: bool, reason: str | None = None, message: str | None = None
    ) -> JSONDict:
        """A pod condition; lastTransitionTime only moves when the status flips, as on a real node."""
        status = "True" if ok else "False"
        old = self.old_conditions.get(kind)
        condition: JSONDict = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": (
                old["lastTransitionTime"]
                if old and old.get("status") == status and old.get("lastTransitionTime")
                else _timestamp()
            ),
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        return condition

    def patch(self, core_v1: CoreV1Api, status: JSONDict) -> V1Pod:
        return core_v1.patch_namespaced_pod_status(
            self.name, self.namespace, {"status": status}, _content_type=_MERGE_PATCH
        )


def _status(
    pod: _PodView,
    phase: str,
    init_statuses: list[JSONDict],
    app_statuses: list[JSONDict],
    *,
    reason: str | None = None,
    message: str | None = None,
) -> JSONDict:
    """The whole pod status, with conditions derived from the container statuses like the kubelet does."""
    succeeded = phase == "Succeeded"
    unfinished_init = [
        s["name"]
        for s in init_statuses
        if _state_kind(s["state"]) != "terminated" or s["state"]["terminated"]["exitCode"] != 0
    ]
    unready = [s["name"] for s in app_statuses if not s["ready"]]
    initialized = not unfinished_init
    all_ready = not unready and not succeeded
    not_ready_reason = "PodCompleted" if succeeded else "ContainersNotReady"
    not_ready_message = None if succeeded else f"containers with unready status: [{' '.join(unready)}]"
    conditions = [
        pod.condition(
            "Initialized",
            initialized,
            "PodCompleted" if succeeded else None if initialized else "ContainersNotInitialized",
            None if initialized else f"containers with incomplete status: [{' '.join(unfinished_init)}]",
        ),
        pod.condition(
            "Ready",
            all_ready,
            None if all_ready else not_ready_reason,
            None if all_ready else not_ready_message,
        ),
        pod.condition(
            "ContainersReady",
            all_ready,
            None if all_ready else not_ready_reason,
            None if all_ready else not_ready_message,
        ),
        pod.condition("PodScheduled", True),
    ]
    status: JSONDict = {
        "phase": phase,
        "startTime": pod.start_time,
        "conditions": conditions,
        "initContainerStatuses": init_statuses or None,
        "containerStatuses": app_statuses,
        "reason": reason,
        "message": message,
    }
    return status


def _all_init_completed(pod: _PodView) -> list[JSONDict]:
    return [pod.status_entry(spec, pod.completed_state(spec)) for spec in pod.init_specs]


def _default_pull_message(reason: str, image: str) -> str | None:
    if reason == "ImagePullBackOff":
        return f'Back-off pulling image "{image}"'
    if reason == "ErrImagePull":
        return f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}"'
    return None


# ---- public API --------------------------------------------------------------------------------------


def set_pod_start_time(core_v1: CoreV1Api, namespace: str, name: str, start_time: datetime) -> V1Pod:
    """Set only ``status.startTime`` (e.g. to make a Pod look as if it started long ago)."""
    return core_v1.patch_namespaced_pod_status(
        name, namespace, {"status": {"startTime": _timestamp(start_time)}}, _content_type=_MERGE_PATCH
    )


def set_pod_running(
    core_v1: CoreV1Api, namespace: str, name: str, *, containers: Collection[str] | None = None
) -> V1Pod:
    """Init containers completed; ``containers`` (default: all) running and ready. The others keep a
    waiting or terminated state they had, else show ``ContainerCreating``. Phase ``Running``;
    ``Ready`` only when every container runs."""
    pod = _PodView(core_v1, namespace, name)
    running = {c["name"] for c in pod.app_specs} if containers is None else set(containers)
    for container in running:
        pod.require(container, init=False)
    if not running:
        raise ValueError(f"pod {namespace}/{name}: set_pod_running needs at least one container")
    now = _timestamp()
    apps: list[JSONDict] = []
    for spec in pod.app_specs:
        if spec["name"] not in running:
            state = pod.state_once_initialized(spec["name"], _waiting(_CREATING))
            if _state_kind(state) == "running":
                state = _waiting(_CREATING)
        else:
            previous = pod.previous_state(spec["name"]) or {}
            state = previous if _state_kind(previous) == "running" and previous else _running(now)
        apps.append(pod.status_entry(spec, state))
    return pod.patch(core_v1, _status(pod, "Running", _all_init_completed(pod), apps))


def set_pod_succeeded(core_v1: CoreV1Api, namespace: str, name: str) -> V1Pod:
    """Every init and app container terminated with exit code 0; phase ``Succeeded``."""
    pod = _PodView(core_v1, namespace, name)
    apps = [pod.status_entry(spec, pod.completed_state(spec)) for spec in pod.app_specs]
    return pod.patch(core_v1, _status(pod, "Succeeded", _all_init_completed(pod), apps))


def set_pod_failed(
    core_v1: CoreV1Api,
    namespace: str,
    name: str,
    *,
    container: str | None = None,
    exit_code: int = 1,
    reason: str = "Error",
    message: str | None = None,
    pod_reason: str | None = None,
    pod_message: str | None = None,
) -> V1Pod:
    """Phase ``Failed``: ``container`` (default: the first) terminated with ``exit_code``/``reason``,
    the other app containers completed. ``pod_reason``/``pod_message`` set the Pod-level reason, as for
    ``Evicted`` or ``DeadlineExceeded``."""
    pod = _PodView(core_v1, namespace, name)
    failing = container if container is not None else pod.app_specs[0]["name"]
    pod.require(failing, init=False)
    apps = [
        pod.status_entry(
            spec,
            pod.terminated_state(spec, exit_code, reason, message)
            if spec["name"] == failing
            else pod.completed_state(spec),
        )
        for spec in pod.app_specs
    ]
    status = _status(pod, "Failed", _all_init_completed(pod), apps, reason=pod_reason, message=pod_message)
    return pod.patch(core_v1, status)


def set_init_container_waiting(
    core_v1: CoreV1Api,
    namespace: str,
    pod: str,
    container: str,
    *,
    reason: str = "ImagePullBackOff",
    message: str | None = None,
) -> V1Pod:
    """Init containers before ``container`` completed, ``container`` waiting with ``reason`` (default
    message as a kubelet words it for image pull errors), everything after it ``PodInitializing``.
    Phase ``Pending``."""
    view = _PodView(core_v1, namespace, pod)
    view.require(container, init=True)
    names = [spec["name"] for spec in view.init_specs]
    position = names.index(container)
    inits: list[JSONDict] = []
    for index, spec in enumerate(view.init_specs):
        if index < position:
            state = view.completed_state(spec)
        elif index == position:
            state = _waiting(reason, message or _default_pull_message(reason, spec.get("image", "")))
        else:
            state = _waiting(_PODS_NOT_INITIALIZED)
        inits.append(view.status_entry(spec, state))
    apps = [view.status_entry(spec, _waiting(_PODS_NOT_INITIALIZED)) for spec in view.app_specs]
    return view.patch(core_v1, _status(view, "Pending", inits, apps))


def set_container_waiting(
    core_v1: CoreV1Api,
    namespace: str,
    pod: str,
    container: str,
    *,
    reason: str = "ImagePullBackOff",
    message: str | None = None,
    restart_count: int = 0,
) -> V1Pod:
    """Init containers completed; app ``container`` waiting with ``reason``; other app containers keep
    their state (``ContainerCreating`` if none yet). With ``restart_count`` > 0 the container shows a
    previous failed run in ``lastState`` (as for ``CrashLoopBackOff``). Phase ``Running`` once any
    container runs or has run, else ``Pending``."""
    view = _PodView(core_v1, namespace, pod)
    view.require(container, init=False)
    apps: list[JSONDict] = []
    for spec in view.app_specs:
        if spec["name"] == container:
            last_state = (
                _terminated(
                    1, "Error", None, _container_id(view.uid, container, restart_count - 1), view.start_time
                )
                if restart_count > 0
                else {}
            )
            state = _waiting(reason, message or _default_pull_message(reason, spec.get("image", "")))
            apps.append(view.status_entry(spec, state, restart_count=restart_count, last_state=last_state))
        else:
            apps.append(
                view.status_entry(spec, view.state_once_initialized(spec["name"], _waiting(_CREATING)))
            )
    started = any(_state_kind(s["state"]) != "waiting" or s["restartCount"] > 0 for s in apps)
    return view.patch(
        core_v1, _status(view, "Running" if started else "Pending", _all_init_completed(view), apps)
    )


def set_init_container_terminated(
    core_v1: CoreV1Api,
    namespace: str,
    pod: str,
    container: str,
    exit_code: int,
    *,
    reason: str | None = None,
    message: str | None = None,
) -> V1Pod:
    """Init ``container`` terminated with ``exit_code`` (reason defaults to ``Completed``/``Error``).

    On success the next init container runs (or, after the last one, the app containers are
    ``ContainerCreating``) and the phase stays ``Pending``. On failure the rest wait in
    ``PodInitializing``; with ``restartPolicy: Never`` the kubelet gives up and the phase is ``Failed``.
    """
    view = _PodView(core_v1, namespace, pod)
    view.require(container, init=True)
    names = [spec["name"] for spec in view.init_specs]
    position = names.index(container)
    succeeded = exit_code == 0
    now = _timestamp()
    inits: list[JSONDict] = []
    for index, spec in enumerate(view.init_specs):
        if index < position:
            state = view.completed_state(spec)
        elif index == position:
            state = view.terminated_state(spec, exit_code, reason, message)
        elif index == position + 1 and succeeded:
            state = _running(now)
        else:
            state = _waiting(_PODS_NOT_INITIALIZED)
        inits.append(view.status_entry(spec, state))
    last_init_done = succeeded and position == len(names) - 1
    app_waiting = _CREATING if last_init_done else _PODS_NOT_INITIALIZED
    apps = [view.status_entry(spec, _waiting(app_waiting)) for spec in view.app_specs]
    phase = "Failed" if not succeeded and view.restart_policy == "Never" else "Pending"
    return view.patch(core_v1, _status(view, phase, inits, apps))


def set_container_terminated(
    core_v1: CoreV1Api,
    namespace: str,
    pod: str,
    container: str,
    exit_code: int,
    *,
    reason: str | None = None,
    message: str | None = None,
) -> V1Pod:
    """App ``container`` terminated with ``exit_code``; other app containers keep their state (running
    if they had none). When every app container has terminated the phase is ``Succeeded`` (all exit 0)
    or ``Failed`` (``restartPolicy: Never``), otherwise ``Running``."""
    view = _PodView(core_v1, namespace, pod)
    view.require(container, init=False)
    now = _timestamp()
    apps: list[JSONDict] = []
    for spec in view.app_specs:
        if spec["name"] == container:
            state = view.terminated_state(spec, exit_code, reason, message)
        else:
            state = view.state_once_initialized(spec["name"], _running(now))
        apps.append(view.status_entry(spec, state))
    terminated = [s["state"]["terminated"] for s in apps if _state_kind(s["state"]) == "terminated"]
    phase = "Running"
    if len(terminated) == len(apps):
        if all(t["exitCode"] == 0 for t in terminated):
            phase = "Succeeded"
        elif view.restart_policy == "Never":
            phase = "Failed"
    return view.patch(core_v1, _status(view, phase, _all_init_completed(view), apps))
