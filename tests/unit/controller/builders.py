"""Small builders for controller unit tests: Kubernetes Job objects, informer events, pending jobs."""

from __future__ import annotations

import asyncio
import uuid as uuid_module
from typing import Literal

from engine.controller.metrics import ControllerMetrics
from engine.controller.pipeline import PendingJob
from engine.kube.informer import WatchEvent
from engine.kube.labels import CONTROLLER_ID_LABEL, JOB_UUID_LABEL
from engine.model.jsonvalue import JSONObject


def new_uuid() -> str:
    return str(uuid_module.uuid4())


def job_object(uuid: str | None, *, finished: str | None = None) -> JSONObject:
    """A batch/v1 Job as the informer delivers it; ``finished`` is ``"Complete"`` or ``"Failed"``."""
    labels = {CONTROLLER_ID_LABEL: "test"}
    if uuid is not None:
        labels[JOB_UUID_LABEL] = uuid
    status: JSONObject = {}
    if finished is not None:
        status["conditions"] = [{"type": finished, "status": "True"}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"buildkite-{uuid}", "namespace": "ns", "labels": labels},
        "status": status,
    }


def event(
    kind: Literal["added", "modified", "deleted"],
    uuid: str | None,
    *,
    finished: str | None = None,
    initial: bool = False,
    old: JSONObject | None = None,
) -> WatchEvent:
    return WatchEvent(kind=kind, obj=job_object(uuid, finished=finished), old=old, initial=initial)


def pending(uuid: str | None = None, *, stale_in: float = 10.0, rules: tuple[str, ...] = ()) -> PendingJob:
    """A job as a poll handed it on, going stale ``stale_in`` seconds from now (needs a running loop)."""
    now = asyncio.get_running_loop().time()
    job_uuid = uuid or new_uuid()
    node: JSONObject = {"uuid": job_uuid, "agentQueryRules": list(rules), "command": "true", "env": []}
    return PendingJob(
        uuid=job_uuid, node=node, agent_query_rules=rules, queried_at=now, stale_at=now + stale_in
    )


def sample(metrics: ControllerMetrics, name: str, **labels: str) -> float:
    """The current value of one metric sample (0 when it was never touched)."""
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value
