"""Job watcher: Buildkite jobs whose Kubernetes Job never gets a pod are failed with the reason (§4.9).

If Kubernetes cannot create a Job's pod (a quota, an admission webhook, a missing service account),
no agent will ever run the Buildkite job, which would otherwise stay scheduled forever. The reason is
only in the Job's events, so this watcher fails the Buildkite job itself with the events as a table:

* a Job that **finishes** without ever having had a pod is failed at once
  (``The Kubernetes job ended without starting a pod.``);
* a Job that is still unfinished and has had no pod for ``empty-job-grace-period`` is failed
  (``The Kubernetes job spent <duration> without starting a pod.``) and given
  ``activeDeadlineSeconds: 1`` so Kubernetes ends it and its TTL later removes it. It is not deleted
  directly: that would let the deduper re-create it while the job may still show as scheduled.

Unlike upstream v0.20.2, Jobs being watched are keyed by job UUID (its bug 3: keyed by object, an old
snapshot without pods could outlive the pod's arrival and kill a running job), and before acting the
Job is read back from the API server, as later releases do, so a stale cache entry never kills a Job
that has a pod by now or has been replaced.

The grace period runs from the Job's ``status.startTime``. Kubernetes v1.20's job controller never
writes ``startTime`` while every pod creation fails (it only saves status when a pod count changes),
which is exactly the case this watcher exists for, so a Job without ``startTime`` is timed from its
``creationTimestamp`` unless it is suspended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.controller.failer import FailBackend, FailOutcome, fail_safely, one_line
from engine.controller.metrics import ControllerMetrics, count_informer_event
from engine.controller.watchers.background import BackgroundTasks
from engine.controller.watchers.collaborators import (
    CANCELLED,
    WAITING_FOR_AGENT,
    BuildkiteJobs,
    Clock,
    JobsAPI,
    JobWatcherConfig,
    utc_now,
)
from engine.kube.errors import KubeError
from engine.kube.human_duration import human_duration
from engine.kube.informer import WatchEvent
from engine.kube.labels import job_is_finished, job_uuid_of, tags_from_labels
from engine.kube.objects import (
    describe,
    field,
    int_at,
    labels_of,
    list_at,
    name_of,
    namespace_of,
    timestamp_at,
    uid_of,
)
from engine.model.jsonvalue import JSONObject

STALLED_JOB_DEADLINE_SECONDS = 1
CHECK_INTERVAL_SECONDS = 1.0
ENDED_WITHOUT_POD = "The Kubernetes job ended without starting a pod.\n"
FAILED_BEFORE_ACQUIRE = (
    "The Kubernetes pod failed before the buildkite-agent acquired this Buildkite job. The pod was likely "
    "killed by Kubernetes (eviction, OOM, node failure) or terminated externally before the agent could "
    "start.\n"
)
"""Upstream's words (v0.43.1) for a Job whose pod failed while its Buildkite job was still reserved."""

_log = logging.getLogger(__name__)


def pod_count(job: Mapping[str, Any]) -> int:
    """Every pod the Job has had: active, failed, succeeded, and terminated ones not yet counted."""
    uncounted = field(job, "status", "uncountedTerminatedPods")
    extra = 0
    if isinstance(uncounted, Mapping):
        extra = len(list_at(uncounted, "succeeded")) + len(list_at(uncounted, "failed"))
    return (
        int_at(job, "status", "active")
        + int_at(job, "status", "failed")
        + int_at(job, "status", "succeeded")
        + extra
    )


def stall_clock_start(job: Mapping[str, Any]) -> datetime | None:
    """When the Job's wait for a pod began: ``status.startTime``, else (v1.20, see the module
    docstring) ``metadata.creationTimestamp``; ``None`` for a suspended Job, which waits on purpose."""
    started = timestamp_at(job, "status", "startTime")
    if started is not None:
        return started
    if field(job, "spec", "suspend") is True:
        return None
    return timestamp_at(job, "metadata", "creationTimestamp")


class JobWatcher:
    """Job informer handler plus a once-a-second scan for Jobs stalled without a pod."""

    def __init__(
        self,
        kube: JobsAPI,
        failer: FailBackend,
        config: JobWatcherConfig,
        metrics: ControllerMetrics,
        clock: Clock = utc_now,
        *,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        reserved_jobs: BuildkiteJobs | None = None,
    ) -> None:
        """``reserved_jobs`` (the Stacks API mode): a Job that failed with a pod is looked up, and if its
        Buildkite job is still reserved (no agent ever acquired it), that job is failed with the Job's
        events; otherwise it would wait for the reservation to expire and the Job to be deleted. And an
        unfinished Job that has never had a pod (the pod watcher cannot see it) is deleted when its
        Buildkite job is cancelled, asked every ``job-cancel-checker-poll-interval``."""
        self._kube = kube
        self._reserved_jobs = reserved_jobs
        self._cancel_interval = config.job_cancel_checker_poll_interval
        self._podless: dict[str, JSONObject] = {}
        """Unfinished Jobs without a pod, by UUID (with ``reserved_jobs``): asked about cancellation."""
        self._cancel_check: asyncio.Task[None] | None = None
        self._failer = failer
        self._grace_seconds = config.empty_job_grace_period
        self._metrics = metrics.job_watcher
        self._clock = clock
        self._check_interval = check_interval
        self._stalling: dict[str, JSONObject] = {}
        self._ignored: set[str] = set()
        self._tasks = BackgroundTasks("job watcher")

    # ---- informer events --------------------------------------------------------------------------

    def on_event(self, event: WatchEvent) -> None:
        job = event.obj
        count_informer_event(self._metrics, event.kind)
        uuid = job_uuid_of(job)
        if uuid is None:
            _log.error("Job %s has no valid buildkite.com/job-uuid label; ignoring it", describe(job))
            return
        if event.kind == "deleted":
            self._stalling.pop(uuid, None)
            self._podless.pop(uuid, None)
            self._ignored.discard(uuid)
        elif uuid not in self._ignored:
            self._check(uuid, job)
        self._update_gauges()

    def _check(self, uuid: str, job: JSONObject) -> None:
        if self._reserved_jobs is not None:
            if job_is_finished(job) or pod_count(job) > 0:
                self._podless.pop(uuid, None)
            else:
                self._podless[uuid] = job
        if job_is_finished(job):
            self._stalling.pop(uuid, None)
            if int_at(job, "status", "succeeded") > 0:
                return
            if int_at(job, "status", "failed") > 0:
                if self._reserved_jobs is not None:
                    self._ignored.add(uuid)
                    self._tasks.start(self._fail_if_never_acquired(uuid, job), name=f"check {uuid}")
                return
            self._metrics.jobs_finished_without_pod.inc()
            self._ignored.add(uuid)
            _log.info("Job %s ended without starting a pod; failing Buildkite job %s", describe(job), uuid)
            self._tasks.start(self._fail(uuid, job, ENDED_WITHOUT_POD), name=f"fail {uuid}")
        elif pod_count(job) > 0:
            self._stalling.pop(uuid, None)
        elif stall_clock_start(job) is not None:
            self._stalling[uuid] = job

    # ---- the stalled-Job scan ---------------------------------------------------------------------

    async def run(self) -> None:
        """Scan for stalled Jobs every second until cancelled; then stop work still in progress."""
        loop = asyncio.get_running_loop()
        cancel_check_due = loop.time() + self._cancel_interval
        try:
            while True:
                await asyncio.sleep(self._check_interval)
                try:
                    self.check_stalled()
                    if loop.time() >= cancel_check_due:
                        cancel_check_due = loop.time() + self._cancel_interval
                        self.check_cancelled()
                except Exception:  # a bug in one scan must not stop the next ones
                    _log.exception("scan failed")
        finally:
            await self._tasks.cancel_all()

    def check_cancelled(self) -> None:
        """Start asking about the Buildkite jobs of podless Jobs (unless a check is still running)."""
        if self._reserved_jobs is None or not self._podless:
            return
        if self._cancel_check is None or self._cancel_check.done():
            self._cancel_check = self._tasks.start(self._delete_cancelled(), name="cancelled podless Jobs")

    async def _delete_cancelled(self) -> None:
        assert self._reserved_jobs is not None
        uuids = list(self._podless)
        try:
            states = await self._reserved_jobs.job_states(uuids)
        except Exception as error:
            _log.debug("could not read the states of podless Jobs' jobs (%s); asking again later", error)
            return
        for uuid in uuids:
            job = self._podless.get(uuid)
            state = states.get(uuid)
            if job is None or state is None or state in WAITING_FOR_AGENT:
                continue
            del self._podless[uuid]
            if state not in CANCELLED:
                continue  # an agent has it, or it is over: nothing to clean up here
            self._ignored.add(uuid)
            self._stalling.pop(uuid, None)
            _log.info(
                "Buildkite job %s was cancelled before Job %s had a pod; deleting it", uuid, describe(job)
            )
            try:
                await self._kube.delete_job(name_of(job), namespace_of(job) or None, uid=uid_of(job) or None)
            except KubeError as error:
                self._ignored.discard(uuid)
                self._podless.setdefault(uuid, job)
                self._metrics.cleanup_errors.labels(reason=error.reason or "Unknown").inc()
                _log.error("could not delete Job %s of a cancelled job: %s", describe(job), error)
            else:
                self._metrics.jobs_deleted_cancelled.inc()

    def check_stalled(self) -> None:
        """One scan: start cleaning up every Job that has been without a pod for the grace period."""
        now = self._clock()
        for uuid, job in list(self._stalling.items()):
            started = stall_clock_start(job)
            if started is None or (now - started).total_seconds() < self._grace_seconds:
                continue
            del self._stalling[uuid]
            self._ignored.add(uuid)
            self._metrics.jobs_stalled_without_pod.inc()
            self._tasks.start(self._clean_up_stalled(uuid, job, started), name=f"clean up {uuid}")
        self._update_gauges()

    async def _clean_up_stalled(self, uuid: str, job: JSONObject, started: datetime) -> None:
        name, namespace = name_of(job), namespace_of(job) or None
        if not await self._still_stalled(uuid, job):
            self._ignored.discard(uuid)
            self._update_gauges()
            return
        waited = human_duration((self._clock() - started).total_seconds())
        _log.info("Job %s spent %s without a pod; failing Buildkite job %s", describe(job), waited, uuid)
        await self._fail(uuid, job, f"The Kubernetes job spent {waited} without starting a pod.\n")
        try:
            await self._kube.set_job_active_deadline(name, STALLED_JOB_DEADLINE_SECONDS, namespace)
        except KubeError as error:
            self._metrics.cleanup_errors.labels(reason=error.reason or "Unknown").inc()
            _log.error("could not set activeDeadlineSeconds on stalled Job %s: %s", describe(job), error)
        else:
            self._metrics.cleanups.inc()

    async def _still_stalled(self, uuid: str, cached: JSONObject) -> bool:
        """Read the Job back: act only if it is the same Job, unfinished and still without pods."""
        try:
            live = await self._kube.get_job(name_of(cached), namespace_of(cached) or None)
        except KubeError as error:
            _log.warning(
                "could not re-read stalled Job %s (%s); acting on the cached copy", describe(cached), error
            )
            return True
        if live is None or uid_of(live) != uid_of(cached):
            _log.info("stalled Job %s is gone or was replaced; leaving it", describe(cached))
            return False
        if pod_count(live) > 0 or job_is_finished(live):
            _log.info("Job %s has a pod or has finished after all; leaving it", describe(cached))
            return False
        return True

    async def _fail_if_never_acquired(self, uuid: str, job: JSONObject) -> None:
        assert self._reserved_jobs is not None
        try:
            state = (await self._reserved_jobs.job_states([uuid])).get(uuid)
        except Exception as error:
            _log.warning("could not read the state of Buildkite job %s: %s", uuid, one_line(error))
            self._ignored.discard(uuid)  # the next update of the Job asks again
            return
        if state != "RESERVED":
            return  # an agent has (or had) it: the agent reports the outcome
        self._metrics.jobs_failed_before_agent_acquire.inc()
        _log.info("Job %s failed before an agent acquired Buildkite job %s; failing it", describe(job), uuid)
        await self._fail(uuid, job, FAILED_BEFORE_ACQUIRE)

    # ---- failing the Buildkite job -----------------------------------------------------------------

    async def _fail(self, uuid: str, job: JSONObject, headline: str) -> FailOutcome:
        namespace = namespace_of(job) or None
        events = await self._kube.events_table("Job", name_of(job), namespace)
        tags = tags_from_labels(labels_of(job))
        outcome = await fail_safely(self._failer, uuid, tags, headline + events, namespace)
        if outcome == "failed":
            self._metrics.jobs_failed_on_buildkite.inc()
        else:
            self._metrics.job_fail_on_buildkite_errors.inc()
            _log.warning("Buildkite job %s of Job %s was not failed (%s)", uuid, describe(job), outcome)
        return outcome

    def _update_gauges(self) -> None:
        self._metrics.num_stalling_jobs.set(len(self._stalling))
        self._metrics.num_ignored_jobs.set(len(self._ignored))

    async def idle(self) -> None:
        """Return once every clean-up started so far has finished (for tests and orderly shutdown)."""
        await self._tasks.wait_idle()

    @property
    def podless(self) -> list[str]:
        """UUIDs of the unfinished Jobs without a pod being asked about (for tests and diagnostics)."""
        return list(self._podless)
