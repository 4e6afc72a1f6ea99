"""Completions watcher: stop a pod's remaining containers once its agent has finished (spec §4.8).

The agent container runs the Buildkite job; sidecars (a database, a cache) run until they are told to
stop, and a Kubernetes Job is only over when all its containers are. So when the ``agent`` container
of a pod has terminated, this sets ``activeDeadlineSeconds: 60`` on the pod's Job: the deadline counts
from the Job's start, so for any job older than a minute Kubernetes stops the pod at once (the Job
then shows ``DeadlineExceeded``; the Buildkite result, already reported by the agent, is unaffected).

Pods whose phase is already final are skipped, as later upstream releases do: every container has
stopped, so there is nothing left to stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from engine.controller.metrics import ControllerMetrics
from engine.controller.watchers.background import BackgroundTasks
from engine.controller.watchers.collaborators import JobDeadlines
from engine.kube.errors import KubeError
from engine.kube.informer import WatchEvent
from engine.kube.objects import describe, labels_of, list_at, namespace_of, string_at

AGENT_CONTAINER = "agent"
COMPLETION_DEADLINE_SECONDS = 60
_FINAL_PHASES = frozenset({"Succeeded", "Failed", "Unknown"})
_JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")

_log = logging.getLogger(__name__)


def agent_terminated(pod: Mapping[str, Any]) -> bool:
    """True when the pod reports its ``agent`` container as terminated."""
    return any(
        isinstance(status, Mapping)
        and status.get("name") == AGENT_CONTAINER
        and isinstance(status.get("state"), Mapping)
        and "terminated" in status["state"]
        for status in list_at(pod, "status", "containerStatuses")
    )


def job_name_of(pod: Mapping[str, Any]) -> str:
    """The name of the Job that owns the pod: from the job controller's labels, else the owner
    reference; ``""`` for a pod no Job owns."""
    labels = labels_of(pod)
    for label in _JOB_NAME_LABELS:
        if labels.get(label):
            return labels[label]
    for owner in list_at(pod, "metadata", "ownerReferences"):
        if isinstance(owner, Mapping) and owner.get("kind") == "Job" and owner.get("controller"):
            return string_at(owner, "name")
    return ""


class CompletionsWatcher:
    """Pod informer handler: give the Job a deadline once its agent container has terminated."""

    def __init__(self, kube: JobDeadlines, metrics: ControllerMetrics) -> None:
        self._kube = kube
        self._metrics = metrics.completions
        self._tasks = BackgroundTasks("completions watcher")
        self._in_progress: set[tuple[str, str]] = set()

    def on_event(self, event: WatchEvent) -> None:
        if event.kind == "added":
            self._metrics.onadd_events.inc()
        elif event.kind == "modified":
            self._metrics.onupdate_events.inc()
            if event.old is not None and agent_terminated(event.old):
                return  # handled when the agent first showed as terminated
        else:
            return
        pod = event.obj
        if not agent_terminated(pod) or string_at(pod, "status", "phase") in _FINAL_PHASES:
            return
        job_name = job_name_of(pod)
        if not job_name:
            _log.warning(
                "pod %s has a terminated agent but no owning Job; nothing to clean up", describe(pod)
            )
            return
        key = (namespace_of(pod), job_name)
        if key in self._in_progress:
            return
        self._in_progress.add(key)
        self._tasks.start(self._set_deadline(*key), name=f"deadline for Job {job_name}")

    async def _set_deadline(self, namespace: str, job_name: str) -> None:
        try:
            await self._kube.set_job_active_deadline(job_name, COMPLETION_DEADLINE_SECONDS, namespace or None)
        except KubeError as error:
            self._metrics.cleanup_errors.labels(reason=error.reason or "Unknown").inc()
            _log.error("could not set activeDeadlineSeconds on Job %s/%s: %s", namespace, job_name, error)
        else:
            self._metrics.cleanups.inc()
            _log.info(
                "agent finished: Job %s/%s gets activeDeadlineSeconds=%d to stop its other containers",
                namespace,
                job_name,
                COMPLETION_DEADLINE_SECONDS,
            )
        finally:
            self._in_progress.discard((namespace, job_name))

    async def run(self) -> None:
        """Nothing runs on a timer here; waits until cancelled, then stops work still in progress."""
        try:
            await asyncio.Event().wait()
        finally:
            await self._tasks.cancel_all()

    async def idle(self) -> None:
        """Return once every deadline being set has been set (for tests and orderly shutdown)."""
        await self._tasks.wait_idle()
