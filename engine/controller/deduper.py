"""The deduper: one Kubernetes Job per Buildkite job, however often a poll returns it (spec §4.4).

A scheduled job stays in Buildkite's listing until an agent in its pod acquires it, so every poll in
between returns it again. The deduper remembers which UUIDs are "in flight" and lets each through
once. A UUID stays marked from the moment it is handed on until its Kubernetes Job is **deleted**
(normally ``job-ttl`` after it finished), not merely finished: re-creating a finished Job would fail
anyway, and a job whose Job was deleted but which Buildkite still lists as scheduled deserves a new
one.

State is rebuilt from the Job informer: every Job it reports marks its UUID (on start-up that is the
initial list, which is how a restarted controller avoids duplicates; marking later adds too covers a
relist after a watch expired and is harmless for Jobs this instance created). Deletion unmarks.

A job waiting in the fail queue (its Buildkite job is about to be failed) is held too, through the
``held`` predicate: it has no Kubernetes Job and never will, but handing it to the scheduler again
would decide and fail it twice. :meth:`Deduper.holds` answers both questions for the monitor, which
leaves such jobs out before they take a worker.

Everything runs on the event loop, so the set needs no lock: ``handle`` marks before its first
``await``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from engine.controller.metrics import DeduperMetrics, count_informer_event
from engine.controller.pipeline import DuplicateJobError, JobHandler, PendingJob
from engine.kube.informer import WatchEvent
from engine.kube.labels import job_uuid_of

_log = logging.getLogger(__name__)


class Deduper:
    """Pass each Buildkite job UUID on at most once while it is in flight."""

    def __init__(
        self,
        next_handler: JobHandler,
        metrics: DeduperMetrics,
        held: Callable[[str, float], bool] | None = None,
    ) -> None:
        """``held(uuid, seen_at)``: True when another component owns the job for now (the fail
        queue's ``holds``), so a poll that saw it at ``seen_at`` must not hand it on."""
        self._next = next_handler
        self._metrics = metrics
        self._held = held
        self._in_flight: set[str] = set()

    @property
    def in_flight(self) -> frozenset[str]:
        """The UUIDs currently considered in flight (a snapshot, for tests and diagnostics)."""
        return frozenset(self._in_flight)

    def holds(self, uuid: str, seen_at: float) -> bool:
        """True when a job a poll saw at ``seen_at`` must not be handed on: in flight, or held."""
        return uuid in self._in_flight or (self._held is not None and self._held(uuid, seen_at))

    async def handle(self, job: PendingJob) -> None:
        """Hand ``job`` on unless it is in flight; keep it marked on success or when the Job exists."""
        self._metrics.job_handler_calls.inc()
        if job.uuid in self._in_flight:
            self._metrics.jobs_already_running.labels(source="handler").inc()
            raise DuplicateJobError(job.uuid, "already in flight")
        if self._held is not None and self._held(job.uuid, job.queried_at):
            self._metrics.jobs_already_running.labels(source="fail_queue").inc()
            raise DuplicateJobError(job.uuid, "its Buildkite job is being failed")
        self._mark(job.uuid, "handler")
        try:
            await self._next(job)
        except DuplicateJobError:
            self._metrics.job_handler_errors.inc()
            raise  # the Kubernetes Job exists: the UUID stays marked until it is deleted
        except BaseException:
            self._metrics.job_handler_errors.inc()
            self._unmark(job.uuid, "handler")
            raise

    def on_job_event(self, event: WatchEvent) -> None:
        """Informer handler for Kubernetes Jobs: a Job's existence marks its UUID, deletion unmarks."""
        uuid = job_uuid_of(event.obj)
        count_informer_event(self._metrics, event.kind)
        if uuid is None:
            return
        if event.kind == "deleted":
            self._unmark(uuid, "informer")
        elif event.kind == "added" and uuid not in self._in_flight:
            self._mark(uuid, "informer")

    def _mark(self, uuid: str, source: str) -> None:
        self._in_flight.add(uuid)
        self._metrics.jobs_marked_running.labels(source=source).inc()
        self._metrics.jobs_running.set(len(self._in_flight))

    def _unmark(self, uuid: str, source: str) -> None:
        if uuid not in self._in_flight:
            self._metrics.jobs_already_not_running.labels(source=source).inc()
            return
        self._in_flight.discard(uuid)
        self._metrics.jobs_unmarked_running.labels(source=source).inc()
        self._metrics.jobs_running.set(len(self._in_flight))
        _log.debug("job %s is no longer in flight (%s)", uuid, source)
