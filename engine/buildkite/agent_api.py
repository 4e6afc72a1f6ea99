"""Fail a Buildkite job from the controller by posing as a throw-away agent ("acquire and fail").

When no agent will ever run a job (its pod cannot be built, never starts, or cannot pull an image) the
only way to tell Buildkite *why* is to act as an agent: register one named ``buildkite-<job uuid>`` with
the job's tags, connect, acquire exactly that job, start it, upload the failure message as its log,
finish it with exit status 1 and disconnect. The job then shows that agent, the message as its log and a
failed exit status (behaviour spec §4.7).

Retry counts and intervals are in :mod:`engine.buildkite.agent_retry`; every wait goes through the
injectable ``sleep`` and is multiplied by ``retry_scale`` so tests run instantly. The agent token and
the access token only ever travel in ``Authorization`` headers: error messages and logs are built from
status codes and response texts, with any token text redacted, and raised without exception chaining.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import platform
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote

import aiohttp

import engine
from engine.buildkite import agent_retry
from engine.buildkite.agent_retry import RetryPolicy
from engine.buildkite.errors import AgentAPIError, JobAcquisitionRejected
from engine.buildkite.http_headers import DEFAULT_TIMEOUT, redact, requested_wait, server_message
from engine.model.jsonvalue import JSON, JSONObject

__all__ = [
    "DEFAULT_AGENT_ENDPOINT",
    "AgentAPI",
    "AgentAPIError",
    "JobAcquisitionRejected",
]

DEFAULT_AGENT_ENDPOINT = "https://agent.buildkite.com/v3"
USER_AGENT = f"agent-stack-policy/{engine.__version__}"
EXIT_STATUS = 1
"""The exit status a controller-failed job finishes with."""

Sleep = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")

_log = logging.getLogger(__name__)


class AgentAPI:
    """Client for the Agent REST API calls the controller needs to fail a job; holds no per-job state."""

    def __init__(
        self,
        endpoint: str = DEFAULT_AGENT_ENDPOINT,
        *,
        user_agent: str = USER_AGENT,
        sleep: Sleep = asyncio.sleep,
        retry_scale: float = 1.0,
        request_timeout: float = DEFAULT_TIMEOUT,
        on_timeout: Callable[[str], None] | None = None,
        agent_version: str = engine.__version__,
        rng: random.Random | None = None,
    ) -> None:
        """``request_timeout``: seconds one request may take (``http-timeout``); ``on_timeout(step)`` is
        called for each request that got no answer in time (the controller counts them)."""
        self.endpoint = (endpoint or DEFAULT_AGENT_ENDPOINT).rstrip("/")
        self.user_agent = user_agent
        self.sleep = sleep
        self.retry_scale = retry_scale
        self.request_timeout = request_timeout
        self.on_timeout = on_timeout
        self.agent_version = agent_version
        self.rng = rng or random.Random()

    async def fail_job(self, agent_token: str, job_uuid: str, tags: list[str], message: str) -> None:
        """Acquire the job as agent ``buildkite-<job_uuid>`` with ``tags`` and fail it with ``message``.

        Raises :class:`JobAcquisitionRejected` when Buildkite refuses the acquisition (the job is
        already taken, finished or cancelled) and :class:`AgentAPIError` for any other failure. Once
        registered, the agent is always disconnected, whatever happened after.
        """
        if not agent_token:
            raise AgentAPIError("agent token is empty")
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await _AcquireAndFail(self, http, agent_token).run(job_uuid, tags, message)


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> JSON:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def message(self) -> str:
        """The server's explanation (:func:`~engine.buildkite.http_headers.server_message`)."""
        return server_message(self.body)


class _RetryableError(Exception):
    """This attempt failed in a way worth another try; ``wait`` overrides the policy's interval."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class _AcquireAndFail:
    """One run of the protocol: the HTTP session, the agent once registered, the secrets to redact."""

    def __init__(self, api: AgentAPI, http: aiohttp.ClientSession, agent_token: str) -> None:
        self._api = api
        self._http = http
        self._agent_token = agent_token
        self._endpoint = api.endpoint
        self._access_token = ""
        self._extra_headers: dict[str, str] = {}

    async def run(self, job_uuid: str, tags: list[str], message: str) -> None:
        await self._register(job_uuid, tags)
        try:
            await self._connect()
            job = await self._acquire(job_uuid)
            job_id = str(job.get("id") or job_uuid)
            await self._start(job_id)
            await self._upload_log(job_id, message, job.get("chunks_max_size_bytes"))
            await self._finish(job_id)
        finally:
            await self._disconnect()

    # -- the steps ------------------------------------------------------------------------------

    async def _register(self, job_uuid: str, tags: list[str]) -> None:
        body = {
            "name": f"buildkite-{job_uuid}",
            "hostname": socket.gethostname(),
            "os": platform.platform(),
            "arch": _go_arch(platform.machine()),
            "script_eval_enabled": True,
            "ignore_in_dispatches": True,
            "version": self._api.agent_version,
            "build": "",
            "meta_data": list(tags),
            "pid": os.getpid(),
            "features": ["agent-core"],
        }

        async def attempt(_: int) -> _Response:
            response = await self._send("POST", f"{self._api.endpoint}/register", self._agent_token, body)
            if response.status == 401:
                raise self._failure("register", response, "Buildkite rejected the agent token")
            return self._expect_success("register", response)

        data = (await self._with_retries("register", agent_retry.REGISTER, attempt)).json()
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise AgentAPIError("register: the response carried no agent access token")
        self._access_token = data["access_token"]
        endpoint = data.get("endpoint")
        if isinstance(endpoint, str) and endpoint:
            self._endpoint = endpoint.rstrip("/")
        headers = data.get("request_headers")
        if isinstance(headers, dict):
            self._extra_headers = {str(name): str(value) for name, value in headers.items()}

    async def _connect(self) -> None:
        async def attempt(_: int) -> _Response:
            return self._expect_success("connect", await self._agent_call("POST", "connect"))

        await self._with_retries("connect", agent_retry.CONNECT, attempt)

    async def _acquire(self, job_uuid: str) -> JSONObject:
        path = f"jobs/{quote(job_uuid, safe='')}/acquire"

        async def attempt(number: int) -> _Response:
            headers = {"X-Buildkite-Lock-Acquire-Job": "1", "X-Buildkite-Backoff-Sequence": str(number - 1)}
            response = await self._agent_call("PUT", path, headers=headers)
            if response.status == 422:
                raise JobAcquisitionRejected(
                    f"acquire: job acquisition rejected by Buildkite: {self._redact(response.message())}"
                )
            if response.status == 423:  # the job waits on a dependency: come back later
                wait = requested_wait(response.headers)
                if wait is None:
                    wait = self._api.rng.uniform(*agent_retry.LOCKED_WAIT_RANGE)
                raise _RetryableError("the job is locked (HTTP 423)", wait)
            return self._expect_success("acquire", response)

        response = await self._with_retries(
            "acquire", agent_retry.ACQUIRE, attempt, budget=agent_retry.ACQUIRE_BUDGET_SECONDS
        )
        data = response.json()
        return data if isinstance(data, dict) else {}

    async def _start(self, job_id: str) -> None:
        body = {"started_at": _now()}

        async def attempt(_: int) -> _Response:
            response = await self._agent_call("PUT", f"jobs/{quote(job_id, safe='')}/start", body)
            return self._expect_success("start", response)

        await self._with_retries("start", agent_retry.START, attempt)

    async def _upload_log(self, job_id: str, message: str, max_size: JSON) -> None:
        headers = {"Content-Type": "text/plain", "Content-Encoding": "gzip"}
        for sequence, offset, part in _chunks(message.encode("utf-8"), max_size):
            path = (
                f"jobs/{quote(job_id, safe='')}/chunks?sequence={sequence}&offset={offset}&size={len(part)}"
            )
            compressed = gzip.compress(part)

            async def attempt(_: int, path: str = path, compressed: bytes = compressed) -> _Response:
                response = await self._agent_call("POST", path, data=compressed, headers=headers)
                return self._expect_success("upload log", response)

            await self._with_retries("upload log", agent_retry.CHUNK, attempt)

    async def _finish(self, job_id: str) -> None:
        body = {"exit_status": str(EXIT_STATUS), "finished_at": _now(), "chunks_failed_count": 0}

        async def attempt(_: int) -> _Response:
            response = await self._agent_call("PUT", f"jobs/{quote(job_id, safe='')}/finish", body)
            return self._expect_success("finish", response)

        await self._with_retries("finish", agent_retry.FINISH, attempt)

    async def _disconnect(self) -> None:
        async def attempt(_: int) -> _Response:
            return self._expect_success("disconnect", await self._agent_call("POST", "disconnect"))

        try:
            await self._with_retries("disconnect", agent_retry.DISCONNECT, attempt)
        except AgentAPIError as exc:  # the job's outcome stands; a lingering agent only looks untidy
            _log.warning("%s (the agent may stay listed until Buildkite marks it lost)", exc)

    # -- plumbing -------------------------------------------------------------------------------

    async def _with_retries(
        self,
        step: str,
        policy: RetryPolicy,
        attempt: Callable[[int], Awaitable[_T]],
        *,
        budget: float | None = None,
    ) -> _T:
        scale = self._api.retry_scale
        waited = 0.0
        reason = "no attempt made"
        for number in range(1, policy.attempts + 1):
            try:
                return await attempt(number)
            except _RetryableError as retry:
                reason = retry.reason
                if number == policy.attempts:
                    break
                wait = retry.wait if retry.wait is not None else policy.delay(number, self._api.rng)
                if budget is not None and waited + wait > budget:
                    raise AgentAPIError(f"{step}: {reason} (gave up after {budget:g}s)") from None
                _log.warning(
                    "%s: %s (attempt %d/%d, retrying in %.2fs)", step, reason, number, policy.attempts, wait
                )
                await self._api.sleep(wait * scale)
                waited += wait
        raise AgentAPIError(f"{step}: {reason} (gave up after {policy.attempts} attempts)")

    async def _agent_call(
        self,
        method: str,
        path: str,
        json_body: JSON = None,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Response:
        merged = {**self._extra_headers, **(headers or {})}
        url = f"{self._endpoint}/{path}"
        return await self._send(method, url, self._access_token, json_body, data=data, headers=merged)

    async def _send(
        self,
        method: str,
        url: str,
        token: str,
        json_body: JSON = None,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Response:
        request_headers = {
            **(headers or {}),
            "Authorization": f"Token {token}",
            "User-Agent": self._api.user_agent,
        }
        if json_body is not None:
            request_headers["Content-Type"] = "application/json"
            data = json.dumps(json_body).encode("utf-8")
        try:
            async with self._http.request(method, url, data=data, headers=request_headers) as response:
                return _Response(response.status, dict(response.headers), await response.read())
        except TimeoutError:
            if self._api.on_timeout is not None:
                self._api.on_timeout(_step_of(url))
            raise _RetryableError(f"no response within {self._api.request_timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _RetryableError(self._redact(f"{type(exc).__name__}: {exc}")) from None

    def _expect_success(self, step: str, response: _Response) -> _Response:
        """Pass a 2xx through; retry throttling (honouring its wait) and server errors; fail other 4xx."""
        if 200 <= response.status < 300:
            return response
        if response.status in (408, 429) or response.status >= 500:
            wait = requested_wait(response.headers) if response.status == 429 else None
            raise _RetryableError(f"HTTP {response.status}: {self._redact(response.message())}", wait)
        raise self._failure(step, response, "Buildkite refused the call")

    def _failure(self, step: str, response: _Response, explanation: str) -> AgentAPIError:
        return AgentAPIError(
            f"{step}: {explanation} (HTTP {response.status}): {self._redact(response.message())}"
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._agent_token, self._access_token)


def _step_of(url: str) -> str:
    """The protocol step a request URL belongs to (``register``, ``acquire``, ``chunks``...)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _chunks(data: bytes, max_size: JSON) -> list[tuple[int, int, bytes]]:
    """Split the log into (sequence, offset, bytes): one chunk unless the server set a smaller limit."""
    limit = max_size if isinstance(max_size, int) and not isinstance(max_size, bool) else 0
    if limit <= 0 or len(data) <= limit:
        return [(0, 0, data)]
    return [
        (sequence, offset, data[offset : offset + limit])
        for sequence, offset in enumerate(range(0, len(data), limit))
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _go_arch(machine: str) -> str:
    """Buildkite expects Go's architecture names, as a real agent reports them."""
    names = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386"}
    return names.get(machine.lower(), machine.lower() or "unknown")
