"""Async client for the Buildkite GraphQL API: list scheduled jobs, read a job's state, cancel a job.

It speaks through ``gql`` over aiohttp and validates each document against the shipped schema subset
once, before its first send (not on every request: see ``schema.checked_document``). Two things the
stock ``gql`` transport hides are recovered here:

* the HTTP status and headers of every response (a trace hook on the aiohttp session records them per
  request), because Buildkite answers a rate-limited call with HTTP 429 *and* a JSON ``errors`` body,
  which ``gql`` would otherwise report as an ordinary GraphQL error without the wait hint;
* a clean error surface: every failure becomes one of :mod:`engine.buildkite.errors` with a one-line
  message, raised ``from None`` so no chained aiohttp exception (whose request info holds the
  ``Authorization`` header) can carry the token into a log.

Unlike upstream (which looked at the first 100 jobs only, behaviour spec §8.2) the job listing follows
``pageInfo.endCursor``, page by page, so a caller can hand the first jobs on while later pages are
still on their way, and can resume a walk at a cursor. Every request is bounded by ``timeout`` (the
``http-timeout`` config key; upstream hard-coded 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace, TracebackType
from typing import Any, Self

import aiohttp
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportError, TransportQueryError
from graphql import GraphQLError

import engine
from engine.buildkite import documents
from engine.buildkite.errors import BuildkiteAPIError, InvalidOrganizationError, RateLimitedError
from engine.buildkite.http_headers import DEFAULT_RATE_LIMIT_WAIT, DEFAULT_TIMEOUT, redact, wait_hint
from engine.buildkite.ids import cluster_graphql_id, is_uuid
from engine.buildkite.pages import JobPage
from engine.buildkite.schema import checked_document
from engine.model.jsonvalue import JSON, JSONObject

__all__ = [
    "DEFAULT_GRAPHQL_ENDPOINT",
    "DEFAULT_TIMEOUT",
    "BuildkiteAPIError",
    "BuildkiteGraphQL",
    "CommandJobRef",
    "InvalidOrganizationError",
    "JobPage",
    "RateLimitedError",
    "ScheduledJob",
]

DEFAULT_GRAPHQL_ENDPOINT = "https://graphql.buildkite.com/v1"
USER_AGENT = f"agent-stack-policy/{engine.__version__}"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """A scheduled command job: its UUID plus the ``JobTypeCommand`` node exactly as the API sent it."""

    uuid: str
    raw: JSONObject

    @classmethod
    def from_node(cls, node: JSONObject) -> ScheduledJob:
        """Wrap a wire-shape node; the node is kept as is (never copied or normalised)."""
        return cls(uuid=str(node["uuid"]), raw=node)


@dataclass(frozen=True)
class CommandJobRef:
    """What ``GetCommandJob`` tells about a command job: its GraphQL node ID and its state."""

    id: str
    state: str


@dataclass
class _ResponseInfo:
    """Filled in by the aiohttp trace hook for one request."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


async def _record_response(
    _session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    info = context.trace_request_ctx
    if isinstance(info, _ResponseInfo):
        info.status = params.response.status
        info.headers = dict(params.response.headers)


class BuildkiteGraphQL:
    """One connection to Buildkite's GraphQL endpoint, opened on first use and closed by :meth:`close`."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_timeout: Callable[[str], None] | None = None,
    ) -> None:
        """``timeout``: seconds one request may take; ``on_timeout(operation)`` is called for each
        request that got no answer in time (the controller counts them)."""
        self._endpoint = endpoint or DEFAULT_GRAPHQL_ENDPOINT
        self._token = token
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._client: Client | None = None
        self._session: AsyncClientSession | None = None
        self._connect_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def scheduled_jobs(self, org: str, queue: str, cluster_uuid: str = "") -> list[JSONObject]:
        """Every scheduled command job of ``org`` targeting ``queue``, as wire-shape ``JobTypeCommand`` nodes.

        All pages of :meth:`scheduled_job_pages`, joined (a job seen on two pages is returned once).
        Raises :class:`InvalidOrganizationError` when the slug names no visible organization.
        """
        nodes: list[JSONObject] = []
        async with contextlib.aclosing(self.scheduled_job_pages(org, queue, cluster_uuid)) as pages:
            async for page in pages:
                nodes.extend(page.nodes)
        return nodes

    async def scheduled_job_pages(
        self,
        org: str,
        queue: str,
        cluster_uuid: str = "",
        *,
        after: str | None = None,
        max_pages: int | None = None,
    ) -> AsyncGenerator[JobPage, None]:
        """The scheduled command jobs of ``org`` targeting ``queue``, one page (100 jobs) at a time.

        Each page is yielded as soon as it arrives, so a caller can act on the first jobs while later
        pages are still being fetched. The walk starts at ``after`` (a cursor from an earlier page;
        ``None`` for the first page) and stops after ``max_pages`` pages or at the last page; a page's
        ``end_cursor`` says where the next one starts (``None`` on the last page).

        Unclustered: rules ``["queue=<queue>"]`` are always sent (even for an empty queue) with
        ``clustered: false``. Clustered: the cluster filter is used and the rules only when ``queue`` is
        set, as upstream does. A cursor that does not advance ends the walk (logged) instead of
        looping, and a job already yielded on an earlier page of this walk is left out.
        Raises :class:`InvalidOrganizationError` when the slug names no visible organization.
        """
        variables: dict[str, JSON]
        if cluster_uuid:
            operation, document = "GetScheduledJobsClustered", documents.GET_SCHEDULED_JOBS_CLUSTERED
            variables = {
                "slug": org,
                "agentQueryRules": [f"queue={queue}"] if queue else None,
                "cluster": cluster_graphql_id(cluster_uuid),
            }
        else:
            operation, document = "GetScheduledJobs", documents.GET_SCHEDULED_JOBS
            variables = {"slug": org, "agentQueryRules": [f"queue={queue}"]}

        seen_uuids: set[str] = set()
        seen_cursors: set[str] = set() if after is None else {after}
        fetched = 0
        while True:
            page_variables = dict(variables) if after is None else {**variables, "after": after}
            data = await self._execute(operation, document, page_variables)
            fetched += 1
            connection = _jobs_connection(data, org)
            nodes: list[JSONObject] = []
            for node in _edge_nodes(connection):
                uuid = node.get("uuid")
                if isinstance(uuid, str) and uuid not in seen_uuids:
                    seen_uuids.add(uuid)
                    nodes.append(node)
            cursor = _next_cursor(connection)
            if cursor is not None and cursor in seen_cursors:
                _log.warning(
                    "%s: Buildkite reported more pages but the cursor did not advance; "
                    "stopping after %d jobs",
                    operation,
                    len(seen_uuids),
                )
                cursor = None
            yield JobPage(nodes=nodes, end_cursor=cursor)
            if cursor is None or (max_pages is not None and fetched >= max_pages):
                return
            seen_cursors.add(cursor)
            after = cursor

    async def command_job(self, uuid: str) -> CommandJobRef | None:
        """The node ID and state of the command job with this UUID; ``None`` when there is none."""
        data = await self._execute("GetCommandJob", documents.GET_COMMAND_JOB, {"uuid": uuid})
        job = data.get("job")
        if not isinstance(job, dict) or not isinstance(job.get("state"), str):
            return None  # no such job, or not a command job (the fragment selected nothing)
        return CommandJobRef(id=str(job["id"]), state=job["state"])

    async def job_fixture(self, uuid: str) -> JSONObject | None:
        """The command job with this UUID as a wire-shape node (``engine fixture``); ``None`` when there
        is no such command job."""
        data = await self._execute("GetJobFixture", documents.GET_JOB_FIXTURE, {"uuid": uuid})
        job = data.get("job")
        if not isinstance(job, dict) or not isinstance(job.get("uuid"), str):
            return None
        return job

    async def job_states(self, uuids: Sequence[str]) -> dict[str, str | None]:
        """Each job's ``JobStates`` value (``None`` when not found), asking about up to
        ``MAX_JOB_STATES_PER_REQUEST`` jobs per request instead of one request per job."""
        states: dict[str, str | None] = {}
        unique = list(dict.fromkeys(uuids))
        for start in range(0, len(unique), documents.MAX_JOB_STATES_PER_REQUEST):
            chunk = unique[start : start + documents.MAX_JOB_STATES_PER_REQUEST]
            data = await self._execute(
                "GetCommandJobStates",
                documents.get_command_job_states(len(chunk)),
                {f"u{i}": uuid for i, uuid in enumerate(chunk)},
            )
            for i, uuid in enumerate(chunk):
                job = data.get(f"j{i}")
                states[uuid] = (
                    job["state"] if isinstance(job, dict) and isinstance(job.get("state"), str) else None
                )
        return states

    async def job_state(self, uuid: str) -> str | None:
        """The job's ``JobStates`` value (``"SCHEDULED"``, ``"RUNNING"``, ...), or ``None`` when not found."""
        job = await self.command_job(uuid)
        return job.state if job is not None else None

    async def cancel_job(self, job_id: str, client_mutation_id: str) -> None:
        """Cancel a command job with ``jobTypeCommandCancel``.

        ``job_id`` is the job's GraphQL node ID. A job UUID is also accepted: upstream v0.20.2 passed
        the UUID where the schema wants a node ID (a bug later fixed by looking the ID up), so a UUID is
        first resolved through ``GetCommandJob``.
        """
        node_id = job_id
        if is_uuid(job_id):
            job = await self.command_job(job_id)
            if job is None:
                raise BuildkiteAPIError(f"CancelCommandJob: no command job with UUID {job_id}")
            node_id = job.id
        await self._execute(
            "CancelCommandJob",
            documents.CANCEL_COMMAND_JOB,
            {"input": {"clientMutationId": client_mutation_id, "id": node_id}},
        )

    async def close(self) -> None:
        """Close the HTTP session (safe to call more than once, or without any request made)."""
        async with self._connect_lock:
            client, self._client, self._session = self._client, None, None
            if client is not None:
                await client.close_async()  # type: ignore[no-untyped-call]  # gql leaves it unannotated

    async def _session_for_request(self) -> AsyncClientSession:
        async with self._connect_lock:
            if self._session is None:
                trace = aiohttp.TraceConfig()
                trace.on_request_end.append(_record_response)
                transport = AIOHTTPTransport(
                    url=self._endpoint,
                    headers={"Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT},
                    client_session_args={
                        "timeout": aiohttp.ClientTimeout(total=self._timeout),
                        "trace_configs": [trace],
                    },
                )
                client = Client(transport=transport, execute_timeout=self._timeout)
                self._session = await client.connect_async()  # type: ignore[no-untyped-call]
                self._client = client
            return self._session

    async def _execute(self, operation: str, document: str, variables: dict[str, JSON]) -> JSONObject:
        session = await self._session_for_request()
        info = _ResponseInfo()
        failure: str
        try:
            request = GraphQLRequest(
                checked_document(document), variable_values=variables, operation_name=operation
            )
            result = await session.execute(
                request, get_execution_result=True, extra_args={"trace_request_ctx": info}
            )
        except TransportQueryError as exc:
            failure = _graphql_messages(exc.errors) or "the API returned an error"
        except TimeoutError:
            failure = self._timed_out(operation)
        except (TransportError, aiohttp.ClientError, GraphQLError, OSError) as exc:
            failure = (
                self._timed_out(operation) if isinstance(exc.__cause__, TimeoutError) else self._describe(exc)
            )
        else:
            if info.status == 429:
                raise RateLimitedError(wait_hint(info.headers, DEFAULT_RATE_LIMIT_WAIT), operation)
            data = result.data
            return data if isinstance(data, dict) else {}
        raise self._failure(operation, info, failure) from None

    def _timed_out(self, operation: str) -> str:
        if self._on_timeout is not None:
            self._on_timeout(operation)
        return f"no response within {self._timeout:g}s"

    def _describe(self, exc: BaseException) -> str:
        cause = exc.__cause__
        text = str(exc) or (f"{type(cause).__name__}: {cause}" if cause is not None else "")
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def _failure(self, operation: str, info: _ResponseInfo, detail: str) -> BuildkiteAPIError:
        if info.status == 429:
            return RateLimitedError(wait_hint(info.headers, DEFAULT_RATE_LIMIT_WAIT), operation)
        detail = redact(detail, self._token)  # one line, whatever the server sent
        if info.status is not None and info.status >= 400:
            hint = " (check the Buildkite API token)" if info.status in (401, 403) else ""
            return BuildkiteAPIError(f"{operation}: HTTP {info.status}{hint}: {detail}")
        return BuildkiteAPIError(f"{operation}: {detail}")


def _jobs_connection(data: JSONObject, org: str) -> JSONObject:
    organization = data.get("organization")
    if not isinstance(organization, dict) or organization.get("id") is None:
        raise InvalidOrganizationError(org)
    jobs = organization.get("jobs")
    return jobs if isinstance(jobs, dict) else {}


def _next_cursor(connection: JSONObject) -> str | None:
    """Where the page after this one starts; ``None`` when this is the last page."""
    page_info = connection.get("pageInfo")
    if not isinstance(page_info, dict) or not page_info.get("hasNextPage"):
        return None
    cursor = page_info.get("endCursor")
    return cursor if isinstance(cursor, str) and cursor else None


def _edge_nodes(connection: JSONObject) -> list[JSONObject]:
    edges = connection.get("edges")
    if not isinstance(edges, list):
        return []
    return [edge["node"] for edge in edges if isinstance(edge, dict) and isinstance(edge.get("node"), dict)]


def _graphql_messages(errors: Any) -> str:
    if not isinstance(errors, list):
        return ""
    messages = [str(error.get("message")) if isinstance(error, dict) else str(error) for error in errors]
    return "; ".join(message for message in messages if message)
