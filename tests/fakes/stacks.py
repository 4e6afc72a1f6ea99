"""The fake Buildkite's Stacks API: ``/v3/token`` and ``/v3/stacks/...``, over the fake's own jobs.

Built from what is known of the API (Buildkite's "Stacks API" and "Job acquisition tokens" pages, and
the wire examples in Buildkite's Go client library ``github.com/buildkite/stacksapi``), it checks what
those state and models what they leave open in one stated way, marked UNCERTAIN below, so a test can
tell which behaviour it relies on:

* **requests are validated**: ``Authorization: Token <cluster agent token>`` (anything else is 401),
  ``Content-Type`` and ``Accept: application/json`` on every call, each method and path, path
  parameters escaped with ``.`` as ``%2E`` (a raw dot is a 404, as Buildkite would read it as a
  format suffix), and every body field's type and range (422 naming the field);
* **a stack must be registered** before its key is used (404 otherwise; the status is UNCERTAIN);
* **listing** returns jobs in state ``SCHEDULED`` of the cluster queue (a job's ``queue=`` rule, else
  ``_default``) that no stack holds, in creation order (the real order is UNCERTAIN; upstream sorts
  by priority itself), ``limit`` per page (1-1000) with an opaque ``end_cursor``;
* **reservations are exclusive and expire**: a job held by one stack is ``not_reserved`` for every
  other stack until ``reservation_expiry_seconds`` pass (omitted: :data:`DEFAULT_RESERVATION_SECONDS`,
  the client library's 300 s; upstream's docs say 900 s: UNCERTAIN), then it is listed and reservable
  again. The **same stack key reserving again** a job it already holds gets it back in ``reserved``
  with a fresh expiry (UNCERTAIN: the reference only says upstream warns that two controllers with one
  key "may then both reserve the same job"; this is the model that makes that warning true, so the
  controller's own guard, the Kubernetes Job name, is what the two-replica tests exercise);
* **getting a job, finishing it and issuing a job acquisition token need this stack's live
  reservation** (403 otherwise: UNCERTAIN, upstream only ever calls them after reserving); a finish
  ends the job ``FINISHED`` with its ``detail`` and releases the reservation;
* **states**: ``reserved`` for a scheduled job some stack holds, else the job's state in lower case;
* **notifications** are recorded; an item without ``detail`` or longer than 256 characters is an
  error of the answer, by index, while the rest are kept;
* **job acquisition tokens** (``bkjat_…``) expire after their lifetime (default 900 s) or with the
  reservation, whichever is first; the fake agent API accepts one as a registration token, and that
  agent may acquire only its job;
* **acquiring** a reserved job through the agent API (with the cluster token or its JAT) consumes the
  reservation, as an agent in the pod does.

Faults (``fake.faults.fail("stacks", ...)``) use the fake's injector; ``only`` names the operation:
``token``, ``register``, ``deregister``, ``scheduled-jobs``, ``batch-reserve``, ``get-job``,
``get-states``, ``finish``, ``notifications``, ``job-acquisition-tokens``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid as uuid_module
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

if TYPE_CHECKING:
    from tests.fakes.buildkite import FakeBuildkite, _Job

DEFAULT_QUEUE = "_default"
DEFAULT_RESERVATION_SECONDS = 300
"""Expiry of a reservation that names none (the client library's documented default; UNCERTAIN)."""
DEFAULT_JAT_SECONDS = 900
MAX_BATCH = 1000
NOTIFICATION_MAX_CHARACTERS = 256
STACK_OPERATIONS = (
    "token",
    "register",
    "deregister",
    "scheduled-jobs",
    "batch-reserve",
    "get-job",
    "get-states",
    "finish",
    "notifications",
    "job-acquisition-tokens",
)
STATE_NAMES = ("connected", "disconnected", "lost")

JSONDict = dict[str, Any]


@dataclass
class FakeStack:
    """One registered stack, as the fake holds it (also the snapshot tests read)."""

    key: str
    type: str
    queue_key: str
    metadata: dict[str, str]
    state: str = "connected"
    registrations: int = 1
    deregistrations: int = 0


@dataclass
class _Reservation:
    stack_key: str
    expires_at: float
    reserved_at: float


@dataclass(frozen=True)
class IssuedToken:
    """A job acquisition token the fake issued (``token`` is the secret value)."""

    token: str
    job_uuid: str
    stack_key: str
    expires_at: float


@dataclass(frozen=True)
class RecordedNotification:
    stack_key: str
    job_uuid: str
    detail: str
    timestamp: str | None


@dataclass(frozen=True)
class RecordedFinish:
    stack_key: str
    job_uuid: str
    detail: str
    exit_status: int | None


@dataclass
class _State:
    stacks: dict[str, FakeStack] = field(default_factory=dict)
    reservations: dict[str, _Reservation] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    notifications: list[RecordedNotification] = field(default_factory=list)
    finishes: list[RecordedFinish] = field(default_factory=list)
    reservations_made: dict[str, int] = field(default_factory=dict)
    """Job UUID -> how many times a stack was answered ``reserved`` for it."""
    paused_queues: set[str] = field(default_factory=set)


class FakeStacksAPI:
    """The Stacks API routes of one :class:`~tests.fakes.buildkite.FakeBuildkite`; state under its lock."""

    def __init__(
        self,
        fake: FakeBuildkite,
        *,
        cluster_uuid: str | None = "c7d3a1e4-0000-4000-8000-000000000001",
        cluster_name: str = "test-cluster",
        clock: Any = time.monotonic,
    ) -> None:
        self._fake = fake
        self._lock: threading.RLock = fake._lock
        self.cluster_uuid = cluster_uuid
        """``None`` makes the agent token unclustered (``GET /token`` answers an empty cluster)."""
        self.cluster_name = cluster_name
        self._clock = clock
        self._state = _State()

    # ---- wiring ------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/v3/token", self._token_identity)
        router.add_post("/v3/stacks/register", self._register)
        router.add_post("/v3/stacks/{key}/deregister", self._deregister)
        router.add_get("/v3/stacks/{key}/scheduled-jobs", self._scheduled_jobs)
        router.add_put("/v3/stacks/{key}/scheduled-jobs/batch-reserve", self._batch_reserve)
        router.add_post("/v3/stacks/{key}/jobs/get-states", self._get_states)
        router.add_get("/v3/stacks/{key}/jobs/{uuid}", self._get_job)
        router.add_post("/v3/stacks/{key}/jobs/{uuid}/finish", self._finish)
        router.add_post("/v3/stacks/{key}/notifications", self._notifications)
        router.add_post("/v3/stacks/{key}/job-acquisition-tokens", self._issue_tokens)

    # ---- what tests look at and control ------------------------------------------------------------

    @property
    def stacks(self) -> dict[str, FakeStack]:
        with self._lock:
            return {key: FakeStack(**vars(stack)) for key, stack in self._state.stacks.items()}

    def reserved_by(self, job_uuid: str) -> str | None:
        """The stack holding a live reservation of the job, else ``None``."""
        with self._lock:
            reservation = self._live_reservation(job_uuid)
            return reservation.stack_key if reservation else None

    def times_reserved(self, job_uuid: str) -> int:
        """How many ``batch-reserve`` answers put this job in ``reserved``."""
        with self._lock:
            return self._state.reservations_made.get(job_uuid, 0)

    def expire_reservations(self) -> None:
        """Let every reservation (and every token it bounds) run out now."""
        with self._lock:
            now = self._clock()
            for reservation in self._state.reservations.values():
                reservation.expires_at = min(reservation.expires_at, now)

    def notifications(self, job_uuid: str | None = None) -> list[RecordedNotification]:
        with self._lock:
            return [n for n in self._state.notifications if job_uuid is None or n.job_uuid == job_uuid]

    def finishes(self, job_uuid: str | None = None) -> list[RecordedFinish]:
        """Every successful finish call, in order."""
        with self._lock:
            return [f for f in self._state.finishes if job_uuid is None or f.job_uuid == job_uuid]

    def issued_tokens(self, job_uuid: str | None = None) -> list[IssuedToken]:
        with self._lock:
            return [t for t in self._state.tokens.values() if job_uuid is None or t.job_uuid == job_uuid]

    def pause_queue(self, queue_key: str, paused: bool = True) -> None:
        with self._lock:
            if paused:
                self._state.paused_queues.add(queue_key)
            else:
                self._state.paused_queues.discard(queue_key)

    # ---- used by the fake's agent API ----------------------------------------------------------------

    def job_for_token(self, token: str | None) -> str | None:
        """The job a live job acquisition token registers an agent for, else ``None``."""
        issued = self._state.tokens.get(token or "")
        if issued is None or self._clock() >= self._token_expiry(issued):
            return None
        return issued.job_uuid

    def acquired(self, job_uuid: str) -> None:
        """An agent acquired the job: its reservation is used up."""
        self._state.reservations.pop(job_uuid, None)

    def is_reserved(self, job_uuid: str) -> bool:
        return self._live_reservation(job_uuid) is not None

    # ---- handlers ----------------------------------------------------------------------------------

    async def _token_identity(self, request: web.Request) -> web.Response:
        with self._lock:
            failure = self._check_request(request, None, body_expected=False)
            if failure is not None:
                return failure
            return web.json_response(
                {
                    "uuid": str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, "fake-agent-token")),
                    "description": "fake cluster agent token",
                    "token_type": "cluster",
                    "organization_slug": "test-org",
                    "organization_uuid": str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, "test-org")),
                    "cluster_uuid": self.cluster_uuid or "",
                    "cluster_name": self.cluster_name if self.cluster_uuid else "",
                    "organization_queue_uuid": None,
                    "organization_queue_key": None,
                }
            )

    async def _register(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self._lock:
            failure = self._check_request(request, body, body_expected=True)
            if failure is not None:
                return failure
            problems = _fields(
                body, {"key": str, "type": str, "queue_key": str, "metadata": dict}, required=True
            )
            if not problems and not body["key"]:
                problems.append("key can't be blank")
            if not problems and body["type"] not in ("custom", "kubernetes", "elastic"):
                problems.append(f"type {body['type']!r} is not a stack type")
            if not problems and not all(isinstance(v, str) for v in body["metadata"].values()):
                problems.append("metadata values must be strings")
            if problems:
                return _message(422, "; ".join(problems))
            stack = self._state.stacks.get(body["key"])
            if stack is None:
                stack = FakeStack(body["key"], body["type"], body["queue_key"], dict(body["metadata"]))
                self._state.stacks[stack.key] = stack
            else:  # idempotent: every restart and replica registers
                stack.type, stack.queue_key = body["type"], body["queue_key"]
                stack.metadata = dict(body["metadata"])
                stack.state = "connected"
                stack.registrations += 1
            return web.json_response(
                {
                    "id": str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"stack/{stack.key}")),
                    "organization_uuid": str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, "test-org")),
                    "cluster_queue_key": stack.queue_key,
                    "key": stack.key,
                    "type": stack.type,
                    "metadata": stack.metadata,
                    "last_connected_on": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "state": stack.state,
                }
            )

    async def _deregister(self, request: web.Request) -> web.Response:
        with self._lock:
            stack_or_failure = self._stack(request, None, body_expected=False)
            if isinstance(stack_or_failure, web.Response):
                return stack_or_failure
            stack_or_failure.state = "disconnected"
            stack_or_failure.deregistrations += 1
            return web.Response(status=204)

    async def _scheduled_jobs(self, request: web.Request) -> web.Response:
        with self._lock:
            stack_or_failure = self._stack(request, None, body_expected=False)
            if isinstance(stack_or_failure, web.Response):
                return stack_or_failure
            stack = stack_or_failure
            queue_key = request.query.get("queue_key")
            if not queue_key:
                return _message(400, "queue_key is required")
            try:
                limit = int(request.query.get("limit", "1000"))
            except ValueError:
                return _message(422, "limit must be an integer")
            if not 1 <= limit <= MAX_BATCH:
                return _message(422, f"limit must be between 1 and {MAX_BATCH}")
            after = request.query.get("after")
            start = 0
            if after:
                decoded = _decode_cursor(after)
                if decoded is None:
                    return _message(422, "after is not a valid cursor")
                start = decoded
            listed = [
                job
                for job in sorted(self._fake._jobs.values(), key=lambda job: job.seq)
                if job.seq > start and self._listable(job, queue_key)
            ]
            page = listed[:limit]
            has_next = len(listed) > len(page)
            self._fake.counters[f"stacks.list.{stack.key}"] += 1
            return web.json_response(
                {
                    "jobs": [_listed_job(job) for job in page],
                    "cluster_queue": {
                        "id": str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"queue/{queue_key}")),
                        "paused": queue_key in self._state.paused_queues,
                    },
                    "page_info": {
                        "has_next_page": has_next,
                        "end_cursor": _encode_cursor(page[-1].seq) if has_next and page else "",
                    },
                }
            )

    async def _batch_reserve(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self._lock:
            stack_or_failure = self._stack(request, body, body_expected=True)
            if isinstance(stack_or_failure, web.Response):
                return stack_or_failure
            stack = stack_or_failure
            problems = _uuid_list_problems(body)
            expiry = body.get("reservation_expiry_seconds", DEFAULT_RESERVATION_SECONDS) if body else 0
            if not problems and (not _is_int(expiry) or not 1 <= expiry <= 3600):
                problems.append("reservation_expiry_seconds must be an integer from 1 to 3600")
            if problems:
                return _message(422, "; ".join(problems))
            now = self._clock()
            reserved: list[str] = []
            not_reserved: list[str] = []
            for job_uuid in body["job_uuids"]:
                job = self._fake._jobs.get(job_uuid)
                holder = self._live_reservation(job_uuid)
                if job is None or job.state != "SCHEDULED" or (holder and holder.stack_key != stack.key):
                    not_reserved.append(job_uuid)
                    continue
                self._state.reservations[job_uuid] = _Reservation(stack.key, now + expiry, now)
                self._state.reservations_made[job_uuid] = self._state.reservations_made.get(job_uuid, 0) + 1
                reserved.append(job_uuid)
            return web.json_response({"reserved": reserved, "not_reserved": not_reserved})

    async def _get_job(self, request: web.Request) -> web.Response:
        with self._lock:
            job_or_failure = self._reserved_job(request, None, body_expected=False)
            if isinstance(job_or_failure, web.Response):
                return job_or_failure
            job = job_or_failure
            env: dict[str, str] = {}
            for entry in job.env:
                name, _, value = entry.partition("=")
                env[name] = value
            return web.json_response({"id": job.uuid, "env": env, "command": job.command})

    async def _get_states(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self._lock:
            stack_or_failure = self._stack(request, body, body_expected=True)
            if isinstance(stack_or_failure, web.Response):
                return stack_or_failure
            problems = _uuid_list_problems(body)
            if problems:
                return _message(422, "; ".join(problems))
            states = {}
            for job_uuid in body["job_uuids"]:
                job = self._fake._jobs.get(job_uuid)
                if job is not None:
                    states[job_uuid] = self.state_of(job)
            return web.json_response({"states": states})

    async def _finish(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self._lock:
            job_or_failure = self._reserved_job(request, body, body_expected=True)
            if isinstance(job_or_failure, web.Response):
                return job_or_failure
            job = job_or_failure
            problems = _fields(body, {"detail": str}, required=True) + _fields(body, {"exit_status": int})
            if problems:
                return _message(422, "; ".join(problems))
            exit_status = body.get("exit_status")
            job.state = "FINISHED"
            job.exit_status = str(exit_status if exit_status is not None else 0)
            job.finished_at = datetime.now(UTC)
            job.chunks = {0: (0, body["detail"].encode("utf-8"))}  # shown where the log would be
            self._state.reservations.pop(job.uuid, None)
            self._state.finishes.append(
                RecordedFinish(request.match_info["key"], job.uuid, body["detail"], exit_status)
            )
            return web.Response(status=204)

    async def _notifications(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self._lock:
            stack_or_failure = self._stack(request, body, body_expected=True)
            if isinstance(stack_or_failure, web.Response):
                return stack_or_failure
            items = body.get("notifications") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                return _message(422, "notifications must be a non-empty list")
            if len(items) > MAX_BATCH:
                return _message(422, f"at most {MAX_BATCH} notifications per request")
            errors: dict[str, list[int]] = {}
            for index, item in enumerate(items):
                problem = _notification_problem(item)
                if problem is None and item["job_uuid"] not in self._fake._jobs:
                    problem = "job not found"
                if problem is not None:
                    errors.setdefault(problem, []).append(index)
                    continue
                self._state.notifications.append(
                    RecordedNotification(
                        stack_or_failure.key, item["job_uuid"], item["detail"], item.get("timestamp")
                    )
                )
            return web.json_response(
                {"errors": [{"error": error, "indexes": indexes} for error, indexes in errors.items()]}
            )

    async def _issue_tokens(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self._lock:
            stack_or_failure = self._stack(request, body, body_expected=True)
            if isinstance(stack_or_failure, web.Response):
                return stack_or_failure
            stack = stack_or_failure
            problems = _uuid_list_problems(body)
            lifetime = body.get("token_lifetime_seconds", DEFAULT_JAT_SECONDS) if not problems else 0
            if not problems and (not _is_int(lifetime) or not 1 <= lifetime <= 3600):
                problems.append("token_lifetime_seconds must be an integer from 1 to 3600")
            if problems:
                return _message(422, "; ".join(problems))
            now = self._clock()
            issued: list[JSONDict] = []
            not_issued: list[str] = []
            for job_uuid in body["job_uuids"]:
                reservation = self._live_reservation(job_uuid)
                if reservation is None or reservation.stack_key != stack.key:
                    not_issued.append(job_uuid)
                    continue
                token = IssuedToken(f"bkjat_{secrets.token_urlsafe(24)}", job_uuid, stack.key, now + lifetime)
                self._state.tokens[token.token] = token
                expires = datetime.now(UTC) + timedelta(seconds=self._token_expiry(token) - now)
                issued.append(
                    {
                        "job_uuid": job_uuid,
                        "job_acquisition_token": token.token,
                        "expires_at": expires.isoformat().replace("+00:00", "Z"),
                    }
                )
            return web.json_response({"job_acquisition_tokens": issued, "not_issued": not_issued}, status=201)

    # ---- checks and helpers ------------------------------------------------------------------------

    def state_of(self, job: _Job) -> str:
        """The job's state as ``get-states`` reports it."""
        if job.state == "SCHEDULED" and self._live_reservation(job.uuid) is not None:
            return "reserved"
        return job.state.lower()

    def _listable(self, job: _Job, queue_key: str) -> bool:
        return (
            job.state == "SCHEDULED"
            and cluster_queue_of(job.agent_query_rules) == queue_key
            and self._live_reservation(job.uuid) is None
        )

    def _live_reservation(self, job_uuid: str) -> _Reservation | None:
        reservation = self._state.reservations.get(job_uuid)
        if reservation is None:
            return None
        if self._clock() >= reservation.expires_at:
            del self._state.reservations[job_uuid]
            return None
        return reservation

    def _token_expiry(self, token: IssuedToken) -> float:
        reservation = self._state.reservations.get(token.job_uuid)
        bound = reservation.expires_at if reservation and reservation.stack_key == token.stack_key else 0.0
        if self._fake._jobs.get(token.job_uuid) is not None and self._fake._jobs[token.job_uuid].agent_uuid:
            bound = token.expires_at  # acquired: the reservation was used up, the token counts alone
        return min(token.expires_at, bound)

    def _check_request(self, request: web.Request, body: Any, *, body_expected: bool) -> web.Response | None:
        """Authorization, content negotiation, path escaping and the body's being JSON."""
        self._fake.counters["stacks.requests"] += 1
        if request.headers.get("Authorization") != f"Token {self._fake.agent_token}":
            self._fake.counters["stacks.unauthorized"] += 1
            return _message(401, "Invalid agent token: a cluster agent token is required")
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return _message(415, "Content-Type must be application/json")
        if request.headers.get("Accept") != "application/json":
            return _message(406, "Accept must be application/json")
        for name in ("key", "uuid"):
            value = request.match_info.get(name)
            if value is not None and f"/{_escaped(value)}" not in request.raw_path:
                return _message(404, f"no route: path parameter {value!r} must be escaped ('.' as %2E)")
        if body_expected and not isinstance(body, dict):
            return _message(400, "the body must be a JSON object")
        return None

    def _stack(self, request: web.Request, body: Any, *, body_expected: bool) -> FakeStack | web.Response:
        failure = self._check_request(request, body, body_expected=body_expected)
        if failure is not None:
            return failure
        stack = self._state.stacks.get(request.match_info["key"])
        if stack is None:
            return _message(404, f"Stack {request.match_info['key']!r} is not registered")
        return stack

    def _reserved_job(self, request: web.Request, body: Any, *, body_expected: bool) -> _Job | web.Response:
        stack = self._stack(request, body, body_expected=body_expected)
        if isinstance(stack, web.Response):
            return stack
        job = self._fake._jobs.get(request.match_info["uuid"])
        if job is None:
            return _message(404, "Job not found")
        reservation = self._live_reservation(job.uuid)
        if job.state != "SCHEDULED" or reservation is None or reservation.stack_key != stack.key:
            return _message(403, f"Job is {self.state_of(job)} and not reserved by stack {stack.key}")
        return job


def cluster_queue_of(rules: list[str]) -> str:
    """The cluster queue a job is in: its ``queue=`` rule, else the default queue."""
    for rule in rules:
        key, _, value = rule.partition("=")
        if key == "queue":
            return value
    return DEFAULT_QUEUE


def stacks_operation(method: str, path: str) -> str | None:
    """The Stacks API operation a request is for (``None`` for other paths)."""
    parts = path.strip("/").split("/")
    if parts == ["v3", "token"]:
        return "token"
    if len(parts) < 3 or parts[:2] != ["v3", "stacks"]:
        return None
    if parts[2:] == ["register"]:
        return "register"
    rest = parts[3:]
    names = {
        ("deregister",): "deregister",
        ("scheduled-jobs",): "scheduled-jobs",
        ("scheduled-jobs", "batch-reserve"): "batch-reserve",
        ("jobs", "get-states"): "get-states",
        ("notifications",): "notifications",
        ("job-acquisition-tokens",): "job-acquisition-tokens",
    }
    if tuple(rest) in names:
        return names[tuple(rest)]
    if len(rest) == 2 and rest[0] == "jobs" and method == "GET":
        return "get-job"
    if len(rest) == 3 and rest[0] == "jobs" and rest[2] == "finish":
        return "finish"
    return None


def _listed_job(job: _Job) -> JSONDict:
    build = job.build
    return {
        "id": job.uuid,
        "priority": job.priority,
        "agent_query_rules": list(job.agent_query_rules),
        "scheduled_at": _rfc3339(job.scheduled_at or job.created_at),
        "pipeline": {"slug": build.pipeline_slug, "uuid": build.pipeline_uuid},
        "build": {"uuid": build.uuid, "number": build.number, "branch": build.branch},
        "step": {"key": job.step_key},
    }


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _escaped(value: str) -> str:
    return quote(value, safe="").replace(".", "%2E")


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after_seq": seq}).encode()).decode("ascii")


def _decode_cursor(cursor: str) -> int | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))["after_seq"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        return None
    return value if _is_int(value) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fields(body: Any, types: dict[str, type], *, required: bool = False) -> list[str]:
    problems = []
    for name, kind in types.items():
        if name not in body:
            if required:
                problems.append(f"{name} is required")
            continue
        value = body[name]
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if wrong:
            problems.append(f"{name} must be a {kind.__name__}")
    return problems


def _uuid_list_problems(body: Any) -> list[str]:
    uuids = body.get("job_uuids") if isinstance(body, dict) else None
    if not isinstance(uuids, list) or not uuids or not all(isinstance(u, str) and u for u in uuids):
        return ["job_uuids must be a non-empty list of job UUIDs"]
    if len(uuids) > MAX_BATCH:
        return [f"job_uuids holds {len(uuids)} UUIDs; at most {MAX_BATCH} per request"]
    return []


def _notification_problem(item: Any) -> str | None:
    if not isinstance(item, dict) or not isinstance(item.get("job_uuid"), str):
        return "job_uuid is required"
    detail = item.get("detail")
    if not isinstance(detail, str) or not detail:
        return "detail is required"
    if len(detail) > NOTIFICATION_MAX_CHARACTERS:
        return f"detail is too long (maximum is {NOTIFICATION_MAX_CHARACTERS} characters)"
    timestamp = item.get("timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
        except ValueError:
            return "timestamp is not an RFC 3339 time"
    return None


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _message(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)
