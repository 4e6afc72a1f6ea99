"""The scheduler: turn one Buildkite job into one Kubernetes Job, or fail it with the reason (§3.2, §4.6).

The pod is not built here. The scheduler asks the policy engine (``evaluate``, the same door ``engine
test`` uses) and acts on the decision:

* admitted → create ``decision.manifest`` exactly as the engine returned it (the engine's finishing
  step already put it in the namespace, labelled it ``buildkite.com/controller-id=<id>`` for the
  informers and annotated it with the policies that changed it; see ``engine.core.finish``), so the
  Job created is byte for byte the one ``engine test`` prints;
* denied (a deny rule, a rule that could not be evaluated, or a Job the Kubernetes API would refuse)
  → fail the Buildkite job with ``decision.failure_message``;
* the job document itself is unusable → fail it with ``agent-stack-k8s failed to parse the job: ...``.

Kubernetes' answer to the create is mapped as upstream does: ``AlreadyExists`` → duplicate (the Job is
there, the deduper keeps the UUID); ``Invalid`` → fail the Buildkite job with ``Kubernetes rejected the
podSpec built by agent-stack-k8s: <API message>``; anything else → raised, so the deduper and limiter
let go and a later poll retries. Every path that creates no Job raises (see ``pipeline``), which
returns the max-in-flight token.

Evaluation runs in a worker thread: it is pure but CPU-bound (milliseconds), and the event loop also
serves informer events and probes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from engine.controller.failer import FailOutcome
from engine.controller.metrics import ControllerMetrics
from engine.controller.pipeline import DuplicateJobError, JobNotCreatedError, PendingJob
from engine.controller.policy_store import PolicyStore
from engine.core.evaluate import evaluate
from engine.kube.client import AlreadyExistsError, InvalidObjectError, KubeError
from engine.model.config import ControllerConfig
from engine.model.decision import Decision
from engine.model.job import BuildkiteJob, JobInputError, parse_job, pod_template_name
from engine.model.jsonvalue import JSON, JSONObject
from engine.model.profiles import PROFILES

PARSE_FAILURE_PREFIX = "agent-stack-k8s failed to parse the job: "
INVALID_JOB_PREFIX = "Kubernetes rejected the podSpec built by agent-stack-k8s: "

_log = logging.getLogger(__name__)


class JobCreator(Protocol):
    """Creates Kubernetes Jobs (``KubeClient`` satisfies it). What a create returns is not used:
    ``KubeClient`` returns nothing, the informer reports the Job."""

    async def create_job(self, manifest: JSONObject) -> object: ...


class PodTemplateReader(Protocol):
    """Reads a PodTemplate from the controller's namespace (``KubeClient`` satisfies it)."""

    async def get_pod_template(self, name: str) -> JSONObject | None: ...


class Failer(Protocol):
    """Fails Buildkite jobs (``JobFailer`` satisfies it)."""

    async def fail(
        self, uuid: str, tags: Sequence[str], message: str, *, namespace: str | None = None
    ) -> FailOutcome: ...


class Scheduler:
    """The last pipeline stage: evaluate, then create the Job or fail the Buildkite job."""

    def __init__(
        self,
        kube: JobCreator,
        failer: Failer,
        policies: PolicyStore,
        config: ControllerConfig,
        metrics: ControllerMetrics,
        *,
        pod_templates: PodTemplateReader | None = None,
    ) -> None:
        self._kube = kube
        self._failer = failer
        self._policies = policies
        self._config_view = config.expression_view()
        self._metrics = metrics
        self._pod_templates = pod_templates if PROFILES[config.profile].head_plugin_fields else None

    async def handle(self, job: PendingJob) -> None:
        """Create the Kubernetes Job for ``job``; raise when none was created (see module doc)."""
        try:
            buildkite_job = parse_job(job.node)
        except JobInputError as exc:
            message = PARSE_FAILURE_PREFIX + "; ".join(exc.problems)
            await self._fail(job, message, "parse_error")
            raise JobNotCreatedError(job.uuid, "parse_error", message) from None

        templates = await self._read_pod_templates(buildkite_job)
        decision = await self._evaluate(buildkite_job, templates)
        if not decision.admitted:
            await self._fail(job, decision.failure_message, "denied")
            raise JobNotCreatedError(job.uuid, "denied", decision.failure_message)

        manifest = decision.manifest
        self._metrics.scheduler.job_create_calls.inc()
        try:
            await self._kube.create_job(manifest)
        except AlreadyExistsError:
            self._metrics.scheduler.job_create_errors.labels(reason="already_exists").inc()
            raise DuplicateJobError(job.uuid, "its Kubernetes Job already exists") from None
        except InvalidObjectError as exc:
            self._metrics.scheduler.job_create_errors.labels(reason="invalid").inc()
            message = INVALID_JOB_PREFIX + str(exc)
            await self._fail(job, message, "invalid")
            raise JobNotCreatedError(job.uuid, "invalid", message) from None
        except Exception as exc:
            self._metrics.scheduler.job_create_errors.labels(reason=_error_reason(exc)).inc()
            raise
        self._metrics.scheduler.job_create_success.inc()
        loop = asyncio.get_running_loop()
        self._metrics.scheduler.job_end_to_end_seconds.observe(loop.time() - job.queried_at)
        _log.info("created Kubernetes Job %s for Buildkite job %s", _job_name(manifest), job.uuid)

    async def _read_pod_templates(self, job: BuildkiteJob) -> dict[str, JSON]:
        """The PodTemplate the job's plugin names, read now from the namespace, as the engine's
        ``podTemplates`` input: absent when it does not exist (the policies fail the job, as upstream
        does). Any other error is raised: a transient API problem must not fail a job, and a later
        poll retries it."""
        if self._pod_templates is None:
            return {}
        name = pod_template_name(job)
        if name is None:
            return {}
        found = await self._pod_templates.get_pod_template(name)
        template = found.get("template") if isinstance(found, dict) else None
        return {name: template if isinstance(template, dict) else {}} if found is not None else {}

    async def _evaluate(self, job: BuildkiteJob, pod_templates: Mapping[str, JSON]) -> Decision:
        policies = self._policies.current  # this job keeps this set, whatever a reload does meanwhile
        started = time.perf_counter()
        decision = await asyncio.to_thread(
            functools.partial(evaluate, pod_templates=pod_templates), policies, job, self._config_view
        )
        engine = self._metrics.engine
        engine.evaluation_seconds.observe(time.perf_counter() - started)
        for denial in decision.denials:
            engine.denials.labels(policy=denial.policy, rule=denial.rule, kind=denial.kind).inc()
            _log.info("job %s denied by %s", job.uuid, denial.render())
        for warning in decision.warnings:
            engine.warnings.labels(policy=warning.policy).inc()
            _log.warning("job %s: %s", job.uuid, warning.render())
        return decision

    async def _fail(self, job: PendingJob, message: str, reason: str) -> None:
        outcome = await self._failer.fail(job.uuid, job.agent_query_rules, message)
        if outcome == "failed":
            self._metrics.scheduler.jobs_failed_on_buildkite.inc()
        else:
            self._metrics.scheduler.job_fail_on_buildkite_errors.inc()
            _log.warning("job %s (%s) could not be failed on Buildkite: %s", job.uuid, reason, outcome)


def _job_name(manifest: JSONObject) -> str:
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else "(unnamed)"


def _error_reason(exc: Exception) -> str:
    if isinstance(exc, KubeError):
        return exc.reason or (f"http_{exc.status}" if exc.status else "no_response")
    return type(exc).__name__
