"""Run one blocking request of the official client and turn its outcome into JSON or a KubeError.

Shared by the client facade, the informer's list calls and the watch streams, so a failure reads the
same wherever it happens: the API's own ``Status`` message on one line, the HTTP status and reason
kept as attributes for callers that react to them (404, 409, 410, 422).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from engine.kube.errors import AlreadyExistsError, InvalidObjectError, KubeAPIError, KubeError
from engine.model.jsonvalue import JSONObject


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _status_of(error: ApiException) -> tuple[str, str]:
    """``(message, reason)`` from the ``Status`` body of a failed request."""
    message, reason = "", str(error.reason or "")
    try:
        body = json.loads(error.body or "")
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
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise KubeAPIError(f"{operation}: the API server answered with something that is not JSON") from None
    return decoded if isinstance(decoded, dict) else {}
