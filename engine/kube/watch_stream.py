"""One Kubernetes watch request, read on its own thread and handed to the event loop line by line.

The official client is synchronous and a watch is a long-lived HTTP response, so reading it would
block the event loop; each stream therefore gets a daemon thread that parses the newline-delimited
JSON events and passes each one to ``deliver`` (which the informer makes a thread-safe hand-over to
the loop). The loop stays the only place that touches informer state.

A stream stops when the server ends it (``timeoutSeconds``), when the connection fails, or when
:meth:`WatchStream.close` shuts the socket down from the loop's side, which unblocks the reading
thread at once instead of waiting for the next byte.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from engine.kube import wire
from engine.kube.api_call import TRANSPORT_ERRORS, connection_error, translate_api_exception
from engine.kube.errors import KubeError
from engine.kube.transforms import Transform, without_managed_fields

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamEvent:
    """One decoded watch event: ``type`` is ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."""

    type: str
    object: dict[str, Any]


@dataclass(frozen=True)
class StreamEnd:
    """The stream is over; ``error`` says why when it did not simply end."""

    error: KubeError | None = None


StreamItem = StreamEvent | StreamEnd
Opener = Callable[[], Any]
"""Starts the watch request and returns the streaming urllib3 response."""


def _decode(line: bytes, transform: Transform) -> StreamEvent | None:
    try:
        data = wire.decode(line)
    except wire.DecodeError:
        _log.warning("ignoring a watch line that is not JSON: %s", line[:200].decode("utf-8", "replace"))
        return None
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return None
    event_type = str(data.get("type", ""))
    obj = data["object"]
    # ERROR carries a Status and BOOKMARK only a resourceVersion: nothing to trim.
    return StreamEvent(type=event_type, object=transform(obj) if event_type in _OBJECT_EVENTS else obj)


_OBJECT_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})


class WatchStream:
    """Reads one watch response on a daemon thread; create, :meth:`start`, then :meth:`close`.

    ``transform`` runs on each object on this thread, before it is delivered (see
    :mod:`engine.kube.transforms`), so the loop only ever sees the trimmed object.
    """

    def __init__(
        self,
        open_request: Opener,
        deliver: Callable[[StreamItem], None],
        *,
        name: str,
        transform: Transform = without_managed_fields,
    ) -> None:
        self._open_request = open_request
        self._deliver = deliver
        self._name = name
        self._transform = transform
        self._lock = threading.Lock()
        self._closed = False
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop reading; safe from any thread, any number of times. Items already delivered stay."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            response = self._response
        if response is not None:
            _interrupt(response)

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def _send(self, item: StreamItem) -> bool:
        """Deliver unless closed; False when the receiver is gone (closed stream or stopped loop)."""
        if self.closed:
            return False
        try:
            self._deliver(item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            return False
        return True

    def _run(self) -> None:
        try:
            response = self._open_request()
        except ApiException as error:
            self._send(StreamEnd(translate_api_exception(f"watch {self._name}", error)))
            return
        except TRANSPORT_ERRORS as error:
            self._send(StreamEnd(connection_error(f"watch {self._name}", error)))
            return
        with self._lock:
            if self._closed:
                _interrupt(response)
                return
            self._response = response
        problem: KubeError | None = None
        try:
            if not self._pump(response):
                return
        except (*TRANSPORT_ERRORS, ValueError) as failure:
            if self.closed:
                return
            problem = connection_error(f"watch {self._name}", failure)
        finally:
            with contextlib.suppress(Exception):
                response.close()
        self._send(StreamEnd(problem))

    def _pump(self, response: Any) -> bool:
        """Deliver each complete line; False when delivery stopped because nobody listens."""
        buffer = bytearray()
        for chunk in response.stream(amt=None, decode_content=True):
            buffer.extend(chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8"))
            while (newline := buffer.find(b"\n")) != -1:
                line = bytes(buffer[:newline]).strip()
                del buffer[: newline + 1]
                if not line:
                    continue
                event = _decode(line, self._transform)
                if event is not None and not self._send(event):
                    return False
        if buffer.strip():
            event = _decode(bytes(buffer).strip(), self._transform)
            if event is not None and not self._send(event):
                return False
        return True


def _interrupt(response: Any) -> None:
    """Unblock a thread reading ``response``: shut the socket's read side down, then close it."""
    try:
        response.shutdown()  # urllib3 >= 2.3
    except (AttributeError, ValueError, RuntimeError, OSError):
        connection = getattr(response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
