"""Stand-ins for the watchers' collaborators (Kubernetes, the job failer, Buildkite GraphQL, the clock).

They record what they were asked and answer what a test set up; the watcher under test is always the
real one. Builders make Jobs and pods in the API's wire shape with the stack's labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.controller.failer import FailOutcome
from engine.controller.metrics import ControllerMetrics
from engine.controller.watchers.collaborators import StopOutcome
from engine.kube.errors import KubeAPIError, KubeError
from engine.kube.informer import EventKind, WatchEvent
from engine.model.config import ControllerConfig

UUID = "0190f3a4-5b6c-7d8e-9f00-112233445566"
OTHER_UUID = "0190f3a4-5b6c-7d8e-9f00-aabbccddeeff"
NAMESPACE = "builds"
START = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
LABELS = {
    "buildkite.com/job-uuid": UUID,
    "buildkite.com/controller-id": "ctrl",
    "tag.buildkite.com/queue": "kubernetes",
    "tag.buildkite.com/os": "linux",
}
TAGS = ["os=linux", "queue=kubernetes"]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FailCall:
    uuid: str
    tags: list[str]
    message: str
    namespace: str | None


class FakeFailer:
    """Answers ``outcomes`` in turn (the last one repeats)."""

    def __init__(self, *outcomes: FailOutcome) -> None:
        self.outcomes = list(outcomes) or ["failed"]
        self.calls: list[FailCall] = []

    async def fail(
        self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
    ) -> FailOutcome:
        self.calls.append(FailCall(uuid, list(tags), message, namespace))
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]


@dataclass
class FakeKube:
    """The KubeClient calls the watchers make, recorded; ``jobs`` is what ``get_job`` finds."""

    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deadlines: list[tuple[str, int, str | None]] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    deleted: list[tuple[str, str | None, int | None]] = field(default_factory=list)
    deleted_jobs: list[tuple[str, str | None]] = field(default_factory=list)
    events_asked: list[tuple[str, str, str | None]] = field(default_factory=list)
    errors: dict[str, KubeError] = field(default_factory=dict)

    def _maybe_fail(self, call: str) -> None:
        if call in self.errors:
            raise self.errors[call]

    async def set_job_active_deadline(self, name: str, seconds: int, namespace: str | None = None) -> None:
        self._maybe_fail("set_job_active_deadline")
        self.deadlines.append((name, seconds, namespace))

    async def get_job(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self._maybe_fail("get_job")
        return self.jobs.get((namespace or "", name))

    async def events_table(self, kind: str, name: str, namespace: str | None = None) -> str:
        self.events_asked.append((kind, name, namespace))
        return f"<events of {kind} {name}>"

    async def evict_pod(self, pod: Mapping[str, Any]) -> None:
        self._maybe_fail("evict_pod")
        self.evicted.append(pod["metadata"]["name"])

    async def delete_pod(
        self, name: str, namespace: str | None = None, grace_period_seconds: int | None = 0
    ) -> None:
        self._maybe_fail("delete_pod")
        self.deleted.append((name, namespace, grace_period_seconds))

    async def delete_job(self, name: str, namespace: str | None = None, *, uid: str | None = None) -> None:
        self._maybe_fail("delete_job")
        self.deleted_jobs.append((name, namespace))


def not_found(call: str) -> KubeAPIError:
    return KubeAPIError(f"{call}: not found (HTTP 404)", status=404, reason="NotFound")


@dataclass
class FakeBuildkiteJobs:
    """Job states by UUID (a list is answered in turn, the last repeating) and cancels recorded."""

    states: dict[str, list[str | None]] = field(default_factory=dict)
    cancelled: list[tuple[str, str]] = field(default_factory=list)
    state_queries: int = 0
    cancel_error: Exception | None = None
    stop_reasons: list[str] = field(default_factory=list)
    stop_outcome: StopOutcome = "cancelled"

    def set_state(self, uuid: str, *states: str | None) -> None:
        self.states[uuid] = list(states)

    async def job_state(self, uuid: str) -> str | None:
        self.state_queries += 1
        answers = self.states.get(uuid, [None])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def job_states(self, uuids: Sequence[str]) -> dict[str, str]:
        answers = {uuid: await self.job_state(uuid) for uuid in uuids}
        return {uuid: state for uuid, state in answers.items() if state is not None}

    async def stop_job(self, uuid: str, pod_name: str, reason: str) -> StopOutcome:
        if self.cancel_error is not None:
            raise self.cancel_error
        self.cancelled.append((uuid, pod_name))
        self.stop_reasons.append(reason)
        return self.stop_outcome


def config(**keys: Any) -> ControllerConfig:
    """A controller config from file-style keys (``empty-job-grace-period`` ...)."""
    return ControllerConfig.model_validate(keys)


def metric(metrics: ControllerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def event(kind: EventKind, obj: dict[str, Any], old: dict[str, Any] | None = None) -> WatchEvent:
    return WatchEvent(kind=kind, obj=obj, old=old, initial=False)


# ---- objects ----------------------------------------------------------------------------------------------


def job(
    *,
    uuid: str = UUID,
    status: dict[str, Any] | None = None,
    created: datetime = START,
    uid: str = "job-uid-1",
    suspend: bool | None = None,
) -> dict[str, Any]:
    labels = {**LABELS, "buildkite.com/job-uuid": uuid}
    spec: dict[str, Any] = {"backoffLimit": 0}
    if suspend is not None:
        spec["suspend"] = suspend
    return {
        "kind": "Job",
        "metadata": {
            "name": f"buildkite-{uuid}",
            "namespace": NAMESPACE,
            "uid": uid,
            "labels": labels,
            "creationTimestamp": stamp(created),
        },
        "spec": spec,
        "status": status or {},
    }


def container_status(name: str, state: dict[str, Any], image: str = "img:1") -> dict[str, Any]:
    return {"name": name, "image": image, "state": state, "ready": False, "restartCount": 0}


def waiting(reason: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason}}


def terminated(exit_code: int, reason: str = "Error", message: str = "", signal: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message:
        state["message"] = message
    if signal:
        state["signal"] = signal
    return {"terminated": state}


def pod(
    *,
    uuid: str = UUID,
    phase: str = "Pending",
    init_statuses: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    started: datetime | None = START,
    created: datetime = START,
    conditions: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if started is not None:
        status["startTime"] = stamp(started)
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if statuses is not None:
        status["containerStatuses"] = statuses
    if conditions is not None:
        status["conditions"] = conditions
    return {
        "kind": "Pod",
        "metadata": {
            "name": f"buildkite-{uuid}-abcde",
            "namespace": NAMESPACE,
            "uid": "pod-uid-1",
            "creationTimestamp": stamp(created),
            "labels": labels
            if labels is not None
            else {**LABELS, "buildkite.com/job-uuid": uuid, "job-name": f"buildkite-{uuid}"},
        },
        "spec": {"initContainers": [], "containers": []},
        "status": status,
    }
