"""A list-then-watch cache of one kind of object in one namespace, feeding handlers on the event loop.

This is what client-go's shared informer does for upstream's controller, reduced to what the
controller needs:

* **List**, then deliver every object as an ``added`` event with ``initial=True`` (the deduper and
  limiter rebuild their state from these after a restart); :meth:`Informer.wait_synced` returns
  once they have all been handled.
* **Watch** from the list's ``resourceVersion`` and deliver ``added``/``modified``/``deleted``
  events in the order the API server sent them. ``modified`` and ``deleted`` carry the previous
  state as ``old``.
* **Resume** when a watch ends (the server's ``timeoutSeconds``, a dropped connection) from the last
  ``resourceVersion`` seen (objects or bookmarks), so nothing is missed and nothing repeats.
* **410 Gone** (the resume point is older than what the server still remembers): list again and
  deliver only the *differences* from the cache (``deleted`` for objects that vanished, ``modified``
  for changed ones, ``added`` for new ones; an object re-created under the same name is a delete plus
  an add), so subscribers stay exact without seeing everything twice.

Handlers run on the event loop, one event at a time, in subscription order; an exception in one is
logged and does not stop the others or the informer. The watch itself runs on a thread
(:mod:`engine.kube.watch_stream`), so the loop never blocks on the network.

``run`` can be stopped (cancelled) and called again: the cache and resume point are kept, and the
next watch continues from where the last one stopped (or relists if the server has moved on).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from kubernetes import client as k8s_client

from engine.kube.api_call import run_request
from engine.kube.errors import KubeError
from engine.kube.objects import (
    int_at,
    list_at,
    name_of,
    namespace_of,
    resource_version_of,
    string_at,
    uid_of,
)
from engine.kube.transforms import Transform, without_managed_fields
from engine.kube.watch_stream import StreamEnd, StreamEvent, StreamItem, WatchStream
from engine.model.jsonvalue import JSONObject

__all__ = ["Informer", "InformerStats", "ResourceName", "WatchEvent"]

ResourceName = Literal["jobs", "pods", "events"]
EventKind = Literal["added", "modified", "deleted"]

_log = logging.getLogger(__name__)

_WATCH_TIMEOUT_RANGE = (300, 600)
"""Seconds the server keeps a watch open (random in this range, as client-go does, so that many
clients do not reconnect in lockstep)."""
_READ_TIMEOUT_MARGIN = 30.0
"""Extra seconds past ``timeoutSeconds`` before a silent connection is considered dead."""
_CONNECT_TIMEOUT = 10.0
_SHORT_WATCH_SECONDS = 1.0


@dataclass(frozen=True)
class WatchEvent:
    """One change delivered to handlers; ``obj`` is the object now (for ``deleted``: its last state),
    ``old`` the informer's previous copy (``None`` for ``added``), ``initial`` is True only for the
    objects of the very first list."""

    kind: EventKind
    obj: JSONObject
    old: JSONObject | None
    initial: bool


@dataclass
class InformerStats:
    """Counters describing what the informer has done, for logs, metrics and tests."""

    lists: int = 0
    """Completed lists (the first one plus every relist after 410 Gone)."""
    watches: int = 0
    """Watch requests started."""
    expired: int = 0
    """Watches the server refused with 410 Gone (each followed by a relist)."""
    errors: int = 0
    """Failed lists or watches (each followed by a back-off)."""
    events: int = 0
    """Events delivered to handlers."""


class _Outcome(Enum):
    ENDED = "ended"
    EXPIRED = "expired"
    FAILED = "failed"


def _lister(api: k8s_client.ApiClient, resource: ResourceName) -> Callable[..., Any]:
    if resource == "jobs":
        return k8s_client.BatchV1Api(api).list_namespaced_job
    if resource == "pods":
        return k8s_client.CoreV1Api(api).list_namespaced_pod
    if resource == "events":
        return k8s_client.CoreV1Api(api).list_namespaced_event
    raise ValueError(f"unsupported resource {resource!r}; expected jobs, pods or events")


def _key(obj: JSONObject) -> str:
    return f"{namespace_of(obj)}/{name_of(obj)}"


class _Backoff:
    """Exponential back-off with jitter between failed lists/watches (0.5 s doubling up to a cap)."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._maximum)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self._initial


class Informer:
    """List-and-watch cache of ``resource`` in ``namespace`` matching ``label_selector``."""

    def __init__(
        self,
        api: k8s_client.ApiClient,
        resource: ResourceName,
        namespace: str,
        label_selector: str,
        *,
        name: str,
        watch_timeout_seconds: int | None = None,
        page_size: int = 500,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        transform: Transform = without_managed_fields,
    ) -> None:
        """``transform`` turns each object as listed or watched into what is stored and delivered
        (see :mod:`engine.kube.transforms`); by default only ``managedFields`` is dropped."""
        self.name = name
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.stats = InformerStats()
        self._list_function = _lister(api, resource)
        self._watch_timeout_seconds = watch_timeout_seconds
        self._transform = transform
        self._page_size = page_size
        self._backoff = _Backoff(initial_backoff, max_backoff)
        self._handlers: list[Callable[[WatchEvent], None]] = []
        self._store: dict[str, JSONObject] = {}
        self._resource_version: str | None = None
        self._synced = asyncio.Event()
        self._running = False

    # ---- public surface ---------------------------------------------------------------------------

    def subscribe(self, handler: Callable[[WatchEvent], None]) -> None:
        """Call ``handler`` for every event from now on. Subscribe before :meth:`run` to see the
        initial list."""
        self._handlers.append(handler)

    async def wait_synced(self) -> None:
        """Return once the first list has been delivered to every handler."""
        await self._synced.wait()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def objects(self) -> list[JSONObject]:
        """The cached objects (treat them as read-only)."""
        return list(self._store.values())

    @property
    def resource_version(self) -> str | None:
        """Where the next watch starts; ``None`` when the next step is a (re)list."""
        return self._resource_version

    async def run(self) -> None:
        """List, then watch forever; returns only by cancellation (state is kept for the next run)."""
        if self._running:
            raise RuntimeError(f"informer {self.name} is already running")
        self._running = True
        try:
            while True:
                if self._resource_version is None:
                    try:
                        await self._relist()
                    except KubeError as error:
                        self.stats.errors += 1
                        delay = self._backoff.next_delay()
                        _log.warning(
                            "informer %s: list failed, retrying in %.1fs: %s", self.name, delay, error
                        )
                        await asyncio.sleep(delay)
                        continue
                outcome = await self._watch()
                if outcome is _Outcome.EXPIRED:
                    self.stats.expired += 1
                    _log.info("informer %s: resume point expired (410 Gone); relisting", self.name)
                    self._resource_version = None
                elif outcome is _Outcome.FAILED:
                    self.stats.errors += 1
                    await asyncio.sleep(self._backoff.next_delay())
        finally:
            self._running = False

    # ---- list -------------------------------------------------------------------------------------

    def _list_all(self) -> tuple[list[JSONObject], str]:
        """Every matching object (page by page) and the list's resourceVersion. Runs on a thread."""
        operation = f"list {self.resource} in {self.namespace} ({self.name})"
        items: list[JSONObject] = []
        continue_token: str | None = None
        while True:
            page = run_request(operation, self._page_request(continue_token))
            kind = string_at(page, "kind").removesuffix("List")
            api_version = string_at(page, "apiVersion")
            for item in list_at(page, "items"):
                if isinstance(item, dict):
                    items.append(self._transform({"kind": kind, "apiVersion": api_version, **item}))
            continue_token = string_at(page, "metadata", "continue") or None
            if continue_token is None:
                return items, string_at(page, "metadata", "resourceVersion")

    def _page_request(self, continue_token: str | None) -> Callable[[], Any]:
        return lambda: self._list_function(
            self.namespace,
            label_selector=self.label_selector or None,
            limit=self._page_size,
            _continue=continue_token,
            _preload_content=False,
        )

    async def _relist(self) -> None:
        items, resource_version = await asyncio.to_thread(self._list_all)
        self.stats.lists += 1
        initial = not self._synced.is_set()
        fresh = {_key(item): item for item in items}
        for key in [key for key in self._store if key not in fresh]:
            gone = self._store.pop(key)
            self._emit("deleted", gone, gone, initial=False)
        for key, item in fresh.items():
            previous = self._store.get(key)
            if previous is not None and uid_of(previous) != uid_of(item):
                del self._store[key]
                self._emit("deleted", previous, previous, initial=False)
                previous = None
            self._store[key] = item
            if previous is None:
                self._emit("added", item, None, initial=initial)
            elif resource_version_of(previous) != resource_version_of(item):
                self._emit("modified", item, previous, initial=False)
        self._resource_version = resource_version
        self._backoff.reset()
        self._synced.set()
        _log.debug("informer %s: listed %d objects at %s", self.name, len(items), resource_version)

    # ---- watch ------------------------------------------------------------------------------------

    def _open_watch(self, resource_version: str) -> Any:
        timeout = self._watch_timeout_seconds or random.randint(*_WATCH_TIMEOUT_RANGE)
        return self._list_function(
            self.namespace,
            label_selector=self.label_selector or None,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=(_CONNECT_TIMEOUT, timeout + _READ_TIMEOUT_MARGIN),
        )

    async def _watch(self) -> _Outcome:
        resource_version = self._resource_version or ""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()

        def deliver(item: StreamItem) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        stream = WatchStream(
            lambda: self._open_watch(resource_version),
            deliver,
            name=f"{self.name} {self.resource}",
            transform=self._transform,
        )
        self.stats.watches += 1
        started = time.monotonic()
        received = 0
        stream.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, StreamEnd):
                    return self._ended(item, received, time.monotonic() - started)
                received += 1
                outcome = self._apply(item)
                if outcome is not None:
                    return outcome
        finally:
            stream.close()

    def _ended(self, end: StreamEnd, received: int, seconds: float) -> _Outcome:
        if end.error is not None:
            if end.error.status == 410:
                return _Outcome.EXPIRED
            _log.warning("informer %s: watch failed: %s", self.name, end.error)
            return _Outcome.FAILED
        if received == 0 and seconds < _SHORT_WATCH_SECONDS and not self._watch_timeout_seconds:
            _log.warning("informer %s: watch ended at once without events", self.name)
            return _Outcome.FAILED
        self._backoff.reset()
        return _Outcome.ENDED

    def _apply(self, event: StreamEvent) -> _Outcome | None:
        """Apply one watch event to the cache and deliver it; an outcome ends the watch."""
        obj = event.object
        if event.type == "ERROR":
            if int_at(obj, "code") == 410:
                return _Outcome.EXPIRED
            _log.warning(
                "informer %s: watch reported error %d: %s",
                self.name,
                int_at(obj, "code"),
                string_at(obj, "message"),
            )
            return _Outcome.FAILED
        resource_version = resource_version_of(obj)
        if event.type == "BOOKMARK":
            if resource_version:
                self._resource_version = resource_version
            return None
        key = _key(obj)
        previous = self._store.get(key)
        if event.type in ("ADDED", "MODIFIED"):
            self._store[key] = obj
            if previous is None:
                self._emit("added", obj, None, initial=False)
            elif resource_version_of(previous) != resource_version or uid_of(previous) != uid_of(obj):
                self._emit("modified", obj, previous, initial=False)
        elif event.type == "DELETED":
            self._store.pop(key, None)
            self._emit("deleted", obj, previous, initial=False)
        else:
            _log.warning("informer %s: ignoring a watch event of unknown type %r", self.name, event.type)
        if resource_version:
            self._resource_version = resource_version
        return None

    def _emit(self, kind: EventKind, obj: JSONObject, old: JSONObject | None, *, initial: bool) -> None:
        event = WatchEvent(kind=kind, obj=obj, old=old, initial=initial)
        self.stats.events += 1
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                _log.exception("informer %s: handler failed on %s %s", self.name, kind, _key(obj))
