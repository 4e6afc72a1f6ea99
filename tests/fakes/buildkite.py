"""A fake Buildkite: the GraphQL API and the Agent REST API over real HTTP, with in-memory state.

Tests (and the controller's integration tests) talk to it exactly as to Buildkite, so what is checked
is the wire contract, not a mock's expectations:

* every GraphQL request is parsed, validated and executed by graphql-core against the schema subset
  shipped in ``engine/buildkite/schema.graphql`` (an invalid document gets a GraphQL ``errors``
  response, like the real API), with resolvers over the fake's jobs;
* the Agent REST API implements register → connect → acquire → start → chunks → finish → disconnect
  with the checks Buildkite makes (tokens, job state, agent tags, gzip'd log chunks whose size matches);
* job states move SCHEDULED → ACCEPTED (acquire) → RUNNING (start) → FINISHED (finish), or CANCELED;
* the Stacks API (``/v3/token``, ``/v3/stacks/...``; :mod:`tests.fakes.stacks`, reached as
  ``fake.stacks``) lists, reserves, describes and finishes the same jobs, with exclusive reservations
  that expire, notifications and job acquisition tokens;
* ``faults`` (:class:`FaultInjector`) makes any of the three APIs answer 500s, 429 with ``Retry-After``
  or hang, for a number of requests or until cleared, for the controller's fault tests.

Use it from synchronous code (``with FakeBuildkite() as bk:`` runs the server on a background thread
with its own event loop) or from async tests (``async with FakeBuildkite() as bk:`` serves on the
running loop). State is guarded by a lock, so helpers may be called from any thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import itertools
import json
import threading
import time
import uuid as uuid_module
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self, cast

from aiohttp import web
from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    graphql_sync,
)

from engine.buildkite.schema import schema_sdl
from tests.fakes.stacks import FakeStacksAPI, stacks_operation

__all__ = [
    "DEFAULT_AGENT_TOKEN",
    "DEFAULT_GRAPHQL_TOKEN",
    "DEFAULT_ORG",
    "FakeAgent",
    "FakeBuildkite",
    "FakeJob",
    "Fault",
    "FaultInjector",
    "RecordedRequest",
]

DEFAULT_ORG = "test-org"
DEFAULT_GRAPHQL_TOKEN = "bkua_fake_graphql_api_token"
DEFAULT_AGENT_TOKEN = "fake-agent-registration-token"
MAX_PAGE_SIZE = 500
DEFAULT_CHUNKS_MAX_SIZE = 100 * 1024

JOB_STATES = frozenset(cast(GraphQLEnumType, build_schema(schema_sdl()).type_map["JobStates"]).values)
"""Every ``JobStates`` value of the shipped schema."""
CANCELABLE_STATES = frozenset(
    {"PENDING", "WAITING", "BLOCKED", "LIMITING", "LIMITED", "SCHEDULED", "ASSIGNED", "ACCEPTED", "RUNNING"}
)
AGENT_STEPS = ("register", "connect", "acquire", "start", "chunks", "finish", "disconnect", "job")
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

JSONDict = dict[str, Any]
Resolver = Callable[..., Any]


def graphql_id(kind: str, uuid: str) -> str:
    """Buildkite-style opaque node ID: ``base64("<Kind>---<uuid>")``."""
    return base64.b64encode(f"{kind}---{uuid}".encode()).decode("ascii")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- state --------------------------------------------------------------------------------------


@dataclass
class _Organization:
    slug: str
    uuid: str
    name: str

    @property
    def id(self) -> str:
        return graphql_id("Organization", self.uuid)


@dataclass
class _Build:
    uuid: str
    org: str
    number: int
    pipeline_slug: str
    pipeline_uuid: str
    branch: str
    commit: str
    message: str
    source: str

    @property
    def url(self) -> str:
        return f"https://buildkite.com/{self.org}/{self.pipeline_slug}/builds/{self.number}"


@dataclass
class _Agent:
    uuid: str
    name: str
    access_token: str
    meta_data: list[str]
    registration: JSONDict
    connected: bool = False
    disconnected: bool = False
    job_uuid: str | None = None
    acquisition_job: str | None = None
    """The one job this agent may acquire, when it registered with a job acquisition token."""


@dataclass
class _Job:
    seq: int
    uuid: str
    org: str
    build: _Build
    command: str
    env: list[str]
    agent_query_rules: list[str]
    label: str | None
    step_key: str | None
    priority: int
    state: str
    cluster_uuid: str | None
    created_at: datetime
    scheduled_at: datetime | None
    exit_status: str | None = None
    agent_uuid: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    canceled_at: datetime | None = None
    chunks: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    chunks_failed_count: int | None = None

    @property
    def id(self) -> str:
        return graphql_id("Job", self.uuid)

    @property
    def log(self) -> str:
        ordered = sorted(self.chunks.values())
        return b"".join(data for _, data in ordered).decode("utf-8", "replace")


# -- what tests look at ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeJob:
    """A snapshot of one job, for assertions."""

    uuid: str
    id: str
    state: str
    log: str
    exit_status: str | None
    agent_name: str | None
    build_uuid: str
    build_url: str
    agent_query_rules: tuple[str, ...]
    env: tuple[str, ...]
    node: JSONDict
    """The wire-shape ``JobTypeCommand`` node as the scheduled-jobs query returns it."""
    chunks_failed_count: int | None
    reserved_by: str | None = None
    """The stack holding a live Stacks API reservation of the job."""


@dataclass(frozen=True)
class FakeAgent:
    """A snapshot of one registered agent."""

    uuid: str
    name: str
    meta_data: tuple[str, ...]
    connected: bool
    disconnected: bool
    job_uuid: str | None
    registration: JSONDict


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake served, with the status it answered."""

    api: Literal["graphql", "agent", "stacks"]
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    """Parsed JSON for JSON requests, else the raw bytes."""
    status: int
    operation_name: str | None = None
    variables: Mapping[str, Any] | None = None
    response: Any = None
    """The parsed JSON the fake answered with (``None`` for a non-JSON answer)."""
    received_at: float = 0.0
    """``time.monotonic()`` when the request arrived."""
    raw_path: str = ""
    """The path as sent, before percent-decoding."""


@dataclass
class _Injection:
    status: int
    remaining: int
    retry_after: str | None
    message: str


class FakeBuildkite:
    """The fake server plus its state and test helpers (see the module docstring)."""

    def __init__(
        self,
        *,
        graphql_token: str = DEFAULT_GRAPHQL_TOKEN,
        agent_token: str = DEFAULT_AGENT_TOKEN,
        organizations: Iterable[str] = (DEFAULT_ORG,),
        chunks_max_size_bytes: int = DEFAULT_CHUNKS_MAX_SIZE,
    ) -> None:
        self.graphql_token = graphql_token
        self.agent_token = agent_token
        self.chunks_max_size_bytes = chunks_max_size_bytes
        self.counters: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._orgs: dict[str, _Organization] = {}
        self._jobs: dict[str, _Job] = {}
        self._builds: dict[str, _Build] = {}
        self._agents: dict[str, _Agent] = {}
        self._requests: list[RecordedRequest] = []
        self._graphql_injections: list[_Injection] = []
        self._agent_injections: dict[str, list[_Injection]] = {step: [] for step in AGENT_STEPS}
        self.faults = FaultInjector(self)
        self.stacks = FakeStacksAPI(self)
        self._seq = itertools.count(1)
        self._build_numbers: Counter[str] = Counter()
        self._schema = _executable_schema(self)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        for slug in organizations:
            self.add_organization(slug)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if not self._port:
            raise RuntimeError("the fake Buildkite server is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def agent_url(self) -> str:
        return f"{self.base_url}/v3"

    async def start_async(self) -> Self:
        """Serve on the running event loop (for async tests)."""
        app = web.Application(middlewares=[self._record_middleware, self.faults.middleware])
        app.router.add_post("/v1", self._graphql)
        app.router.add_post("/v3/register", self._register)
        app.router.add_post("/v3/connect", self._connect)
        app.router.add_post("/v3/disconnect", self._disconnect)
        app.router.add_get("/v3/jobs/{id}", self._job_state)
        app.router.add_put("/v3/jobs/{id}/acquire", self._acquire)
        app.router.add_put("/v3/jobs/{id}/start", self._start)
        app.router.add_post("/v3/jobs/{id}/chunks", self._chunk)
        app.router.add_put("/v3/jobs/{id}/finish", self._finish)
        self.stacks.add_routes(app)
        # auto_decompress off: the fake checks that log chunks really arrive gzip'd.
        runner = web.AppRunner(app, auto_decompress=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def stop_async(self) -> None:
        self.faults.clear()  # hung requests answer now, so the server can stop
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = 0

    def start(self) -> Self:
        """Serve from a background thread with its own event loop (for synchronous tests)."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="fake-buildkite", daemon=True)
        thread.start()
        ready.wait(timeout=30)
        if failure:
            raise failure[0]
        self._thread, self._thread_loop = thread, loop
        return self

    def stop(self) -> None:
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop_async(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._thread = self._thread_loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()

    # -- test helpers -----------------------------------------------------------------------------

    def add_organization(self, slug: str, name: str | None = None) -> str:
        """Create an organization; returns its GraphQL ID."""
        with self._lock:
            org = _Organization(slug=slug, uuid=str(uuid_module.uuid4()), name=name or slug)
            self._orgs[slug] = org
            return org.id

    def add_job(
        self,
        *,
        org: str = DEFAULT_ORG,
        queue: str | None = "kubernetes",
        agent_query_rules: Iterable[str] | None = None,
        command: str = "echo hello",
        env: Mapping[str, str] | None = None,
        appended_env: Iterable[str] = (),
        plugins: Any = None,
        pipeline: str = "test-pipeline",
        branch: str = "main",
        commit: str = "HEAD",
        message: str = "Test build",
        source: str = "api",
        build_uuid: str | None = None,
        step_key: str | None = None,
        label: str | None = None,
        priority: int = 0,
        state: str = "SCHEDULED",
        scheduled_at: datetime | None = None,
        cluster_uuid: str | None = None,
        uuid: str | None = None,
    ) -> str:
        """Add a command job with a realistic ``BUILDKITE_*`` env; returns its UUID.

        ``agent_query_rules`` defaults to ``["queue=<queue>"]`` (none when ``queue`` is None).
        ``plugins`` (any JSON value, or a ready JSON string) becomes ``BUILDKITE_PLUGINS``; ``env`` is
        added last and wins over the generated variables; ``appended_env`` entries (``K=V``) are added
        after everything, verbatim, so a name can appear twice as a pipeline's env can make it. Jobs
        sharing ``build_uuid`` share a build; ``scheduled_at`` defaults to one second after the
        previous job, so order is deterministic.
        """
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self._lock:
            if org not in self._orgs:
                self.add_organization(org)
            seq = next(self._seq)
            job_uuid = uuid or str(uuid_module.uuid4())
            build = self._build_for(
                build_uuid=build_uuid,
                org=org,
                pipeline=pipeline,
                branch=branch,
                commit=commit,
                message=message,
                source=source,
            )
            rules = list(agent_query_rules) if agent_query_rules is not None else []
            if agent_query_rules is None and queue is not None:
                rules = [f"queue={queue}"]
            created = _EPOCH + timedelta(seconds=seq)
            job_env = _job_env(
                org=org,
                build=build,
                job_uuid=job_uuid,
                command=command,
                label=label,
                step_key=step_key,
                plugins=plugins,
                extra=dict(env or {}),
            ) + list(appended_env)
            self._jobs[job_uuid] = _Job(
                seq=seq,
                uuid=job_uuid,
                org=org,
                build=build,
                command=command,
                env=job_env,
                agent_query_rules=rules,
                label=label,
                step_key=step_key,
                priority=priority,
                state=state,
                cluster_uuid=cluster_uuid,
                created_at=created,
                scheduled_at=scheduled_at or (created if state != "PENDING" else None),
            )
            return job_uuid

    def add_jobs(self, count: int, **kwargs: Any) -> list[str]:
        """``add_job`` ``count`` times with the same arguments."""
        return [self.add_job(**kwargs) for _ in range(count)]

    def job(self, uuid: str) -> FakeJob:
        with self._lock:
            job = self._jobs[uuid]
            agent = self._agents.get(job.agent_uuid or "")
            return FakeJob(
                uuid=job.uuid,
                id=job.id,
                state=job.state,
                log=job.log,
                exit_status=job.exit_status,
                agent_name=agent.name if agent else None,
                build_uuid=job.build.uuid,
                build_url=job.build.url,
                agent_query_rules=tuple(job.agent_query_rules),
                env=tuple(job.env),
                node=_wire_node(job),
                chunks_failed_count=job.chunks_failed_count,
                reserved_by=self.stacks.reserved_by(job.uuid),
            )

    def jobs(self, state: str | None = None) -> list[FakeJob]:
        with self._lock:
            uuids = [job.uuid for job in self._jobs.values() if state is None or job.state == state]
        return [self.job(uuid) for uuid in uuids]

    def set_job_state(self, uuid: str, state: str) -> None:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self._lock:
            self._jobs[uuid].state = state

    def cancel_job(self, uuid: str) -> None:
        """Cancel as a user would in the UI; raises ``ValueError`` when the job is no longer cancelable."""
        with self._lock:
            self._cancel(self._jobs[uuid])

    def cancel_build(self, build_uuid: str) -> list[str]:
        """Cancel every cancelable job of the build (a user cancelling the build); returns their UUIDs."""
        with self._lock:
            jobs = [
                j for j in self._jobs.values() if j.build.uuid == build_uuid and j.state in CANCELABLE_STATES
            ]
            for job in jobs:
                self._cancel(job)
            return [job.uuid for job in jobs]

    @property
    def agents(self) -> list[FakeAgent]:
        with self._lock:
            return [
                FakeAgent(
                    uuid=a.uuid,
                    name=a.name,
                    meta_data=tuple(a.meta_data),
                    connected=a.connected,
                    disconnected=a.disconnected,
                    job_uuid=a.job_uuid,
                    registration=dict(a.registration),
                )
                for a in self._agents.values()
            ]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def graphql_requests(self, operation: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.api == "graphql" and (operation is None or r.operation_name == operation)
        ]

    def agent_requests(self, step: str | None = None) -> list[RecordedRequest]:
        return [
            r for r in self.requests if r.api == "agent" and (step is None or _agent_step(r.path) == step)
        ]

    def stacks_requests(self, operation: str | None = None) -> list[RecordedRequest]:
        """Requests to the Stacks API (``operation`` as in :data:`tests.fakes.stacks.STACK_OPERATIONS`)."""
        return [
            r
            for r in self.requests
            if r.api == "stacks" and (operation is None or stacks_operation(r.method, r.path) == operation)
        ]

    def inject_rate_limit(self, count: int = 1, retry_after: float | str | None = 5) -> None:
        """The next ``count`` GraphQL requests get HTTP 429 (with ``Retry-After`` unless None)."""
        self.inject_graphql_failure(429, count, retry_after=retry_after)

    def inject_graphql_failure(
        self, status: int, count: int = 1, *, retry_after: float | str | None = None, message: str = ""
    ) -> None:
        """The next ``count`` GraphQL requests get HTTP ``status`` and a JSON ``errors`` body."""
        with self._lock:
            text = message or f"Injected failure (HTTP {status})"
            if status == 429 and not message:
                text = "You have exceeded the GraphQL API rate limit"
            self._graphql_injections.append(_Injection(status, count, _header_value(retry_after), text))

    def inject_agent_failure(
        self, step: str, status: int, count: int = 1, *, retry_after: float | str | None = None
    ) -> None:
        """The next ``count`` calls of an agent API ``step`` (see ``AGENT_STEPS``) get HTTP ``status``."""
        if step not in self._agent_injections:
            raise ValueError(f"unknown agent API step {step!r}; expected one of {', '.join(AGENT_STEPS)}")
        with self._lock:
            text = "Job is waiting on a dependency" if status == 423 else f"Injected failure (HTTP {status})"
            self._agent_injections[step].append(_Injection(status, count, _header_value(retry_after), text))

    def inject_acquire_locked(self, count: int = 1, retry_after: float | str | None = None) -> None:
        """The next ``count`` acquisitions get HTTP 423 (job waiting on a dependency)."""
        self.inject_agent_failure("acquire", 423, count, retry_after=retry_after)

    # -- state transitions ------------------------------------------------------------------------

    def _build_for(
        self,
        *,
        build_uuid: str | None,
        org: str,
        pipeline: str,
        branch: str,
        commit: str,
        message: str,
        source: str,
    ) -> _Build:
        if build_uuid is not None and build_uuid in self._builds:
            return self._builds[build_uuid]
        self._build_numbers[f"{org}/{pipeline}"] += 1
        build = _Build(
            uuid=build_uuid or str(uuid_module.uuid4()),
            org=org,
            number=self._build_numbers[f"{org}/{pipeline}"],
            pipeline_slug=pipeline,
            pipeline_uuid=str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"{org}/{pipeline}")),
            branch=branch,
            commit=commit,
            message=message,
            source=source,
        )
        self._builds[build.uuid] = build
        return build

    def _cancel(self, job: _Job) -> None:
        if job.state not in CANCELABLE_STATES:
            raise ValueError(f"Job can't be canceled because it is {job.state.lower()}")
        job.state = "CANCELED"
        job.canceled_at = datetime.now(UTC)

    def _find_job_by_id(self, node_id: str) -> _Job | None:
        return next((job for job in self._jobs.values() if job.id == node_id), None)

    # -- GraphQL ----------------------------------------------------------------------------------

    async def _graphql(self, request: web.Request) -> web.Response:
        raw = await request.read()  # never await while holding the lock
        with self._lock:
            self.counters["graphql.requests"] += 1
            if request.headers.get("Authorization") != f"Bearer {self.graphql_token}":
                self.counters["graphql.unauthorized"] += 1
                return _errors_response(
                    401, "Authentication required. Please supply a valid API Access Token"
                )
            injected = _take(self._graphql_injections)
            if injected is not None:
                self.counters[f"graphql.injected_{injected.status}"] += 1
                headers = (
                    {"RateLimit-Remaining": "0", "RateLimit-Limit": "20000"} if injected.status == 429 else {}
                )
                if injected.retry_after is not None:
                    headers["Retry-After"] = injected.retry_after
                    headers["RateLimit-Reset"] = injected.retry_after
                return _errors_response(injected.status, injected.message, headers)
            try:
                payload = json.loads(raw)
            except ValueError:
                return _errors_response(400, "The request body is not valid JSON")
            if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
                return _errors_response(400, 'The request must be a JSON object with a "query" string')
            variables = payload.get("variables")
            if variables is not None and not isinstance(variables, dict):
                return _errors_response(400, '"variables" must be a JSON object')
            operation = payload.get("operationName")
            self.counters[f"graphql.{operation or 'anonymous'}"] += 1
            result = graphql_sync(
                self._schema,
                payload["query"],
                variable_values=variables,
                operation_name=operation if isinstance(operation, str) else None,
            )
            body: JSONDict = {}
            if result.errors:
                body["errors"] = [error.formatted for error in result.errors]
            if result.data is not None or not result.errors:
                body["data"] = result.data
            return web.json_response(body)

    def _resolve_organization(
        self, _root: Any, _info: Any, slug: str | None = None, uuid: str | None = None
    ) -> Any:
        org = self._orgs.get(slug or "")
        if org is None and uuid:
            org = next((o for o in self._orgs.values() if o.uuid == uuid), None)
        if org is None:
            return None
        return {
            "__typename": "Organization",
            "id": org.id,
            "slug": org.slug,
            "name": org.name,
            "uuid": org.uuid,
        }

    def _resolve_job(self, _root: Any, _info: Any, uuid: str) -> Any:
        job = self._jobs.get(uuid)
        return None if job is None else _graphql_node(job, self._agents)

    def _resolve_node(self, _root: Any, _info: Any, id: str) -> Any:
        job = self._find_job_by_id(id)
        if job is not None:
            return _graphql_node(job, self._agents)
        org = next((o for o in self._orgs.values() if o.id == id), None)
        return None if org is None else self._resolve_organization(None, None, slug=org.slug)

    def _resolve_org_jobs(self, org: JSONDict, _info: Any, **args: Any) -> JSONDict:
        if args.get("last") is not None or args.get("before") is not None:
            raise GraphQLError("The fake Buildkite only paginates forwards (first/after)")
        first = args.get("first")
        if first is None:
            raise GraphQLError(
                "You must provide a `first` or `last` value to properly paginate the `jobs` connection."
            )
        if not 0 <= first <= MAX_PAGE_SIZE:
            raise GraphQLError(f"`first` must be between 0 and {MAX_PAGE_SIZE}")
        order = args.get("order") or "RECENTLY_CREATED"
        matching = sorted(
            (job for job in self._jobs.values() if job.org == org["slug"] and _matches(job, args)),
            key=lambda job: _sort_key(job, order),
        )
        after = args.get("after")
        remaining = matching
        if after is not None:
            cursor_key = _decode_cursor(after, order)
            remaining = [job for job in matching if _sort_key(job, order) > cursor_key]
        page = remaining[:first]
        edges = [
            {"cursor": _encode_cursor(order, _sort_key(job, order)), "node": _graphql_node(job, self._agents)}
            for job in page
        ]
        return {
            "count": len(matching),
            "edges": edges,
            "pageInfo": {
                "hasNextPage": len(remaining) > len(page),
                "hasPreviousPage": len(remaining) < len(matching),
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }

    def _resolve_cancel(self, _root: Any, _info: Any, input: JSONDict) -> JSONDict:
        job = self._find_job_by_id(str(input["id"]))
        if job is None:
            raise GraphQLError(f"No job could be found with the ID {input['id']!r}")
        try:
            self._cancel(job)
        except ValueError as exc:
            raise GraphQLError(str(exc)) from None
        self.counters["graphql.cancelled_jobs"] += 1
        return {
            "clientMutationId": input.get("clientMutationId"),
            "jobTypeCommand": _graphql_node(job, self._agents),
        }

    # -- Agent REST API ---------------------------------------------------------------------------

    async def _register(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        with self._lock:
            if (failure := self._agent_gate("register", request)) is not None:
                return failure
            token = _token(request)
            acquisition_job = self.stacks.job_for_token(token)
            if token != self.agent_token and acquisition_job is None:
                return _message(401, "Invalid agent registration token")
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                return _message(422, "name is required")
            meta_data = body.get("meta_data") or []
            if not isinstance(meta_data, list) or not all(isinstance(tag, str) for tag in meta_data):
                return _message(422, "meta_data must be a list of strings")
            agent = _Agent(
                uuid=str(uuid_module.uuid4()),
                name=body["name"],
                access_token=f"fake-access-{uuid_module.uuid4().hex}",
                meta_data=list(meta_data),
                registration=body,
                acquisition_job=acquisition_job,
            )
            self._agents[agent.uuid] = agent
            return web.json_response(
                {
                    "id": agent.uuid,
                    "name": agent.name,
                    "access_token": agent.access_token,
                    "endpoint": self.agent_url,
                    "request_headers": {"X-Buildkite-Fake-Agent": agent.uuid},
                    "ping_interval": 10,
                    "job_status_interval": 5,
                    "heartbeat_interval": 60,
                    "meta_data": agent.meta_data,
                }
            )

    async def _connect(self, request: web.Request) -> web.Response:
        with self._lock:
            agent_or_failure = self._authorised_agent("connect", request)
            if isinstance(agent_or_failure, web.Response):
                return agent_or_failure
            agent_or_failure.connected = True
            return web.json_response({"id": agent_or_failure.uuid, "connection_state": "connected"})

    async def _disconnect(self, request: web.Request) -> web.Response:
        with self._lock:
            agent_or_failure = self._authorised_agent("disconnect", request)
            if isinstance(agent_or_failure, web.Response):
                return agent_or_failure
            agent_or_failure.connected = False
            agent_or_failure.disconnected = True
            return web.json_response({"id": agent_or_failure.uuid, "connection_state": "disconnected"})

    async def _job_state(self, request: web.Request) -> web.Response:
        with self._lock:
            agent_or_failure = self._authorised_agent("job", request)
            if isinstance(agent_or_failure, web.Response):
                return agent_or_failure
            job = self._jobs.get(request.match_info["id"])
            if job is None:
                return _message(404, "No job found")
            return web.json_response({"state": job.state.lower()})

    async def _acquire(self, request: web.Request) -> web.Response:
        with self._lock:
            agent = self._authorised_agent("acquire", request)
            if isinstance(agent, web.Response):
                return agent
            if not agent.connected:
                return _message(422, "The agent must connect before acquiring a job")
            job = self._jobs.get(request.match_info["id"])
            if job is None:
                return _message(404, "No job found")
            if job.state != "SCHEDULED":
                self.counters["agent.acquire_rejected"] += 1
                return _message(422, f"Job is {job.state.lower()} and cannot be acquired")
            if agent.acquisition_job is not None and agent.acquisition_job != job.uuid:
                self.counters["agent.acquire_rejected"] += 1
                return _message(422, "This agent's job acquisition token is for another job")
            if not _tags_satisfy(agent.meta_data, job.agent_query_rules):
                self.counters["agent.acquire_rejected"] += 1
                return _message(422, "The agent's tags do not match the job's agent query rules")
            job.state = "ACCEPTED"
            job.agent_uuid = agent.uuid
            agent.job_uuid = job.uuid
            self.stacks.acquired(job.uuid)
            env = dict(entry.split("=", 1) for entry in job.env if "=" in entry)
            return web.json_response(
                {
                    "id": job.uuid,
                    "endpoint": self.agent_url,
                    "state": "accepted",
                    "env": env,
                    "step": {"command": job.command},
                    "token": f"fake-job-token-{job.uuid}",
                    "chunks_max_size_bytes": self.chunks_max_size_bytes,
                    "log_max_size_bytes": 1024 * 1024 * 1024,
                }
            )

    async def _start(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        with self._lock:
            job_or_failure = self._owned_job("start", request, {"ACCEPTED"})
            if isinstance(job_or_failure, web.Response):
                return job_or_failure
            job = job_or_failure
            job.state = "RUNNING"
            started = body.get("started_at") if isinstance(body, dict) else None
            job.started_at = _parse_time(started) or datetime.now(UTC)
            return web.json_response({"id": job.uuid, "state": "running"})

    async def _chunk(self, request: web.Request) -> web.Response:
        raw = await request.read()
        with self._lock:
            job_or_failure = self._owned_job("chunks", request, {"RUNNING"})
            if isinstance(job_or_failure, web.Response):
                return job_or_failure
            job = job_or_failure
            try:
                sequence, offset, size = (int(request.query[name]) for name in ("sequence", "offset", "size"))
            except (KeyError, ValueError):
                return _message(400, "sequence, offset and size query parameters are required integers")
            data = raw
            if request.headers.get("Content-Encoding", "").lower() == "gzip":
                try:
                    data = gzip.decompress(raw)
                except (OSError, EOFError, binascii.Error):
                    return _message(400, "The chunk body is not valid gzip data")
            if len(data) != size:
                return _message(422, f"The chunk is {len(data)} bytes but size says {size}")
            if size > self.chunks_max_size_bytes:
                return _message(422, f"The chunk exceeds {self.chunks_max_size_bytes} bytes")
            job.chunks[sequence] = (offset, data)
            return web.json_response({"id": str(uuid_module.uuid4())}, status=201)

    async def _finish(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        with self._lock:
            job_or_failure = self._owned_job("finish", request, {"RUNNING"})
            if isinstance(job_or_failure, web.Response):
                return job_or_failure
            job = job_or_failure
            if not isinstance(body, dict) or body.get("exit_status") in (None, ""):
                return _message(422, "exit_status is required")
            job.exit_status = str(body["exit_status"])
            failed = body.get("chunks_failed_count")
            job.chunks_failed_count = failed if isinstance(failed, int) else None
            job.finished_at = _parse_time(body.get("finished_at")) or datetime.now(UTC)
            job.state = "FINISHED"
            return web.json_response({"id": job.uuid, "state": "finished"})

    def _agent_gate(self, step: str, request: web.Request) -> web.Response | None:
        self.counters[f"agent.{step}"] += 1
        injected = _take(self._agent_injections[step])
        if injected is None:
            return None
        self.counters[f"agent.{step}_injected_{injected.status}"] += 1
        headers = {"Retry-After": injected.retry_after} if injected.retry_after is not None else {}
        return _message(injected.status, injected.message, headers)

    def _authorised_agent(self, step: str, request: web.Request) -> _Agent | web.Response:
        if (failure := self._agent_gate(step, request)) is not None:
            return failure
        token = _token(request)
        agent = next((a for a in self._agents.values() if a.access_token == token), None)
        if agent is None or agent.disconnected:
            return _message(401, "Invalid or revoked agent access token")
        return agent

    def _owned_job(self, step: str, request: web.Request, states: set[str]) -> _Job | web.Response:
        agent = self._authorised_agent(step, request)
        if isinstance(agent, web.Response):
            return agent
        job = self._jobs.get(request.match_info["id"])
        if job is None:
            return _message(404, "No job found")
        if job.agent_uuid != agent.uuid:
            return _message(422, "This job is not assigned to this agent")
        if job.state not in states:
            return _message(422, f"Job is {job.state.lower()}; cannot {step}")
        return job

    # -- recording --------------------------------------------------------------------------------

    @web.middleware
    async def _record_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        received_at = time.monotonic()
        raw = await request.read()
        response = cast(web.StreamResponse, await handler(request))
        body: Any = raw
        if request.content_type == "application/json":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw
        api = _api_of(request)
        operation = body.get("operationName") if api == "graphql" and isinstance(body, dict) else None
        variables = body.get("variables") if api == "graphql" and isinstance(body, dict) else None
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    api=api,
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    body=body,
                    status=response.status,
                    operation_name=operation if isinstance(operation, str) else None,
                    variables=variables if isinstance(variables, dict) else None,
                    response=_json_of(response),
                    received_at=received_at,
                    raw_path=request.raw_path.split("?", 1)[0],
                )
            )
        return response


# -- GraphQL plumbing ---------------------------------------------------------------------------------


def _executable_schema(fake: FakeBuildkite) -> GraphQLSchema:
    """A private copy of the shipped schema with the fake's resolvers bound to it."""
    schema = build_schema(schema_sdl())

    def bind(type_name: str, field_name: str, resolver: Resolver) -> None:
        object_type = schema.type_map[type_name]
        assert isinstance(object_type, GraphQLObjectType)
        object_type.fields[field_name].resolve = resolver

    bind("Query", "organization", fake._resolve_organization)
    bind("Query", "job", fake._resolve_job)
    bind("Query", "node", fake._resolve_node)
    bind("Organization", "jobs", fake._resolve_org_jobs)
    bind("Mutation", "jobTypeCommandCancel", fake._resolve_cancel)
    return schema


def _matches(job: _Job, args: Mapping[str, Any]) -> bool:
    """Buildkite's ``Organization.jobs`` filters, as the fake understands them."""
    states = args.get("state")
    if states is not None and job.state not in states:
        return False
    types = args.get("type")
    if types is not None and "COMMAND" not in types:
        return False  # the fake only has command jobs
    rules = args.get("agentQueryRules")
    if rules is not None and not all(rule in job.agent_query_rules for rule in rules):
        return False
    cluster = args.get("cluster")
    if cluster is not None:
        if job.cluster_uuid is None or graphql_id("Cluster", job.cluster_uuid) != cluster:
            return False
    elif args.get("clustered") is False and job.cluster_uuid is not None:
        return False
    priority = args.get("priority")
    return not (priority and priority.get("number") is not None and job.priority not in priority["number"])


def _sort_key(job: _Job, order: str) -> tuple[float, int]:
    """Newest first: by ``scheduledAt`` for RECENTLY_ASSIGNED, by ``createdAt`` otherwise."""
    moment = (job.scheduled_at or job.created_at) if order == "RECENTLY_ASSIGNED" else job.created_at
    return (-moment.timestamp(), -job.seq)


def _encode_cursor(order: str, key: tuple[float, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps([order, key[0], key[1]]).encode()).decode("ascii")


def _decode_cursor(cursor: str, order: str) -> tuple[float, int]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        cursor_order, first, second = decoded
        if cursor_order != order:
            raise ValueError(cursor_order)
        return (float(first), int(second))
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise GraphQLError(f"Invalid cursor {cursor!r}") from None


_SOURCE_TYPES = {
    "api": "BuildSourceAPI",
    "ui": "BuildSourceFrontend",
    "schedule": "BuildSourceSchedule",
    "trigger_job": "BuildSourceTriggerJob",
    "webhook": "BuildSourceWebhook",
}
"""``source`` of :meth:`FakeBuildkite.add_job` (the ``BUILDKITE_SOURCE`` spelling) → its GraphQL type."""


def _pipeline_node(build: _Build) -> JSONDict:
    return {
        "id": graphql_id("Pipeline", build.pipeline_uuid),
        "uuid": build.pipeline_uuid,
        "slug": build.pipeline_slug,
        "name": build.pipeline_slug,
        "url": f"https://buildkite.com/{build.org}/{build.pipeline_slug}",
        "repository": {"url": _repository_url(build.pipeline_slug)},
    }


def _repository_url(pipeline_slug: str) -> str:
    return f"https://github.com/example/{pipeline_slug}.git"


def _wire_node(job: _Job) -> JSONDict:
    """The fields of the scheduled-jobs query, in Buildkite's wire shape."""
    build = job.build
    return {
        "uuid": job.uuid,
        "env": list(job.env),
        "scheduledAt": _iso(job.scheduled_at),
        "agentQueryRules": list(job.agent_query_rules),
        "command": job.command,
        "priority": {"number": job.priority},
        "pipeline": {
            "slug": build.pipeline_slug,
            "name": build.pipeline_slug,
            "repository": {"url": _repository_url(build.pipeline_slug)},
        },
        "build": {
            "number": build.number,
            "branch": build.branch,
            "commit": build.commit,
            "source": {"name": build.source},
            "message": build.message,
        },
        "step": None if job.step_key is None else {"key": job.step_key},
    }


def _graphql_node(job: _Job, agents: Mapping[str, _Agent]) -> JSONDict:
    """:func:`_full_node` with what graphql-core needs to resolve interface types (``__typename``)."""
    node = _full_node(job, agents)
    source = node["build"]["source"]
    node["build"]["source"] = {**source, "__typename": _SOURCE_TYPES.get(source["name"], "BuildSourceAPI")}
    return node


def _full_node(job: _Job, agents: Mapping[str, _Agent]) -> JSONDict:
    build = job.build
    pipeline = _pipeline_node(build)
    agent = agents.get(job.agent_uuid or "")
    return {
        **_wire_node(job),
        "__typename": "JobTypeCommand",
        "id": job.id,
        "state": job.state,
        "label": job.label,
        "url": f"{build.url}#{job.uuid}",
        "exitStatus": job.exit_status,
        "passed": job.state == "FINISHED" and job.exit_status == "0",
        "createdAt": _iso(job.created_at),
        "runnableAt": _iso(job.scheduled_at),
        "startedAt": _iso(job.started_at),
        "finishedAt": _iso(job.finished_at),
        "canceledAt": _iso(job.canceled_at),
        "pipeline": pipeline,
        "build": {
            "id": graphql_id("Build", build.uuid),
            "uuid": build.uuid,
            "number": build.number,
            "url": build.url,
            "branch": build.branch,
            "commit": build.commit,
            "message": build.message,
            "source": {"name": build.source},
            "state": "CANCELED" if job.state == "CANCELED" else "SCHEDULED",
            "pipeline": pipeline,
        },
        "step": None
        if job.step_key is None
        else {
            "key": job.step_key,
            "uuid": str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"step/{job.uuid}")),
        },
        "cluster": None
        if job.cluster_uuid is None
        else {
            "id": graphql_id("Cluster", job.cluster_uuid),
            "uuid": job.cluster_uuid,
            "name": "test-cluster",
            "description": None,
        },
        "agent": None
        if agent is None
        else {
            "id": graphql_id("Agent", agent.uuid),
            "uuid": agent.uuid,
            "name": agent.name,
            "hostname": agent.registration.get("hostname"),
            "metaData": list(agent.meta_data),
            "connectionState": "connected" if agent.connected else "disconnected",
        },
    }


def _job_env(
    *,
    org: str,
    build: _Build,
    job_uuid: str,
    command: str,
    label: str | None,
    step_key: str | None,
    plugins: Any,
    extra: dict[str, str],
) -> list[str]:
    pipeline = build.pipeline_slug
    env: dict[str, str] = {
        "BUILDKITE": "true",
        "CI": "true",
        "BUILDKITE_ORGANIZATION_SLUG": org,
        "BUILDKITE_PIPELINE_SLUG": pipeline,
        "BUILDKITE_PIPELINE_NAME": pipeline,
        "BUILDKITE_PIPELINE_ID": build.pipeline_uuid,
        "BUILDKITE_PIPELINE_PROVIDER": "github",
        "BUILDKITE_PIPELINE_DEFAULT_BRANCH": "main",
        "BUILDKITE_REPO": _repository_url(pipeline),
        "BUILDKITE_BUILD_ID": build.uuid,
        "BUILDKITE_BUILD_NUMBER": str(build.number),
        "BUILDKITE_BUILD_URL": build.url,
        "BUILDKITE_BRANCH": build.branch,
        "BUILDKITE_TAG": "",
        "BUILDKITE_COMMIT": build.commit,
        "BUILDKITE_MESSAGE": build.message,
        "BUILDKITE_SOURCE": build.source,
        "BUILDKITE_BUILD_CREATOR": "Test User",
        "BUILDKITE_BUILD_CREATOR_EMAIL": "test@example.com",
        "BUILDKITE_PULL_REQUEST": "false",
        "BUILDKITE_JOB_ID": job_uuid,
        "BUILDKITE_STEP_ID": str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"step/{job_uuid}")),
        "BUILDKITE_LABEL": label if label is not None else command,
        "BUILDKITE_COMMAND": command,
        "BUILDKITE_TIMEOUT": "false",
        "BUILDKITE_RETRY_COUNT": "0",
        "BUILDKITE_ARTIFACT_PATHS": "",
    }
    if step_key is not None:
        env["BUILDKITE_STEP_KEY"] = step_key
    if plugins is not None:
        env["BUILDKITE_PLUGINS"] = (
            plugins if isinstance(plugins, str) else json.dumps(plugins, separators=(",", ":"))
        )
    env.update(extra)
    return [f"{name}={value}" for name, value in env.items()]


# -- HTTP helpers -------------------------------------------------------------------------------------


def _json_of(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return None
    body = response.body
    try:
        return json.loads(body) if isinstance(body, bytes | bytearray) else None
    except ValueError:
        return None


def _take(injections: list[_Injection]) -> _Injection | None:
    while injections:
        injection = injections[0]
        if injection.remaining > 0:
            injection.remaining -= 1
            return injection
        injections.pop(0)
    return None


def _header_value(value: float | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return f"{value:g}"


def _errors_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"errors": [{"message": message}]}, status=status, headers=headers)


def _message(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def _token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme == "Token" and token else None


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _tags_satisfy(agent_tags: Iterable[str], job_rules: Iterable[str]) -> bool:
    """Every ``k=v`` rule of the job must be met by an agent tag (a rule value ``*`` accepts any)."""
    tags = dict(tag.split("=", 1) for tag in agent_tags if "=" in tag)
    for rule in job_rules:
        key, _, value = rule.partition("=")
        if key not in tags or (value != "*" and tags[key] != value):
            return False
    return True


def _agent_step(path: str) -> str:
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[1] == "jobs":
        return parts[3]
    if len(parts) == 3 and parts[1] == "jobs":
        return "job"
    return parts[-1]


# -- fault injection: outages, throttling and hangs, per API ---------------------------------------

FaultAPI = Literal["graphql", "agent", "stacks"]
FAULT_APIS: tuple[FaultAPI, ...] = ("graphql", "agent", "stacks")


def _api_of(request: web.Request) -> FaultAPI:
    """Which of the fake's APIs a request is for."""
    if request.path == "/v1":
        return "graphql"
    return "stacks" if stacks_operation(request.method, request.path) is not None else "agent"


HANG_STATUS = 504
"""What a hung request finally answers (if the client is still there): a gateway timeout."""
_HANG_POLL_SECONDS = 0.05


@dataclass
class Fault:
    """One injected fault. ``remaining`` requests are affected (``None``: every request until
    :meth:`FaultInjector.clear`); ``only`` limits it to one GraphQL operation or agent API step."""

    api: FaultAPI
    status: int | None
    """The HTTP status answered at once; ``None`` for a hang."""
    hang_seconds: float
    retry_after: str | None
    remaining: int | None
    only: str | None
    hits: int = 0
    released: bool = False
    passes: bool = False
    """A hold: once released, the request goes on to the fake as if nothing happened."""

    def release(self) -> None:
        """Let the requests this fault holds go on (a hang answers 504, a hold is served)."""
        self.released = True


class FaultInjector:
    """Makes the fake misbehave like a real API having a bad day, for fault tests.

    ``fail`` answers an HTTP status (500s, 429 with ``Retry-After``) and ``hang`` holds requests
    without answering, each for a number of requests or until :meth:`clear`. The fake's state is not
    touched by a request a fault answered: it never reached "Buildkite". Faults are checked in the
    order they were injected; the first that applies answers. Thread-safe (the test thread injects
    while the server thread serves).
    """

    def __init__(self, fake: FakeBuildkite) -> None:
        self._fake = fake
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def fail(
        self,
        api: FaultAPI,
        status: int = 500,
        *,
        count: int | None = None,
        retry_after: float | str | None = None,
        only: str | None = None,
    ) -> Fault:
        """Answer ``status`` to the next ``count`` requests to ``api`` (all of them until cleared)."""
        return self._add(Fault(api, status, 0.0, _header_value(retry_after), count, only))

    def hang(
        self, api: FaultAPI, seconds: float = 3600.0, *, count: int | None = None, only: str | None = None
    ) -> Fault:
        """Hold the next ``count`` requests to ``api`` for ``seconds`` (or until cleared), then answer 504."""
        return self._add(Fault(api, None, seconds, None, count, only))

    def hold(self, api: FaultAPI, *, count: int | None = None, only: str | None = None) -> Fault:
        """Hold the next ``count`` requests to ``api`` until :meth:`Fault.release` (or :meth:`clear`),
        then serve them normally: a slow network or server, for making two clients' calls overlap."""
        return self._add(Fault(api, None, 3600.0, None, count, only, passes=True))

    def clear(self, api: FaultAPI | None = None) -> None:
        """Remove the faults of ``api`` (of both APIs when ``None``) and let hung requests go."""
        with self._lock:
            for fault in self._faults:
                if api is None or fault.api == api:
                    fault.released = True
            self._faults = [fault for fault in self._faults if not fault.released]

    def hits(self, api: FaultAPI | None = None) -> int:
        """How many requests injected faults have answered (or held) so far."""
        with self._lock:
            return sum(fault.hits for fault in self._faults if api is None or fault.api == api)

    def _add(self, fault: Fault) -> Fault:
        if fault.api not in FAULT_APIS:
            raise ValueError(f"unknown API {fault.api!r}; expected one of {', '.join(FAULT_APIS)}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def _take(self, api: FaultAPI, name: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.api != api or (fault.only is not None and fault.only != name):
                    continue
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        continue
                    fault.remaining -= 1
                fault.hits += 1
                self._fake.counters[f"fault.{api}.{fault.status or 'hang'}"] += 1
                return fault
        return None

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        api = _api_of(request)
        fault = self._take(api, await _request_name(api, request))
        if fault is None:
            return cast(web.StreamResponse, await handler(request))
        if fault.status is None:
            loop = asyncio.get_running_loop()
            until = loop.time() + fault.hang_seconds
            while not fault.released and loop.time() < until:
                await asyncio.sleep(_HANG_POLL_SECONDS)
            if fault.passes:
                return cast(web.StreamResponse, await handler(request))
            return _fault_response(api, HANG_STATUS, "Injected hang: no answer in time", None)
        return _fault_response(
            api, fault.status, f"Injected failure (HTTP {fault.status})", fault.retry_after
        )


async def _request_name(api: FaultAPI, request: web.Request) -> str | None:
    """The GraphQL operation name, or the agent API step, a request is for."""
    if api == "agent":
        return _agent_step(request.path)
    if api == "stacks":
        return stacks_operation(request.method, request.path)
    body = await _json_body(request)
    name = body.get("operationName") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def _fault_response(api: FaultAPI, status: int, message: str, retry_after: str | None) -> web.Response:
    headers: dict[str, str] = {}
    if status == 429:
        message = "You have exceeded the API rate limit"
        headers = {"RateLimit-Remaining": "0", "RateLimit-Limit": "20000"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
        if status == 429:
            headers["RateLimit-Reset"] = retry_after
    if api == "graphql":
        return _errors_response(status, message, headers)
    return _message(status, message, headers)
