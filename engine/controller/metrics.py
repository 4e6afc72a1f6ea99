"""Prometheus metrics, named as agent-stack-k8s names them (reference §4.12), plus the engine's own.

Keeping upstream's names means an existing dashboard keeps working after switching stacks. All
metrics live in one registry object so tests can create a fresh one per controller instance instead
of fighting over the process-global default registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_NS = "buildkite"


class InformerEventCounters(Protocol):
    """The add/update/delete event counters every informer-driven component has."""

    onadd_events: Counter
    onupdate_events: Counter
    ondelete_events: Counter


def count_informer_event(counters: InformerEventCounters, kind: str) -> None:
    """Count one informer event (``added``, ``modified`` or ``deleted``) on its counter."""
    if kind == "added":
        counters.onadd_events.inc()
    elif kind == "modified":
        counters.onupdate_events.inc()
    else:
        counters.ondelete_events.inc()


def _counter(registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labelnames=labels, registry=registry)


def _gauge(registry: CollectorRegistry, name: str, doc: str) -> Gauge:
    return Gauge(name, doc, registry=registry)


@dataclass
class MonitorMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_monitor"
        self.up = _gauge(r, f"{p}_monitor_up", "1 while the monitor loop is running")
        self.job_queries = _counter(r, f"{p}_job_queries", "GraphQL scheduled-job queries made")
        self.job_query_errors = _counter(
            r, f"{p}_job_query_errors", "GraphQL scheduled-job queries that failed"
        )
        self.job_query_seconds = Histogram(
            f"{p}_job_query_seconds", "Duration of scheduled-job queries", registry=r
        )
        self.jobs_returned = _counter(r, f"{p}_jobs_returned", "Jobs returned by queries")
        self.jobs_reached_worker = _counter(r, f"{p}_jobs_reached_worker", "Jobs handed to a worker")
        self.jobs_filtered_out = _counter(
            r, f"{p}_jobs_filtered_out", "Jobs whose tags this controller does not serve"
        )
        self.jobs_handled = _counter(r, f"{p}_jobs_handled", "Jobs passed to the deduper")
        self.job_handler_errors = _counter(r, f"{p}_job_handler_errors", "Job handler errors", ("reason",))
        self.stale_jobs = _counter(r, f"{p}_stale_jobs", "Jobs not handled before their data went stale")
        self.jobs_skipped_in_flight = _counter(
            r, f"{p}_jobs_skipped_in_flight", "Listed jobs not queued: in flight or waiting to be failed"
        )
        self.work_queue_length = _gauge(r, f"{p}_work_queue_length", "Jobs waiting for a monitor worker")


@dataclass
class DeduperMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_deduper"
        self.jobs_running = _gauge(r, f"{p}_jobs_running", "Buildkite jobs currently marked in flight")
        self.job_handler_calls = _counter(r, f"{p}_job_handler_calls", "Calls into the deduper")
        self.job_handler_errors = _counter(
            r, f"{p}_job_handler_errors", "Errors returned through the deduper"
        )
        self.onadd_events = _counter(r, f"{p}_onadd_events", "Job informer add events")
        self.onupdate_events = _counter(r, f"{p}_onupdate_event", "Job informer update events")
        self.ondelete_events = _counter(r, f"{p}_ondelete_events", "Job informer delete events")
        self.jobs_marked_running = _counter(
            r, f"{p}_jobs_marked_running", "UUIDs marked in flight", ("source",)
        )
        self.jobs_unmarked_running = _counter(r, f"{p}_jobs_unmarked_running", "UUIDs unmarked", ("source",))
        self.jobs_already_running = _counter(
            r, f"{p}_jobs_already_running", "Duplicates refused", ("source",)
        )
        self.jobs_already_not_running = _counter(
            r, f"{p}_jobs_already_not_running", "Unmarks of UUIDs not marked", ("source",)
        )


@dataclass
class LimiterMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_limiter"
        self.max_in_flight = _gauge(r, f"{p}_max_in_flight", "Configured max-in-flight")
        self.tokens_available = _gauge(r, f"{p}_tokens_available", "Tokens available now")
        self.token_wait_seconds = Histogram(
            f"{p}_token_wait_duration_seconds", "Time waited for a token", registry=r
        )
        self.job_handler_calls = _counter(r, f"{p}_job_handler_calls", "Calls into the limiter")
        self.job_handler_errors = _counter(
            r, f"{p}_job_handler_errors", "Errors returned through the limiter"
        )
        self.onadd_events = _counter(r, f"{p}_onadd_events", "Job informer add events")
        self.onupdate_events = _counter(r, f"{p}_onupdate_events", "Job informer update events")
        self.ondelete_events = _counter(r, f"{p}_ondelete_events", "Job informer delete events")
        self.token_underflows = _counter(
            r, f"{p}_token_underflows", "Tokens taken when none were left", ("source",)
        )
        self.token_overflows = _counter(
            r, f"{p}_token_overflows", "Tokens returned beyond capacity", ("source",)
        )


@dataclass
class SchedulerMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_scheduler"
        self.job_end_to_end_seconds = Histogram(
            f"{_NS}_job_end_to_end_seconds",
            "From the poll that saw a job to its Kubernetes Job being created",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.job_create_calls = _counter(r, f"{p}_job_create_calls", "Kubernetes Job create calls")
        self.job_create_success = _counter(r, f"{p}_job_create_success", "Kubernetes Jobs created")
        self.job_create_errors = _counter(
            r, f"{p}_job_create_errors", "Kubernetes Job create errors", ("reason",)
        )
        self.jobs_failed_on_buildkite = _counter(r, f"{p}_jobs_failed_on_buildkite", "Buildkite jobs failed")
        self.job_fail_on_buildkite_errors = _counter(
            r, f"{p}_job_fail_on_buildkite_errors", "Errors failing Buildkite jobs"
        )


@dataclass
class FailQueueMetrics:
    """The background queue of Buildkite jobs waiting to be failed (``engine.controller.fail_queue``)."""

    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_fail_queue"
        self.size = _gauge(r, f"{p}_size", "Buildkite jobs waiting to be failed")
        self.oldest_seconds = _gauge(
            r, f"{p}_oldest_seconds", "How long the longest-waiting job has waited to be failed"
        )
        self.enqueued = _counter(
            r, f"{p}_enqueued", "Jobs offered to the queue, by result", ("result",)
        )  # queued, already_queued, full
        self.outcomes = _counter(
            r, f"{p}_outcomes", "Attempts to fail a job, by outcome", ("outcome",)
        )  # failed, rejected, retried, gave_up
        self.attempt_seconds = Histogram(
            f"{p}_attempt_seconds",
            "Duration of one attempt to fail a job (the Agent API's own retries included)",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )


@dataclass
class RequestMetrics:
    """Outbound requests to Buildkite that got no answer within ``http-timeout``."""

    registry: CollectorRegistry

    def __post_init__(self) -> None:
        self.timeouts = _counter(
            self.registry,
            f"{_NS}_http_request_timeouts",
            "Requests to Buildkite that timed out, by API (graphql, agent, stacks)",
            ("api",),
        )


@dataclass
class StacksMetrics:
    """The Stacks API mode: reservations, job details, acquisition tokens, job states, notifications."""

    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_stacks"
        self.reserve_requests = _counter(r, f"{p}_reserve_requests", "batch-reserve requests sent")
        self.reserve_errors = _counter(r, f"{p}_reserve_errors", "batch-reserve requests that failed")
        self.reservations = _counter(
            r, f"{p}_reservations", "Jobs asked for in batch-reserve, by result", ("result",)
        )  # reserved, not_reserved
        self.reservations_expired = _counter(
            r,
            f"{p}_reservations_expired",
            "Reserved jobs let go without a Kubernetes Job (offered again at expiry), by reason",
            ("reason",),
        )  # stale, retries, unavailable
        self.reserved_job_retries = _counter(
            r, f"{p}_reserved_job_retries", "Reserved jobs tried again after a transient failure"
        )
        self.job_details = _counter(r, f"{p}_job_details", "get-job calls, by result", ("result",))
        self.acquisition_tokens = _counter(
            r, f"{p}_acquisition_tokens", "Job acquisition tokens asked for, by result", ("result",)
        )  # issued, not_issued, error
        self.acquisition_token_secrets = _counter(
            r, f"{p}_acquisition_token_secrets", "Job acquisition token Secrets, by result", ("result",)
        )  # created, error, deleted
        self.job_state_requests = _counter(r, f"{p}_job_state_requests", "get-states requests sent")
        self.job_state_errors = _counter(r, f"{p}_job_state_errors", "get-states requests that failed")
        self.notifications = _counter(
            r, f"{p}_notifications", "Stack notifications, by result", ("result",)
        )  # sent, rejected, failed, dropped
        self.notification_queue_length = _gauge(
            r, f"{p}_notification_queue_length", "Stack notifications waiting to be sent"
        )


@dataclass
class EngineMetrics:
    """The policy engine's own numbers: how long a decision takes and which policies deny."""

    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_engine"
        self.evaluation_seconds = Histogram(
            f"{p}_evaluation_seconds",
            "Time to evaluate one job through the policy set",
            registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
        )
        self.denials = _counter(
            r, f"{p}_denials", "Jobs denied, by policy and rule", ("policy", "rule", "kind")
        )
        self.warnings = _counter(r, f"{p}_warnings", "Warnings recorded, by policy", ("policy",))
        self.policy_reloads = _counter(r, f"{p}_policy_reloads", "Policy reload attempts", ("result",))
        self.policy_set_valid = _gauge(r, f"{p}_policy_set_valid", "1 if the last policy reload succeeded")
        self.policies_loaded = _gauge(r, f"{p}_policies_loaded", "Policies in the active set")


@dataclass
class JobWatcherMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_job_watcher"
        self.num_stalling_jobs = _gauge(
            r, f"{p}_num_stalling_jobs", "Jobs started without a pod, being watched"
        )
        self.num_ignored_jobs = _gauge(r, f"{p}_num_ignored_jobs", "Jobs already cleaned up")
        self.onadd_events = _counter(r, f"{p}_onadd_events", "Job informer add events")
        self.onupdate_events = _counter(r, f"{p}_onupdate_events", "Job informer update events")
        self.ondelete_events = _counter(r, f"{p}_ondelete_events", "Job informer delete events")
        self.jobs_finished_without_pod = _counter(
            r, f"{p}_jobs_finished_without_pod", "Jobs that ended podless"
        )
        self.jobs_stalled_without_pod = _counter(
            r, f"{p}_jobs_stalled_without_pod", "Jobs podless past the grace"
        )
        self.jobs_failed_before_agent_acquire = _counter(
            r, f"{p}_jobs_failed_before_agent_acquire", "Jobs whose pod failed while their job was reserved"
        )
        self.jobs_deleted_cancelled = _counter(
            r, f"{p}_jobs_deleted_cancelled", "Podless Jobs deleted because their job was cancelled"
        )
        self.jobs_failed_on_buildkite = _counter(r, f"{p}_jobs_failed_on_buildkite", "Buildkite jobs failed")
        self.job_fail_on_buildkite_errors = _counter(
            r, f"{p}_job_fail_on_buildkite_errors", "Errors failing Buildkite jobs"
        )
        self.cleanups = _counter(r, f"{p}_cleanups", "Stalled Jobs cleaned up")
        self.cleanup_errors = _counter(
            r, f"{p}_cleanup_errors", "Errors cleaning up stalled Jobs", ("reason",)
        )


@dataclass
class PodWatcherMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_pod_watcher"
        self.num_job_cancel_checkers = _gauge(r, f"{p}_num_job_cancel_checkers", "Running cancel checkers")
        self.num_ignored_jobs = _gauge(r, f"{p}_num_ignored_jobs", "Jobs already handled")
        self.onadd_events = _counter(r, f"{p}_onadd_events", "Pod informer add events")
        self.onupdate_events = _counter(r, f"{p}_onupdate_events", "Pod informer update events")
        self.ondelete_events = _counter(r, f"{p}_ondelete_events", "Pod informer delete events")
        self.jobs_failed_on_buildkite = _counter(r, f"{p}_jobs_failed_on_buildkite", "Buildkite jobs failed")
        self.job_fail_on_buildkite_errors = _counter(
            r, f"{p}_job_fail_on_buildkite_errors", "Errors failing Buildkite jobs"
        )
        self.jobs_cancelled_on_buildkite = _counter(
            r, f"{p}_jobs_cancelled_on_buildkite", "Buildkite jobs cancelled"
        )
        self.job_cancel_on_buildkite_errors = _counter(
            r, f"{p}_job_cancel_on_buildkite_errors", "Errors cancelling Buildkite jobs"
        )
        self.pods_evicted = _counter(r, f"{p}_pods_evicted", "Pods evicted", ("eviction_reason",))
        self.pod_eviction_errors = _counter(
            r, f"{p}_pod_eviction_errors", "Pod eviction errors", ("eviction_reason", "error_reason")
        )
        self.pods_timed_out_pending = _counter(
            r, f"{p}_pods_timed_out_pending", "Pods pending past pod-pending-timeout"
        )
        self.jobs_deleted = _counter(
            r,
            f"{p}_jobs_deleted",
            "Kubernetes Jobs deleted (a cancelled job's pending pod)",
            ("delete_reason",),
        )
        self.job_deletion_errors = _counter(
            r,
            f"{p}_job_deletion_errors",
            "Errors deleting Kubernetes Jobs",
            ("delete_reason", "error_reason"),
        )


@dataclass
class CompletionsMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r, p = self.registry, f"{_NS}_completion_watcher"
        self.onadd_events = _counter(r, f"{p}_onadd_events", "Pod informer add events")
        self.onupdate_events = _counter(r, f"{p}_onupdate_events", "Pod informer update events")
        self.cleanups = _counter(r, f"{p}_cleanups", "Jobs given a deadline after the agent finished")
        self.cleanup_errors = _counter(r, f"{p}_cleanup_errors", "Errors setting that deadline", ("reason",))


@dataclass
class ControllerMetrics:
    """Every metric of one controller instance, in its own registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.monitor = MonitorMetrics(self.registry)
        self.deduper = DeduperMetrics(self.registry)
        self.limiter = LimiterMetrics(self.registry)
        self.scheduler = SchedulerMetrics(self.registry)
        self.fail_queue = FailQueueMetrics(self.registry)
        self.requests = RequestMetrics(self.registry)
        self.stacks = StacksMetrics(self.registry)
        self.engine = EngineMetrics(self.registry)
        self.job_watcher = JobWatcherMetrics(self.registry)
        self.pod_watcher = PodWatcherMetrics(self.registry)
        self.completions = CompletionsMetrics(self.registry)
