"""Run one blocking request through the official client and turn its outcome into JSON or a KubeError.

Shared by the client facade, the informer's list calls and the watch streams, so a failure reads the
same wherever it happens: the API's own ``Status`` message on one line, the HTTP status and reason
kept as attributes for callers that react to them (404, 409, 410, 422).

:func:`perform` is the lean path the facade uses. The generated API methods validate their arguments
with pydantic, turn a dict body into model objects and back, and serialise it with the standard
library; for a Job with a large pod template that round trip cost more CPU than everything else the
controller does per job. ``perform`` sends bytes the caller already encoded, through the same
``ApiClient``: its configuration and authentication (``update_params_for_auth``, which also refreshes
expiring tokens), its connection pool, TLS settings and retries, and its ``ApiException``. A response
nobody reads is not decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTResponse

from engine.kube import wire
from engine.kube.errors import AlreadyExistsError, InvalidObjectError, KubeAPIError, KubeError
from engine.model.jsonvalue import JSONObject

JSON_CONTENT = "application/json"
MERGE_PATCH_CONTENT = "application/merge-patch+json"
_AUTH_SETTINGS = ["BearerToken"]
"""The one security scheme the Kubernetes API declares (the generated methods pass the same)."""

Timeout = float | tuple[float, float] | None
"""Seconds for the whole request, or (connect, read); ``None`` waits as long as the pool allows."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _status_of(error: ApiException) -> tuple[str, str]:
    """``(message, reason)`` from the ``Status`` body of a failed request."""
    message, reason = "", str(error.reason or "")
    try:
        body = wire.decode(error.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        reason = str(body.get("reason") or reason)
    return _one_line(message), reason


def translate_api_exception(operation: str, error: ApiException) -> KubeError:
    """The :mod:`engine.kube.errors` class for a failed request (409 AlreadyExists and 422 Invalid get
    their own classes, whose message is exactly the API's; everything else is a KubeAPIError)."""
    status = int(error.status or 0)
    message, reason = _status_of(error)
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExistsError(message or f"{operation}: already exists", status=status, reason=reason)
    if status == 422:
        return InvalidObjectError(message or f"{operation}: invalid object", status=status, reason=reason)
    detail = message or reason or "no message"
    return KubeAPIError(f"{operation}: {detail} (HTTP {status})", status=status, reason=reason)


def connection_error(operation: str, error: BaseException) -> KubeAPIError:
    """A request that got no HTTP answer (refused, reset, timed out, TLS failure)."""
    detail = _one_line(str(error)) or type(error).__name__
    return KubeAPIError(f"{operation}: {detail}", reason="ConnectionError")


TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)
"""What the official client lets escape when the network, not the API server, fails."""


def run_request(operation: str, request: Callable[[], Any]) -> JSONObject:
    """Run ``request`` (made with ``_preload_content=False``) and decode its JSON body ({} if empty)."""
    try:
        response = request()
        raw = response.data
    except ApiException as error:
        raise translate_api_exception(operation, error) from None
    except TRANSPORT_ERRORS as error:
        raise connection_error(operation, error) from None
    return _decoded(operation, raw)


def _decoded(operation: str, raw: bytes | None) -> JSONObject:
    if not raw:
        return {}
    try:
        decoded = wire.decode(raw)
    except wire.DecodeError:
        raise KubeAPIError(f"{operation}: the API server answered with something that is not JSON") from None
    return decoded if isinstance(decoded, dict) else {}


@dataclass(frozen=True)
class Request:
    """One API request: ``path`` already URL-quoted, ``body`` already encoded (see :mod:`wire`)."""

    method: str
    path: str
    query: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    content_type: str = JSON_CONTENT


def perform(
    api: k8s_client.ApiClient,
    operation: str,
    request: Request,
    *,
    decode: bool = True,
    timeout: Timeout = None,
) -> JSONObject:
    """Send ``request`` through ``api``; its JSON answer when ``decode``, else ``{}`` (the body is
    still read, so the connection goes back to the pool). Raises like :func:`run_request`."""
    url = api.configuration.host + request.path
    if request.query:
        url += "?" + urlencode(request.query)
    headers: dict[str, str] = {**api.default_headers, "Accept": JSON_CONTENT}
    if api.cookie:
        headers["Cookie"] = api.cookie
    if request.body is not None:
        headers["Content-Type"] = request.content_type
    api.update_params_for_auth(headers, None, _AUTH_SETTINGS, request.path, request.method, None)
    try:
        response = _send(api, request, url, headers, timeout)
        raw = response.read()  # type: ignore[no-untyped-call]  # the client leaves it unannotated
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
    except ApiException as error:
        raise translate_api_exception(operation, error) from None
    except TRANSPORT_ERRORS as error:
        raise connection_error(operation, error) from None
    return _decoded(operation, raw) if decode else {}


def _send(
    api: k8s_client.ApiClient, request: Request, url: str, headers: dict[str, str], timeout: Timeout
) -> RESTResponse:
    if request.body is None:
        # Nothing to serialise: the client's own request path (with its read retries, if configured).
        response: RESTResponse = api.call_api(
            request.method, url, header_params=headers, _request_timeout=timeout
        )
        return response
    # The client would json-encode any body it is given; already-encoded bytes go to its pool directly.
    raw = api.rest_client.pool_manager.request(
        request.method,
        url,
        body=request.body,
        headers=headers,
        timeout=_urllib3_timeout(timeout),
        preload_content=False,
    )
    return RESTResponse(raw)


def _urllib3_timeout(timeout: Timeout) -> urllib3.Timeout | None:
    """The client's reading of ``_request_timeout`` (a number: total; a pair: connect, read)."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(total=timeout)
