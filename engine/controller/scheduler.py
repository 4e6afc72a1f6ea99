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
* deciding raised (the job's own data made the engine fail, e.g. a plugin nested deeper than Python
  recurses) → fail it once with ``agent-stack-k8s failed to evaluate the job: ...``, which names the
  kind of failure but not its text; the traceback goes to the controller log. Retrying would fail the
  same way at every poll.

Failing a Buildkite job only *queues* it (:mod:`engine.controller.fail_queue`): the Agent REST API is
called in the background, so neither this worker nor its max-in-flight token waits for it.

Kubernetes' answer to the create is mapped as upstream does: ``AlreadyExists`` → duplicate (the Job is
there, the deduper keeps the UUID); ``Invalid`` → fail the Buildkite job with ``Kubernetes rejected the
podSpec built by agent-stack-k8s: <API message>``; anything else → raised, so the deduper and limiter
let go and a later poll retries (an environment failure, not the job's fault). Every path that creates
no Job raises (see ``pipeline``), which returns the max-in-flight token.

Evaluation runs in a worker thread: it is pure but CPU-bound (milliseconds), and the event loop also
serves informer events and probes.

In the Stacks API mode two things are added around the create, never to the Job itself: a job that
carries a job acquisition token is created through ``token_secrets`` (the Job, then the Secret the
agent container reads the token from; see ``engine.controller.token_secrets``), and a created Job is
announced on the Buildkite job with a stack notification (``notify``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn, Protocol

from engine.controller.failer import one_line
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

CREATED_NOTIFICATION = "K8s Job created successfully, waiting for Agent to start..."
"""The stack notification a created Job gets (upstream's words, so Buildkite users see the same)."""
PARSE_FAILURE_PREFIX = "agent-stack-k8s failed to parse the job: "
INVALID_JOB_PREFIX = "Kubernetes rejected the podSpec built by agent-stack-k8s: "
ENGINE_FAILURE_PREFIX = "agent-stack-k8s failed to evaluate the job: "

_log = logging.getLogger(__name__)


class JobCreator(Protocol):
    """Creates Kubernetes Jobs (``KubeClient`` satisfies it). What a create returns is not used:
    ``KubeClient`` returns nothing, the informer reports the Job."""

    async def create_job(self, manifest: JSONObject) -> object: ...


class PodTemplateReader(Protocol):
    """Reads a PodTemplate from the controller's namespace (``KubeClient`` satisfies it)."""

    async def get_pod_template(self, name: str) -> JSONObject | None: ...


class JobFailures(Protocol):
    """Where Buildkite jobs to fail go (``FailQueue`` satisfies it): ``enqueue`` returns at once,
    ``False`` when it cannot take the job now."""

    def enqueue(self, uuid: str, tags: Sequence[str], message: str) -> bool: ...


class TokenSecretWriter(Protocol):
    """Creates a Job and its acquisition token Secret (``AcquisitionTokenSecrets`` satisfies it)."""

    async def create_job_with_token(self, manifest: JSONObject, job_uuid: str, token: str) -> None: ...


class FailQueueFullError(Exception):
    """The fail queue is full: the job was neither created nor failed; a later poll retries it."""

    def __init__(self, uuid: str, reason: str) -> None:
        super().__init__(f"job {uuid} ({reason}): the queue of jobs to fail is full; a later poll retries it")
        self.uuid = uuid


class Scheduler:
    """The last pipeline stage: evaluate, then create the Job or fail the Buildkite job."""

    def __init__(
        self,
        kube: JobCreator,
        failures: JobFailures,
        policies: PolicyStore,
        config: ControllerConfig,
        metrics: ControllerMetrics,
        *,
        pod_templates: PodTemplateReader | None = None,
        token_secrets: TokenSecretWriter | None = None,
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        self._kube = kube
        self._failures = failures
        self._policies = policies
        self._config_view = config.expression_view()
        self._metrics = metrics
        self._pod_templates = pod_templates if PROFILES[config.profile].head_plugin_fields else None
        self._token_secrets = token_secrets
        self._notify = notify

    async def handle(self, job: PendingJob) -> None:
        """Create the Kubernetes Job for ``job``; raise when none was created (see module doc)."""
        manifest = await self._decide(job)
        self._metrics.scheduler.job_create_calls.inc()
        try:
            if job.acquisition_token and self._token_secrets is not None:
                await self._token_secrets.create_job_with_token(manifest, job.uuid, job.acquisition_token)
            else:
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
        if self._notify is not None:
            self._notify(job.uuid, CREATED_NOTIFICATION)

    async def _decide(self, job: PendingJob) -> JSONObject:
        """The Job manifest to create for ``job``; raises :class:`JobNotCreatedError` (after queueing
        the Buildkite job's failure) when the job is unparseable, denied, or made the engine fail."""
        try:
            buildkite_job = parse_job(job.node)
        except JobInputError as exc:
            message = PARSE_FAILURE_PREFIX + "; ".join(exc.problems)
            await self._fail(job, message, "parse_error")
            raise JobNotCreatedError(job.uuid, "parse_error", message) from None
        except Exception as exc:  # the job's own data made deciding fail: retrying cannot help
            await self._fail_undecidable(job, exc)
        templates = await self._read_pod_templates(buildkite_job)  # an API error: retried later
        try:
            decision = await self._evaluate(buildkite_job, templates)
            manifest = decision.manifest if decision.admitted else None
        except Exception as exc:
            await self._fail_undecidable(job, exc)
        if manifest is None:
            await self._fail(job, decision.failure_message, "denied")
            raise JobNotCreatedError(job.uuid, "denied", decision.failure_message)
        return manifest

    async def _fail_undecidable(self, job: PendingJob, exc: Exception) -> NoReturn:
        message = ENGINE_FAILURE_PREFIX + _engine_failure(exc)
        _log.warning(
            "job %s: deciding it raised %s: %s; failing it",
            job.uuid,
            type(exc).__name__,
            _first_line(exc),
            exc_info=exc,
        )
        await self._fail(job, message, "engine_error")
        raise JobNotCreatedError(job.uuid, "engine_error", message) from None

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
        if found is None:
            return {}
        template = found.get("template")
        return {name: template if isinstance(template, dict) else {}}

    async def _evaluate(self, job: BuildkiteJob, pod_templates: Mapping[str, JSON]) -> Decision:
        policies = self._policies.current  # this job keeps this set, whatever a reload does meanwhile
        started = time.perf_counter()
        decide = functools.partial(evaluate, pod_templates=pod_templates) if pod_templates else evaluate
        decision = await asyncio.to_thread(decide, policies, job, self._config_view)
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
        """Queue the Buildkite job's failure; it happens in the background (see ``fail_queue``).

        A full queue raises :class:`FailQueueFullError`: like any transient error, the job is let go
        and a later poll decides it again.
        """
        if not self._failures.enqueue(job.uuid, job.agent_query_rules, message):
            raise FailQueueFullError(job.uuid, reason)


def _job_name(manifest: JSONObject) -> str:
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else "(unnamed)"


def _engine_failure(exc: Exception) -> str:
    """What the pipeline author reads when deciding their job raised: the kind of failure in words,
    never the exception's text or traceback (those go to the controller log)."""
    if isinstance(exc, RecursionError):
        return "its data is nested too deeply to evaluate (RecursionError)"
    if isinstance(exc, MemoryError):
        return "its data is too large to evaluate (MemoryError)"
    return (
        f"the policy engine failed with {type(exc).__name__}; "
        "the controller's log has the details (ask your Buildkite admin)"
    )


def _first_line(exc: BaseException) -> str:
    text = one_line(exc)
    return text if len(text) <= 300 else text[:297] + "..."


def _error_reason(exc: Exception) -> str:
    if isinstance(exc, KubeError):
        return exc.reason or (f"http_{exc.status}" if exc.status else "no_response")
    return type(exc).__name__
