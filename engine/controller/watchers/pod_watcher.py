"""Pod watcher: Buildkite jobs whose pod cannot run are ended with the reason (spec §4.10).

Before the agent container runs, only the controller can tell Buildkite what went wrong. For every
pod of the controller's Jobs this watcher checks, in order:

1. **Failed init containers** (exit code ≠ 0): fail the Buildkite job with a table of them. The pod
   is failing already, so it is not evicted.
2. **Images that cannot be pulled**: ``InvalidImageName`` at once; ``ImagePullBackOff`` (and
   ``ErrImageNeverPull``) once the pod has been started for ``image-pull-backoff-grace-period``. Then,
   by the Buildkite job's state: ``SCHEDULED`` (or ``RESERVED`` by this stack) → fail it with the list
   of images and evict the pod (if that is refused, stop it instead); ``ACCEPTED``/``ASSIGNED``/
   ``RUNNING`` (an agent has it) → stop it: cancel it through GraphQL, or, with the Stacks API, which
   cannot cancel, tell the job once (a notification) that it will fail when the agent times out;
   already over → leave it.
3. **Cancelled while pending**: while the pod is ``Pending``, ask Buildkite every
   ``job-cancel-checker-poll-interval`` whether the job was cancelled; if so, evict the pod so it
   stops holding resources. Stop asking once the job is anything but scheduled or reserved. All
   pending pods are asked about together, once per interval (the Stacks API's ``get-states`` takes
   1000 jobs a request; GraphQL asks job by job).
4. **Pending too long** (from later releases): a pod still ``Pending`` ``pod-pending-timeout`` after
   its creation, with no image problem (those are step 2's), fails the job with the pod's conditions
   and events, and the pod is deleted.

Checks 2 and 4 also run on a one-second scan, so a pod whose status stops changing is still acted on
when its time comes. Once a job has been dealt with, its UUID is ignored until its pod is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.controller.failer import FailBackend, FailOutcome, fail_safely, one_line
from engine.controller.metrics import ControllerMetrics, count_informer_event
from engine.controller.watchers.background import BackgroundTasks
from engine.controller.watchers.collaborators import (
    AGENT_HAS_JOB,
    CANCELLED,
    JOB_IS_OVER,
    WAITING_FOR_AGENT,
    BuildkiteJobs,
    Clock,
    PodsAPI,
    PodWatcherConfig,
    utc_now,
)
from engine.controller.watchers.completions import job_name_of
from engine.controller.watchers.pod_checks import (
    ImageFailure,
    failed_init_containers,
    image_failure_message,
    image_failure_summary,
    image_failures,
    init_failure_message,
    pending_timeout_message,
)
from engine.kube.errors import KubeError
from engine.kube.informer import WatchEvent
from engine.kube.labels import job_uuid_of, tags_from_labels
from engine.kube.objects import describe, labels_of, name_of, namespace_of, string_at, timestamp_at
from engine.model.jsonvalue import JSONObject

CHECK_INTERVAL_SECONDS = 1.0
EVICTED_FOR_IMAGES = "image_pull_failure"
EVICTED_FOR_CANCEL = "bk_job_cancelled"
DELETED_FOR_PENDING = "pending_timeout"

_log = logging.getLogger(__name__)


class PodWatcher:
    """Pod informer handler plus a once-a-second scan and a cancel checker for the pending pods."""

    def __init__(
        self,
        kube: PodsAPI,
        failer: FailBackend,
        buildkite: BuildkiteJobs,
        config: PodWatcherConfig,
        metrics: ControllerMetrics,
        clock: Clock = utc_now,
        *,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        delete_cancelled_jobs: bool = False,
    ) -> None:
        """``delete_cancelled_jobs``: a pending pod of a cancelled job is cleaned up by deleting its
        Kubernetes Job (and with it the pod, for good) instead of evicting the pod, which the Job would
        replace (the Stacks API mode; needs ``delete`` on Jobs)."""
        self._kube = kube
        self._failer = failer
        self._buildkite = buildkite
        self._image_grace = config.image_pull_backoff_grace_period
        self._cancel_interval = config.job_cancel_checker_poll_interval
        self._pending_timeout = config.pod_pending_timeout
        self._metrics = metrics.pod_watcher
        self._clock = clock
        self._check_interval = check_interval
        self._delete_cancelled_jobs = delete_cancelled_jobs
        self._watched: dict[str, JSONObject] = {}
        """Latest copy of each Pending or Running pod, for the scan."""
        self._ignored: set[str] = set()
        self._busy: set[str] = set()
        """UUIDs with an action (fail, cancel, evict, delete) in progress."""
        self._init_failure_handled: set[str] = set()
        self._cancel_checkers: dict[str, JSONObject] = {}
        """Pending pods whose jobs the cancel checker asks about, by UUID."""
        self._cancel_task: asyncio.Task[Any] | None = None
        self._tasks = BackgroundTasks("pod watcher")

    # ---- informer events --------------------------------------------------------------------------

    def on_event(self, event: WatchEvent) -> None:
        pod = event.obj
        count_informer_event(self._metrics, event.kind)
        uuid = job_uuid_of(pod)
        if uuid is None:
            _log.error("pod %s has no valid buildkite.com/job-uuid label; ignoring it", describe(pod))
            return
        if event.kind == "deleted":
            self._forget(uuid)
        else:
            self._check(uuid, pod)
        self._update_gauges()

    def _forget(self, uuid: str) -> None:
        self._stop_cancel_checker(uuid)
        self._watched.pop(uuid, None)
        self._ignored.discard(uuid)
        self._init_failure_handled.discard(uuid)

    def _check(self, uuid: str, pod: JSONObject) -> None:
        phase = string_at(pod, "status", "phase")
        if phase != "Pending":
            self._stop_cancel_checker(uuid)
        if phase not in ("Pending", "Running"):
            self._watched.pop(uuid, None)
        if uuid in self._ignored:
            return
        self._check_init_containers(uuid, pod)
        if phase in ("Pending", "Running"):
            self._watched[uuid] = pod
            self._check_images(uuid, pod)
        if phase == "Pending" and uuid not in self._ignored:
            self._start_cancel_checker(uuid, pod)

    # ---- the scan ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Scan watched pods every second until cancelled; then stop everything still running."""
        try:
            while True:
                await asyncio.sleep(self._check_interval)
                try:
                    self.check_pods()
                except Exception:  # a bug in one scan must not stop the next ones
                    _log.exception("scan failed")
        finally:
            self._cancel_checkers.clear()
            await self._tasks.cancel_all()

    def check_pods(self) -> None:
        """One scan: image failures whose grace period has passed, and pods pending too long."""
        for uuid, pod in list(self._watched.items()):
            if uuid in self._ignored or uuid in self._busy:
                continue
            self._check_images(uuid, pod)
            if string_at(pod, "status", "phase") == "Pending":
                self._check_pending_timeout(uuid, pod)
        self._update_gauges()

    # ---- 1. init containers -----------------------------------------------------------------------

    def _check_init_containers(self, uuid: str, pod: JSONObject) -> None:
        failed = failed_init_containers(pod)
        if not failed or uuid in self._init_failure_handled or uuid in self._busy:
            return
        self._init_failure_handled.add(uuid)
        self._busy.add(uuid)
        _log.info("init containers of pod %s failed; failing Buildkite job %s", describe(pod), uuid)
        self._tasks.start(self._fail_for_init_containers(uuid, pod, init_failure_message(failed)), name=uuid)

    async def _fail_for_init_containers(self, uuid: str, pod: JSONObject, message: str) -> None:
        try:
            outcome = await self._fail(uuid, pod, message)
            if outcome == "error":
                self._init_failure_handled.discard(uuid)  # worth another try on the next update
        finally:
            self._busy.discard(uuid)

    # ---- 2. images --------------------------------------------------------------------------------

    def _check_images(self, uuid: str, pod: JSONObject) -> None:
        if uuid in self._busy or uuid in self._ignored:
            return
        failures = image_failures(pod)
        if not failures:
            return
        if not any(failure.immediate for failure in failures):
            started = timestamp_at(pod, "status", "startTime")
            if started is None or self._age(started) < self._image_grace:
                return
        self._busy.add(uuid)
        self._watched.pop(uuid, None)
        self._tasks.start(self._act_on_image_failure(uuid, pod, failures), name=uuid)

    async def _act_on_image_failure(
        self, uuid: str, pod: JSONObject, failures: Sequence[ImageFailure]
    ) -> None:
        retry = False
        try:
            retry = await self._image_failure(uuid, pod, failures)
        finally:
            self._busy.discard(uuid)
            if retry and uuid not in self._ignored:
                self._watched.setdefault(uuid, pod)

    async def _image_failure(self, uuid: str, pod: JSONObject, failures: Sequence[ImageFailure]) -> bool:
        """Fail, stop or leave the job by its Buildkite state; True when worth retrying later."""
        try:
            state = (await self._buildkite.job_states([uuid])).get(uuid)
        except Exception as error:
            _log.warning("could not read the state of Buildkite job %s: %s", uuid, one_line(error))
            return True
        if state in WAITING_FOR_AGENT:
            _log.info("pod %s cannot pull its images; failing Buildkite job %s", describe(pod), uuid)
            outcome = await self._fail(uuid, pod, image_failure_message(failures))
            if outcome == "failed":
                await self._evict(pod, EVICTED_FOR_IMAGES)
                self._ignore(uuid)
                return False
            if outcome == "error":
                return True
            return await self._cancel(uuid, pod, failures)  # refused: someone has it by now
        if state in AGENT_HAS_JOB:
            return await self._cancel(uuid, pod, failures)
        if state in JOB_IS_OVER:
            self._ignore(uuid)
            return False
        _log.warning(
            "pod %s has image failures but Buildkite job %s is %s; leaving it", describe(pod), uuid, state
        )
        return False

    async def _cancel(self, uuid: str, pod: JSONObject, failures: Sequence[ImageFailure]) -> bool:
        """Stop the job (cancel it, or tell it why it will fail); True when worth retrying later."""
        try:
            outcome = await self._buildkite.stop_job(uuid, name_of(pod), image_failure_summary(failures))
        except Exception as error:
            self._metrics.job_cancel_on_buildkite_errors.inc()
            _log.error("could not cancel Buildkite job %s: %s", uuid, one_line(error))
            return True
        if outcome == "cancelled":
            self._metrics.jobs_cancelled_on_buildkite.inc()
            _log.info("cancelled Buildkite job %s (pod %s cannot pull its images)", uuid, describe(pod))
        else:
            _log.info("Buildkite job %s was told pod %s cannot pull its images", uuid, describe(pod))
        self._ignore(uuid)
        return False

    # ---- 3. cancelled while pending ---------------------------------------------------------------

    def _start_cancel_checker(self, uuid: str, pod: JSONObject) -> None:
        self._cancel_checkers[uuid] = pod
        if self._cancel_task is None or self._cancel_task.done():
            self._cancel_task = self._tasks.start(self._check_cancelled(), name="cancel checker")

    def _stop_cancel_checker(self, uuid: str) -> None:
        self._cancel_checkers.pop(uuid, None)

    async def _check_cancelled(self) -> None:
        """Every ``job-cancel-checker-poll-interval``, while any pod is pending: ask about all their
        jobs at once; evict the pods of cancelled jobs; stop asking about jobs an agent has."""
        try:
            while self._cancel_checkers:
                await asyncio.sleep(self._cancel_interval)
                uuids = list(self._cancel_checkers)
                if not uuids:
                    return
                try:
                    states = await self._buildkite.job_states(uuids)
                except Exception as error:
                    _log.debug("cancel checker: states unknown (%s); asking again later", one_line(error))
                    continue
                for uuid in uuids:
                    state = states.get(uuid)
                    pod = self._cancel_checkers.get(uuid)
                    if pod is None or state is None or state in WAITING_FOR_AGENT:
                        continue
                    del self._cancel_checkers[uuid]
                    if state in CANCELLED:
                        await self._clean_up_cancelled(uuid, self._watched.get(uuid, pod))
                self._update_gauges()
        finally:
            self._update_gauges()

    async def _clean_up_cancelled(self, uuid: str, pod: JSONObject) -> None:
        job_name = job_name_of(pod)
        if not (self._delete_cancelled_jobs and job_name):
            _log.info(
                "Buildkite job %s was cancelled while pod %s was pending; evicting it", uuid, describe(pod)
            )
            await self._evict(pod, EVICTED_FOR_CANCEL)
            return
        _log.info(
            "Buildkite job %s was cancelled while pod %s was pending; deleting its Job %s",
            uuid,
            describe(pod),
            job_name,
        )
        try:
            await self._kube.delete_job(job_name, namespace_of(pod) or None)
        except KubeError as error:
            self._metrics.job_deletion_errors.labels(
                delete_reason=EVICTED_FOR_CANCEL, error_reason=error.reason or "Unknown"
            ).inc()
            _log.error("could not delete Job %s of a cancelled job: %s", job_name, error)
            self._cancel_checkers.setdefault(uuid, pod)  # ask again next time
        else:
            self._metrics.jobs_deleted.labels(delete_reason=EVICTED_FOR_CANCEL).inc()

    # ---- 4. pending too long ----------------------------------------------------------------------

    def _check_pending_timeout(self, uuid: str, pod: JSONObject) -> None:
        created = timestamp_at(pod, "metadata", "creationTimestamp")
        if created is None or uuid in self._busy:
            return
        pending = self._age(created)
        if pending < self._pending_timeout or image_failures(pod):
            return
        self._busy.add(uuid)
        self._watched.pop(uuid, None)
        self._tasks.start(self._give_up_pending(uuid, pod, pending), name=uuid)

    async def _give_up_pending(self, uuid: str, pod: JSONObject, pending: float) -> None:
        retry = False
        try:
            name, namespace = name_of(pod), namespace_of(pod) or None
            _log.info("pod %s has been Pending too long; failing Buildkite job %s", describe(pod), uuid)
            events = await self._kube.events_table("Pod", name, namespace)
            outcome = await self._fail(uuid, pod, pending_timeout_message(pending, pod) + "\n" + events)
            if outcome == "error":
                retry = True
                return
            try:
                await self._kube.delete_pod(name, namespace, grace_period_seconds=0)
            except KubeError as error:
                self._metrics.pod_eviction_errors.labels(
                    eviction_reason=DELETED_FOR_PENDING, error_reason=error.reason or "Unknown"
                ).inc()
                _log.error("could not delete pending pod %s: %s", describe(pod), error)
                retry = True
                return
            self._metrics.pods_timed_out_pending.inc()
            self._ignore(uuid)
        finally:
            self._busy.discard(uuid)
            if retry and uuid not in self._ignored:
                self._watched.setdefault(uuid, pod)

    # ---- shared -----------------------------------------------------------------------------------

    async def _fail(self, uuid: str, pod: JSONObject, message: str) -> FailOutcome:
        tags = tags_from_labels(labels_of(pod))
        outcome = await fail_safely(self._failer, uuid, tags, message, namespace_of(pod) or None)
        if outcome == "failed":
            self._metrics.jobs_failed_on_buildkite.inc()
        else:
            self._metrics.job_fail_on_buildkite_errors.inc()
        return outcome

    async def _evict(self, pod: JSONObject, reason: str) -> None:
        try:
            await self._kube.evict_pod(pod)
        except KubeError as error:
            self._metrics.pod_eviction_errors.labels(
                eviction_reason=reason, error_reason=error.reason or "Unknown"
            ).inc()
            _log.error("could not evict pod %s: %s", describe(pod), error)
        else:
            self._metrics.pods_evicted.labels(eviction_reason=reason).inc()

    def _ignore(self, uuid: str) -> None:
        self._ignored.add(uuid)
        self._watched.pop(uuid, None)
        self._stop_cancel_checker(uuid)
        self._update_gauges()

    def _age(self, since: datetime) -> float:
        return (self._clock() - since).total_seconds()

    def _update_gauges(self) -> None:
        self._metrics.num_job_cancel_checkers.set(len(self._cancel_checkers))
        self._metrics.num_ignored_jobs.set(len(self._ignored))

    async def idle(self) -> None:
        """Return once no action is in progress (the cancel checker excluded: it runs while pending)."""
        while True:
            pending = [task for task in self._tasks.snapshot() if task is not self._cancel_task]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)
