"""The running controller: every component wired together on one asyncio event loop (spec §4.1).

Start-up order (each step only once the one before worked, so a half-started controller never
schedules):

1. health (and metrics) HTTP servers, so probes answer while the rest starts;
2. clients: Kubernetes (kubeconfig or in-cluster), then Buildkite for the config's mode
   (:meth:`~engine.model.config.ControllerConfig.mode`, logged with the reason): GraphQL and the Agent
   REST API; or the Stacks API, with the agent token read from ``agent-token-secret``, checked with
   ``GET /token`` (a cluster token is needed) and the stack registered (key ``id``, else
   ``agent-stack-k8s``; queue ``queue``, else the ``queue`` tag, else ``_default``), retrying while
   Buildkite is unreachable;
3. the pipeline, back to front: scheduler ← (Stacks API: job details and acquisition token) ←
   limiter (only when ``max-in-flight`` > 0) ← deduper, and the fail queue the scheduler hands
   Buildkite jobs to fail to (the deduper holds them meanwhile); in the Stacks API mode the monitor
   reserves jobs before queueing them, and a notifier sends stack notifications;
4. informers for Jobs and pods labelled ``buildkite.com/controller-id=<id>``, with the limiter, deduper
   and watchers subscribed *before* they start, so the initial list seeds their state;
5. wait until the Job informer delivered its initial list (the limiter and deduper must know the
   existing Jobs before the first poll, or a restarted controller would duplicate them or overrun the
   limit);
6. watchers' timers, the policy reloader, the fail queue's workers, and finally the monitor.

Every request to Buildkite is bounded by ``http-timeout`` (counted in
``buildkite_http_request_timeouts_total{api}`` when it runs out).

The controller then runs until :meth:`ControllerRuntime.stop` (SIGTERM/SIGINT in ``engine run``) or
until the monitor cannot go on (invalid organization, a refused Stacks API listing): both stop polling
first, cancel every task, deregister the stack (Stacks API, best effort, 5 s), close the clients and
stop the HTTP servers. Nothing in the cluster is touched on the way out: pods keep running and a
restarted controller rebuilds its state from the informers (spec §4.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s_client

from engine.buildkite.agent_api import AgentAPI
from engine.buildkite.errors import BuildkiteAPIError, StacksAPIError
from engine.buildkite.graphql import BuildkiteGraphQL
from engine.buildkite.stacks import RegisteredStack, StacksAPI
from engine.controller.backoff import doubling_delay
from engine.controller.deduper import Deduper
from engine.controller.fail_queue import FailQueue
from engine.controller.failer import FailBackend, JobFailer, one_line
from engine.controller.health import HealthServer, Status
from engine.controller.job_details import JobDetailsStage
from engine.controller.job_states import GraphQLJobs, StacksJobs
from engine.controller.limiter import Limiter
from engine.controller.logging_setup import SecretScrubber
from engine.controller.metrics import ControllerMetrics
from engine.controller.monitor import Monitor, MonitorStoppedError, ScheduledJobSource
from engine.controller.notifier import Notifier
from engine.controller.pipeline import JobHandler
from engine.controller.policy_reload import DEFAULT_RELOAD_INTERVAL, PolicyReloader
from engine.controller.policy_store import PolicyStore
from engine.controller.reserver import StacksReserver
from engine.controller.scheduler import Scheduler
from engine.controller.sources import GraphQLJobSource, StacksJobSource
from engine.controller.stacks_failer import StacksJobFailer
from engine.controller.token_secrets import AcquisitionTokenSecrets, TokenSecretJanitor
from engine.controller.watchers.collaborators import BuildkiteJobs
from engine.controller.watchers.completions import CompletionsWatcher
from engine.controller.watchers.job_watcher import JobWatcher
from engine.controller.watchers.pod_watcher import PodWatcher
from engine.core.compiler import PolicySet
from engine.kube.client import DEFAULT_POOL_SIZE, KubeClient, KubeError, load_api_client
from engine.kube.informer import Informer
from engine.kube.labels import CONTROLLER_ID_LABEL, JOB_UUID_LABEL
from engine.kube.transforms import lean_job, lean_pod
from engine.model.config import ControllerConfig
from engine.model.tags import parse_tags

DEFAULT_HEALTH_PORT = 8080
DEREGISTER_SECONDS = 5.0
REGISTER_RETRY_SECONDS = (1.0, 30.0)
"""First and longest wait between attempts to register the stack while Buildkite is unreachable."""

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


class ControllerFatalError(Exception):
    """The controller stopped because it cannot work (bad organization, no Kubernetes access...).

    The message is one line for the user; ``engine run`` prints it and exits non-zero.
    """


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run, beyond the config: where policies live, how to reach Kubernetes, which ports.

    ``health_port``/``prometheus_port``: ``None`` disables, ``0`` binds a free port (tests).
    ``prometheus_port`` defaults to the config's ``prometheus-port`` (``0`` there means off).
    """

    policy_paths: tuple[Path, ...] = ()
    kubeconfig: str | None = None
    health_port: int | None = DEFAULT_HEALTH_PORT
    prometheus_port: int | None = None
    policy_reload_interval: float = DEFAULT_RELOAD_INTERVAL
    health_host: str = "0.0.0.0"


@dataclass
class _Buildkite:
    """The Buildkite clients of the config's mode (one of ``graphql`` and ``stacks`` is set)."""

    graphql: BuildkiteGraphQL | None = None
    stacks: StacksAPI | None = None
    stack: RegisteredStack | None = None

    async def close(self) -> None:
        for client in (self.graphql, self.stacks):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()


@dataclass
class _Components:
    """Everything ``run`` builds, kept for tests and diagnostics."""

    kube: KubeClient
    buildkite: _Buildkite
    job_informer: Informer
    pod_informer: Informer
    deduper: Deduper
    limiter: Limiter | None
    scheduler: Scheduler
    fail_queue: FailQueue
    monitor: Monitor
    watchers: list[CompletionsWatcher | JobWatcher | PodWatcher | TokenSecretJanitor] = field(
        default_factory=list
    )
    notifier: Notifier | None = None

    @property
    def graphql(self) -> BuildkiteGraphQL | None:
        return self.buildkite.graphql


class _ScrubbedTokenSource:
    """Reads the agent token through ``KubeClient`` and tells the log scrubber about it."""

    def __init__(self, kube: KubeClient, scrubber: SecretScrubber) -> None:
        self._kube = kube
        self._scrubber = scrubber

    async def read_agent_token(self, secret_name: str, namespace: str | None = None) -> str:
        token = await self._kube.read_agent_token(secret_name, namespace)
        self._scrubber.add(token)
        return token


class ControllerRuntime:
    """One controller instance. ``await run()`` until ``stop()``; see the module doc for the order."""

    def __init__(
        self,
        config: ControllerConfig,
        policies: PolicySet,
        options: RuntimeOptions,
        *,
        metrics: ControllerMetrics | None = None,
        scrubber: SecretScrubber | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.metrics = metrics or ControllerMetrics()
        self.policies = PolicyStore(policies)
        self.scrubber = scrubber or SecretScrubber()
        self.scrubber.add(config.buildkite_token)
        self.mode = config.mode().name
        self.queue = config.effective_queue()
        self.controller_id = config.controller_id()
        self.components: _Components | None = None
        self.health_ports: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False
        self._dead: list[str] = []
        self._fatal: list[str] = []

    # ---- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to shut down; safe from any thread and more than once."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._stop.set()
        else:
            loop.call_soon_threadsafe(self._stop.set)

    @property
    def ready(self) -> bool:
        """True once polling started (informers synced) and until shutdown begins."""
        return self._ready

    def readiness(self) -> Status:
        problems: list[str] = []
        if not self._ready:
            problems.append("the controller is starting or stopping (informers not synced, not polling)")
        if not self.policies.valid:
            problems.append("policy reload rejected; still scheduling with the last good policy set:")
            problems.extend(f"  {problem}" for problem in self.policies.problems)
        return Status(not problems, tuple(problems))

    def liveness(self) -> Status:
        return Status(not self._dead, tuple(f"{name} stopped" for name in self._dead))

    # ---- the run ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop`; raise :class:`ControllerFatalError` when the controller cannot work."""
        self._loop = asyncio.get_running_loop()
        health = HealthServer(
            liveness=self.liveness,
            readiness=self.readiness,
            registry=self.metrics.registry,
            health_port=self.options.health_port,
            prometheus_port=self._prometheus_port(),
            host=self.options.health_host,
        )
        tasks: list[asyncio.Task[None]] = []
        api: k8s_client.ApiClient | None = None
        kube: KubeClient | None = None
        buildkite = _Buildkite()
        try:
            try:
                await health.start()
            except OSError as exc:
                raise ControllerFatalError(f"cannot serve health/metrics endpoints: {exc}") from None
            self.health_ports = dict(health.ports)
            if self.config.profiler_address:
                _log.warning("profiler-address is a Go pprof setting; this controller ignores it")
            try:
                api = await asyncio.to_thread(
                    load_api_client, self.options.kubeconfig, pool_size=_pool_size(self.config)
                )
            except KubeError as exc:
                raise ControllerFatalError(str(exc)) from None
            kube = KubeClient(api, self.config.namespace, create_workers=self.config.job_creation_concurrency)
            _log.info(
                "controller %s: using the %s (%s)",
                self.controller_id,
                "Stacks API" if self.mode == "stacks" else "GraphQL API",
                self.config.mode_reason(),
            )
            if self.mode == "stacks":
                if not await self._until_stopped(self._connect_stack(kube, buildkite)):
                    return
            else:
                buildkite.graphql = self._graphql_client()
            components = self._build(api, kube, buildkite)
            self.components = components
            _log.info(
                "controller %s starting: namespace %s, queue %s, max-in-flight %d, %d policies",
                self.controller_id,
                self.config.namespace,
                self.queue,
                self.config.max_in_flight,
                len(self.policies.current),
            )
            tasks.append(self._spawn("job informer", components.job_informer.run()))
            tasks.append(self._spawn("pod informer", components.pod_informer.run()))
            if await self._until_stopped(components.job_informer.wait_synced()):
                await self._serve(components, tasks)
        finally:
            self._ready = False
            await self._shut_down(tasks, buildkite, api, health)
            if kube is not None:
                kube.close()
        if self._fatal:
            raise ControllerFatalError(self._fatal[0])

    def _graphql_client(self) -> BuildkiteGraphQL:
        tags, _ = parse_tags(self.config.tags)
        if "queue" not in tags:
            raise ControllerFatalError("tags: missing required tag: queue (the GraphQL mode polls by it)")
        return BuildkiteGraphQL(
            self.config.graphql_endpoint,
            self.config.buildkite_token,
            timeout=self.config.http_timeout,
            on_timeout=lambda _operation: self.metrics.requests.timeouts.labels(api="graphql").inc(),
        )

    async def _connect_stack(self, kube: KubeClient, buildkite: _Buildkite) -> None:
        """The Stacks API client: the agent token from its Secret, checked, and the stack registered."""
        config = self.config
        secret = f"Secret {config.namespace}/{config.agent_token_secret}"
        try:
            token = await kube.read_agent_token(config.agent_token_secret)
        except KubeError as exc:
            raise ControllerFatalError(f"cannot read the agent token from {secret}: {exc}") from None
        self.scrubber.add(token)
        endpoint = (config.agent_config.endpoint if config.agent_config else None) or ""
        stacks = StacksAPI(
            endpoint,
            token,
            config.stack_key(),
            timeout=config.http_timeout,
            on_timeout=lambda _operation: self.metrics.requests.timeouts.labels(api="stacks").inc(),
        )
        buildkite.stacks = stacks
        identity = await self._until_answered("check the agent token", stacks.token_identity)
        if not identity.cluster_uuid:
            raise ControllerFatalError(
                f"the agent token in {secret} is an unclustered agent token; the Stacks API needs a "
                "cluster agent token (create one on the cluster's Agent Tokens page)"
            )
        stack = await self._until_answered("register the stack", lambda: stacks.register(self.queue))
        buildkite.stack = stack
        self.queue = stack.cluster_queue_key or self.queue
        _log.info(
            "registered stack %s for cluster queue %s (cluster %s of organization %s)",
            stack.key,
            self.queue,
            identity.cluster_name or identity.cluster_uuid,
            identity.organization_slug,
        )

    async def _until_answered(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """``await call()`` until Buildkite answers; a refusal (a 4xx) is fatal, anything else is
        tried again after a growing pause (the controller is not ready meanwhile)."""
        first, longest = REGISTER_RETRY_SECONDS
        attempts = 0
        while True:
            try:
                return await call()
            except StacksAPIError as exc:
                if exc.permanent:
                    raise ControllerFatalError(f"cannot {what}: {exc}") from None
                problem = str(exc)
            except BuildkiteAPIError as exc:
                problem = str(exc)
            attempts += 1
            delay = doubling_delay(attempts, first, longest)
            _log.warning("cannot %s yet (%s); trying again in %gs", what, problem, delay)
            await asyncio.sleep(delay)

    async def _serve(self, components: _Components, tasks: list[asyncio.Task[None]]) -> None:
        """Steps 6 and on: timers, reloader, monitor; then wait for a stop or a fatal error."""
        for watcher in components.watchers:
            tasks.append(self._spawn(type(watcher).__name__, watcher.run()))
        reloader = PolicyReloader(
            self.policies,
            self.options.policy_paths,
            self.metrics.engine,
            interval=self.options.policy_reload_interval,
        )
        tasks.append(self._spawn("policy reloader", reloader.run()))
        tasks.append(self._spawn("fail queue", components.fail_queue.run()))
        if components.notifier is not None:
            tasks.append(self._spawn("notifier", components.notifier.run()))
        tasks.append(self._spawn("monitor", components.monitor.run()))
        self._ready = True
        _log.info("controller %s is polling Buildkite", self.controller_id)
        await self._stop.wait()

    def _build(self, api: k8s_client.ApiClient, kube: KubeClient, buildkite: _Buildkite) -> _Components:
        config, metrics = self.config, self.metrics
        stacks = buildkite.stacks
        notifier = Notifier(stacks, metrics.stacks) if stacks is not None else None
        failer, jobs = self._failers(kube, buildkite, notifier)
        fail_queue = FailQueue(
            failer,
            metrics.fail_queue,
            metrics.scheduler,
            remember_for=2 * config.stale_job_data_timeout,
        )
        token_secrets = None
        if stacks is not None and config.job_acquisition_tokens:
            token_secrets = AcquisitionTokenSecrets(kube, self.controller_id, metrics.stacks)
        scheduler = Scheduler(
            kube,
            fail_queue,
            self.policies,
            config,
            metrics,
            token_secrets=token_secrets,
            notify=notifier.notify if notifier is not None else None,
            pod_templates=kube,
        )
        limiter, deduper = self._front_stages(scheduler, stacks, fail_queue)
        monitor = self._monitor(buildkite, deduper, limiter)
        selector = f"{JOB_UUID_LABEL},{CONTROLLER_ID_LABEL}={self.controller_id}"
        job_informer = Informer(api, "jobs", config.namespace, selector, name="jobs", transform=lean_job)
        pod_informer = Informer(api, "pods", config.namespace, selector, name="pods", transform=lean_pod)
        if limiter is not None:
            job_informer.subscribe(limiter.on_job_event)
        job_informer.subscribe(deduper.on_job_event)
        completions = CompletionsWatcher(kube, metrics)
        job_watcher = JobWatcher(
            kube, failer, config, metrics, reserved_jobs=jobs if stacks is not None else None
        )
        pod_watcher = PodWatcher(
            kube, failer, jobs, config, metrics, delete_cancelled_jobs=stacks is not None
        )
        job_informer.subscribe(job_watcher.on_event)
        if config.enable_completion_watcher:
            pod_informer.subscribe(completions.on_event)
        pod_informer.subscribe(pod_watcher.on_event)
        watchers: list[CompletionsWatcher | JobWatcher | PodWatcher | TokenSecretJanitor] = [
            completions,
            job_watcher,
            pod_watcher,
        ]
        if token_secrets is not None:
            janitor = TokenSecretJanitor(kube, metrics.stacks)
            job_informer.subscribe(janitor.on_event)
            watchers.append(janitor)
        return _Components(
            kube=kube,
            buildkite=buildkite,
            job_informer=job_informer,
            pod_informer=pod_informer,
            deduper=deduper,
            limiter=limiter,
            scheduler=scheduler,
            fail_queue=fail_queue,
            monitor=monitor,
            watchers=watchers,
            notifier=notifier,
        )

    def _failers(
        self, kube: KubeClient, buildkite: _Buildkite, notifier: Notifier | None
    ) -> tuple[FailBackend, BuildkiteJobs]:
        """How this mode fails jobs (for the fail queue and the watchers alike) and asks about them:
        the Stacks API's ``finish`` and ``get-states``; or acquire-and-fail and GraphQL."""
        config, metrics = self.config, self.metrics
        if buildkite.stacks is not None:
            assert notifier is not None  # the Stacks API mode always has one (see _build)
            failer = StacksJobFailer(buildkite.stacks, notifier.notify)
            return failer, StacksJobs(buildkite.stacks, metrics.stacks, notifier.notify)
        assert buildkite.graphql is not None
        agent_api = AgentAPI(
            config.agent_config.endpoint or "" if config.agent_config else "",
            request_timeout=config.http_timeout,
            on_timeout=lambda _step: metrics.requests.timeouts.labels(api="agent").inc(),
        )
        tokens = _ScrubbedTokenSource(kube, self.scrubber)
        return JobFailer(tokens, agent_api, config), GraphQLJobs(buildkite.graphql)

    def _front_stages(
        self, scheduler: Scheduler, stacks: StacksAPI | None, fail_queue: FailQueue
    ) -> tuple[Limiter | None, Deduper]:
        """Deduper → limiter (when ``max-in-flight`` > 0) → (Stacks API: job details) → scheduler."""
        config, metrics = self.config, self.metrics
        after_limiter: JobHandler = scheduler.handle
        if stacks is not None:
            details = JobDetailsStage(
                stacks,
                scheduler.handle,
                metrics.stacks,
                acquisition_tokens=config.job_acquisition_tokens,
                token_lifetime_seconds=config.job_acquisition_token_lifetime_seconds,
            )
            after_limiter = details.handle
        limiter = None
        after_deduper: JobHandler = after_limiter
        if config.max_in_flight > 0:
            limiter = Limiter(after_limiter, config.max_in_flight, metrics.limiter)
            after_deduper = limiter.handle
        return limiter, Deduper(after_deduper, metrics.deduper, held=fail_queue.holds)

    def _monitor(self, buildkite: _Buildkite, deduper: Deduper, limiter: Limiter | None) -> Monitor:
        """The monitor for the mode: GraphQL pages; or Stacks API pages, reserved before queueing."""
        config, metrics = self.config, self.metrics
        source: ScheduledJobSource
        options: dict[str, Any] = {}
        if buildkite.stacks is not None:
            source = StacksJobSource(buildkite.stacks, self.queue, config.pagination_page_size)
            expiry = config.reservation_expiry_seconds or ASSUMED_RESERVATION_SECONDS
            options = {
                "reserver": StacksReserver(
                    buildkite.stacks, config.reservation_expiry_seconds, metrics.stacks
                ),
                "reservation_ttl": expiry - min(max(2.0, expiry / 10), 60.0),
                "capacity": (lambda: limiter.available - limiter.waiting) if limiter is not None else None,
                "stacks_metrics": metrics.stacks,
            }
        else:
            assert buildkite.graphql is not None
            tags, _ = parse_tags(config.tags)
            source = GraphQLJobSource(
                buildkite.graphql, config.org, tags.get("queue", ""), config.cluster_uuid
            )
        return Monitor(
            source,
            deduper.handle,
            metrics.monitor,
            tags=config.tags,
            poll_interval=config.poll_interval,
            stale_job_data_timeout=config.stale_job_data_timeout,
            job_creation_concurrency=config.job_creation_concurrency,
            pagination_depth_limit=config.pagination_depth_limit,
            query_reset_interval=config.query_reset_interval,
            holds=deduper.holds,
            ignored_job_tags=config.unmatched_job_tags(),
            **options,
        )

    def _prometheus_port(self) -> int | None:
        if self.options.prometheus_port is not None:
            return self.options.prometheus_port
        return self.config.prometheus_port if self.config.prometheus_port > 0 else None

    def _spawn(self, name: str, work: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``work`` as a task; if it fails, the controller is dead: record why and stop."""

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except MonitorStoppedError as exc:
                self._die(name, f"{name} stopped: {exc}")
            except Exception as exc:
                _log.error("%s failed", name, exc_info=exc)
                self._die(name, f"{name} failed: {one_line(exc)}")

        return asyncio.get_running_loop().create_task(guarded(), name=name)

    def _die(self, name: str, reason: str) -> None:
        self._dead.append(name)
        self._fatal.append(reason)
        self._stop.set()

    async def _until_stopped(self, work: Awaitable[Any]) -> bool:
        """Await ``work`` unless a stop is requested first (or a task dies); True when ``work`` ended."""
        waiting = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if waiting in done:
            waiting.result()  # an error of ``work`` (a fatal start-up problem) is raised here
            return True
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await waiting
        return False

    async def _shut_down(
        self,
        tasks: list[asyncio.Task[None]],
        buildkite: _Buildkite,
        api: k8s_client.ApiClient | None,
        health: HealthServer,
    ) -> None:
        _log.info("controller %s shutting down", self.controller_id)
        for task in reversed(tasks):  # the monitor (last started) first: stop polling before anything else
            task.cancel()
        for task in reversed(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if buildkite.stacks is not None and buildkite.stack is not None:
            try:
                async with asyncio.timeout(DEREGISTER_SECONDS):
                    await buildkite.stacks.deregister()
                _log.info("deregistered stack %s", buildkite.stack.key)
            except Exception as exc:  # best effort: Buildkite cleans up a stack that never deregisters
                _log.warning("could not deregister stack %s: %s", buildkite.stack.key, one_line(exc))
        await buildkite.close()
        if api is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(api.close)
        await health.stop()


ASSUMED_RESERVATION_SECONDS = 300
"""The reservation expiry assumed when ``reservation-expiry-seconds`` is 0 (Buildkite's default: the
client library says 300 s, upstream's docs 900 s; the shorter is the safe assumption)."""


def _pool_size(config: ControllerConfig) -> int:
    """Connections to keep: one per create thread, plus room for the watches and everything else."""
    return max(DEFAULT_POOL_SIZE, config.job_creation_concurrency + 16)
