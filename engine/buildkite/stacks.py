"""Async client for Buildkite's Stacks API: the part of the Agent API a stack uses with the cluster's
agent token alone (no GraphQL or REST API token, no organization slug).

Wire format (``docs/controller.md`` names the sources): every request sends ``Authorization: Token
<agent token>``, ``Content-Type`` and ``Accept: application/json`` and a JSON body (empty when the call
has none); each path parameter is path-escaped with ``.`` written as ``%2E``, because Buildkite would
otherwise read a dot in a stack key as a format suffix. Any 2xx is success (``204`` or ``200 {}`` for
calls without an answer).

Failures come out as :mod:`engine.buildkite.errors`, one line each, raised ``from None`` (no chained
aiohttp exception can carry the ``Authorization`` header into a log) with the token redacted:
``RateLimitedError`` for 429 (its ``Retry-After`` in seconds, else :data:`DEFAULT_RATE_LIMIT_WAIT`),
``StacksAPIError`` otherwise (``status`` ``None`` when no answer came within ``timeout``; ``permanent``
for a 4xx that asking again will not change). This client never retries: each caller has its own
rule (the monitor's next poll, the fail queue's back-off, a bounded retry for one job's details).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

import engine
from engine.buildkite.errors import RateLimitedError, StacksAPIError
from engine.buildkite.http_headers import (
    DEFAULT_RATE_LIMIT_WAIT,
    DEFAULT_TIMEOUT,
    redact,
    requested_wait,
    server_message,
    wait_hint,
)
from engine.model.jsonvalue import JSON, JSONObject

__all__ = [
    "DEFAULT_ENDPOINT",
    "FINISH_DETAIL_LIMIT",
    "NOTIFICATION_DETAIL_LIMIT",
    "AcquisitionToken",
    "JobDetails",
    "Notification",
    "RegisteredStack",
    "Reservation",
    "ScheduledJobs",
    "StacksAPI",
    "TokenIdentity",
    "crop_detail",
    "escape_segment",
]

DEFAULT_ENDPOINT = "https://agent.buildkite.com/v3"
USER_AGENT = f"agent-stack-policy/{engine.__version__} stacks-api"
STACK_TYPE = "custom"
"""What a stack that is not one of Buildkite's own registers as (``kubernetes`` is reserved)."""
FAIL_EXIT_STATUS = -1
"""The exit status a job the stack cannot run is finished with (upstream's)."""
FINISH_DETAIL_LIMIT = 4096
"""Bytes of ``detail`` a finish call carries; longer text is cropped with :data:`FINISH_CROPPED`."""
FINISH_CROPPED = "\n… (the message was cropped: it exceeded 4 KiB)"
NOTIFICATION_DETAIL_LIMIT = 255
"""Bytes of ``detail`` a notification carries (the API refuses more than 256 characters)."""
NOTIFICATION_CROPPED = "… (cropped)"

_log = logging.getLogger(__name__)


def escape_segment(value: str) -> str:
    """One path parameter: path-escaped, with ``.`` as ``%2E`` (see the module doc)."""
    return quote(value, safe="").replace(".", "%2E")


def crop_detail(text: str, limit: int, marker: str) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes: whole, or cut at a character boundary and ending in
    ``marker``."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(marker.encode("utf-8"))
    return data[: max(room, 0)].decode("utf-8", "ignore") + marker


@dataclass(frozen=True)
class TokenIdentity:
    """``GET /token``: which organization and cluster the agent token belongs to."""

    organization_slug: str
    cluster_uuid: str
    cluster_name: str
    description: str


@dataclass(frozen=True)
class RegisteredStack:
    """The stack as Buildkite registered it; later calls use ``key`` and ``cluster_queue_key``."""

    key: str
    cluster_queue_key: str
    state: str


@dataclass(frozen=True)
class ScheduledJobs:
    """One page of ``GET /stacks/{key}/scheduled-jobs``: the jobs exactly as listed, whether the
    cluster queue is paused, the next page's cursor (``None`` on the last page) and any
    ``Retry-After`` the answer carried."""

    jobs: list[JSONObject]
    paused: bool
    end_cursor: str | None
    retry_after: float | None = None


@dataclass(frozen=True)
class Reservation:
    """What ``batch-reserve`` answered: the jobs now ours, and those that were not reserved."""

    reserved: list[str]
    not_reserved: list[str]


@dataclass(frozen=True)
class JobDetails:
    """``GET /stacks/{key}/jobs/{uuid}``: what the agent will run (its env and command)."""

    uuid: str
    env: dict[str, str]
    command: str


@dataclass(frozen=True)
class AcquisitionToken:
    """A job acquisition token: registers one agent for one reserved job. ``token`` is a secret."""

    job_uuid: str
    token: str = field(repr=False)
    expires_at: str | None = None


@dataclass(frozen=True)
class Notification:
    """One progress message shown on a job in Buildkite (``detail`` is cropped to 255 bytes)."""

    job_uuid: str
    detail: str
    timestamp: datetime


class StacksAPI:
    """One stack's client: ``stack_key`` goes into every path; the session opens on first use."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        stack_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_timeout: Callable[[str], None] | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        """``timeout``: seconds one request may take (``http-timeout``); ``on_timeout(operation)`` is
        called for each request that got no answer in time (the controller counts them)."""
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.stack_key = stack_key
        self._token = token
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ---- the calls ---------------------------------------------------------------------------------

    async def token_identity(self) -> TokenIdentity:
        """``GET /token``: the organization and cluster of the agent token."""
        data, _ = await self._request("GET", "token", "token identity")
        return TokenIdentity(
            organization_slug=_string(data, "organization_slug"),
            cluster_uuid=_string(data, "cluster_uuid"),
            cluster_name=_string(data, "cluster_name"),
            description=_string(data, "description"),
        )

    async def register(self, queue_key: str, metadata: Mapping[str, str] | None = None) -> RegisteredStack:
        """``POST /stacks/register`` (idempotent: every start and every replica registers)."""
        body: JSONObject = {
            "key": self.stack_key,
            "type": STACK_TYPE,
            "queue_key": queue_key,
            "metadata": dict(metadata or {}),
        }
        data, _ = await self._request("POST", "stacks/register", "register stack", body=body)
        return RegisteredStack(
            key=_string(data, "key") or self.stack_key,
            cluster_queue_key=_string(data, "cluster_queue_key") or queue_key,
            state=_string(data, "state"),
        )

    async def deregister(self) -> None:
        """``POST /stacks/{key}/deregister``: the stack exits cleanly."""
        await self._request("POST", self._stack_path("deregister"), "deregister stack")

    async def scheduled_jobs(self, queue_key: str, *, limit: int, after: str | None = None) -> ScheduledJobs:
        """One page of the queue's scheduled jobs (only jobs no stack has reserved are listed)."""
        query = {"queue_key": queue_key, "limit": str(limit)}
        if after:
            query["after"] = after
        data, headers = await self._request(
            "GET", self._stack_path("scheduled-jobs"), "list scheduled jobs", query=query
        )
        jobs = [job for job in _list(data, "jobs") if isinstance(job, dict)]
        queue = data.get("cluster_queue")
        page_info = data.get("page_info")
        cursor: str | None = None
        if isinstance(page_info, dict) and page_info.get("has_next_page"):
            end = page_info.get("end_cursor")
            cursor = end if isinstance(end, str) and end else None
        return ScheduledJobs(
            jobs=jobs,
            paused=bool(queue.get("paused")) if isinstance(queue, dict) else False,
            end_cursor=cursor,
            retry_after=requested_wait(headers),
        )

    async def reserve(self, job_uuids: Sequence[str], expiry_seconds: int) -> Reservation:
        """``PUT …/scheduled-jobs/batch-reserve``: reserve these jobs for this stack (``expiry_seconds``
        0 leaves the expiry to Buildkite). A job another stack holds, or that is no longer scheduled,
        comes back in ``not_reserved``."""
        body: JSONObject = {"job_uuids": list(job_uuids)}
        if expiry_seconds:
            body["reservation_expiry_seconds"] = expiry_seconds
        data, _ = await self._request(
            "PUT", self._stack_path("scheduled-jobs", "batch-reserve"), "reserve jobs", body=body
        )
        return Reservation(reserved=_strings(data, "reserved"), not_reserved=_strings(data, "not_reserved"))

    async def job(self, job_uuid: str) -> JobDetails | None:
        """``GET /stacks/{key}/jobs/{uuid}``: the job's env and command; ``None`` when there is no
        such job (404)."""
        try:
            data, _ = await self._request("GET", self._stack_path("jobs", job_uuid), "get job")
        except StacksAPIError as error:
            if error.status == 404:
                return None
            raise
        env = data.get("env")
        command = data.get("command")
        pairs = env.items() if isinstance(env, dict) else ()
        return JobDetails(
            uuid=_string(data, "id") or job_uuid,
            env={str(name): value for name, value in pairs if isinstance(value, str)},
            command=command if isinstance(command, str) else "",
        )

    async def job_states(self, job_uuids: Sequence[str]) -> dict[str, str]:
        """``POST …/jobs/get-states``: each job's state in lower case (``scheduled``, ``reserved``,
        ``running``, ``canceled``…); a job Buildkite does not know is missing from the map."""
        body: JSONObject = {"job_uuids": list(job_uuids)}
        data, _ = await self._request(
            "POST", self._stack_path("jobs", "get-states"), "get job states", body=body
        )
        states = data.get("states")
        if not isinstance(states, dict):
            return {}
        return {str(uuid): str(state) for uuid, state in states.items() if isinstance(state, str)}

    async def finish(self, job_uuid: str, detail: str, exit_status: int = FAIL_EXIT_STATUS) -> None:
        """``POST …/jobs/{uuid}/finish``: end a job the stack reserved but cannot run; ``detail`` is
        what the user sees (cropped to :data:`FINISH_DETAIL_LIMIT` bytes)."""
        body: JSONObject = {"detail": crop_detail(detail, FINISH_DETAIL_LIMIT, FINISH_CROPPED)}
        if exit_status:
            body["exit_status"] = exit_status
        await self._request("POST", self._stack_path("jobs", job_uuid, "finish"), "finish job", body=body)

    async def notify(self, notifications: Sequence[Notification]) -> list[tuple[str, list[int]]]:
        """``POST …/notifications``: progress messages on jobs. Returns the per-item errors the API
        reported (the request itself succeeded): each error with the indexes of the items it concerns."""
        body: JSONObject = {
            "notifications": [
                {
                    "job_uuid": item.job_uuid,
                    "detail": crop_detail(item.detail, NOTIFICATION_DETAIL_LIMIT, NOTIFICATION_CROPPED),
                    "timestamp": _rfc3339(item.timestamp),
                }
                for item in notifications
            ]
        }
        data, _ = await self._request("POST", self._stack_path("notifications"), "notify", body=body)
        problems: list[tuple[str, list[int]]] = []
        for error in _list(data, "errors"):
            if isinstance(error, dict):
                indexes = [i for i in error.get("indexes") or [] if isinstance(i, int)]
                problems.append((str(error.get("error")), indexes))
        return problems

    async def issue_acquisition_tokens(
        self, job_uuids: Sequence[str], lifetime_seconds: int = 0
    ) -> tuple[list[AcquisitionToken], list[str]]:
        """``POST /stacks/{key}/job-acquisition-tokens``: one short-lived token per reserved job
        (``lifetime_seconds`` 0 leaves the lifetime to Buildkite: 15 minutes). Returns the tokens
        issued and the UUIDs Buildkite did not issue one for."""
        body: JSONObject = {"job_uuids": list(job_uuids)}
        if lifetime_seconds:
            body["token_lifetime_seconds"] = lifetime_seconds
        data, _ = await self._request(
            "POST", self._stack_path("job-acquisition-tokens"), "issue job acquisition tokens", body=body
        )
        tokens = []
        for item in _list(data, "job_acquisition_tokens"):
            if isinstance(item, dict) and isinstance(item.get("job_acquisition_token"), str):
                expires = item.get("expires_at")
                tokens.append(
                    AcquisitionToken(
                        job_uuid=_string(item, "job_uuid"),
                        token=str(item["job_acquisition_token"]),
                        expires_at=expires if isinstance(expires, str) else None,
                    )
                )
        return tokens, _strings(data, "not_issued")

    # ---- plumbing ----------------------------------------------------------------------------------

    def _stack_path(self, *parts: str) -> str:
        return "/".join(["stacks", escape_segment(self.stack_key), *(escape_segment(p) for p in parts)])

    def _session_for_request(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        query: Mapping[str, str] | None = None,
        body: JSONObject | None = None,
    ) -> tuple[JSONObject, Mapping[str, str]]:
        """Send one request; the decoded JSON object of a 2xx answer (``{}`` when empty) and its headers."""
        raw = f"{self.endpoint}/{path}"
        if query:
            raw += "?" + urlencode(query, quote_via=quote)
        url = URL(raw, encoded=True)
        headers = {
            "Authorization": f"Token {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        data = json.dumps(body).encode("utf-8") if body is not None else b""
        session = self._session_for_request()
        try:
            async with session.request(method, url, data=data, headers=headers) as response:
                status = response.status
                response_headers: Mapping[str, str] = dict(response.headers)
                content = await response.read()
        except TimeoutError:
            if self._on_timeout is not None:
                self._on_timeout(operation)
            raise StacksAPIError(f"{operation}: no response within {self._timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise StacksAPIError(f"{operation}: {self._redact(f'{type(exc).__name__}: {exc}')}") from None
        if 200 <= status < 300:
            return _json_object(content), response_headers
        message = self._redact(server_message(content) or "(no message)")
        if status == 429:
            raise RateLimitedError(wait_hint(response_headers, DEFAULT_RATE_LIMIT_WAIT), operation) from None
        hint = " (check the agent token: a cluster agent token is needed)" if status == 401 else ""
        raise StacksAPIError(
            f"{operation}: {method} {self.endpoint}/{path}: HTTP {status}{hint}: {message}",
            status=status,
            retry_after=requested_wait(response_headers),
        ) from None

    def _redact(self, text: str) -> str:
        return redact(text, self._token)


def _json_object(content: bytes) -> JSONObject:
    if not content.strip():
        return {}
    try:
        data = json.loads(content)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _list(data: Mapping[str, Any], key: str) -> list[JSON]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _strings(data: Mapping[str, Any], key: str) -> list[str]:
    return [item for item in _list(data, key) if isinstance(item, str)]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
