"""Errors the Kubernetes adapter raises, one class per reaction a caller needs.

The scheduler treats them differently (behaviour spec §4.6): a Job that already exists is a
duplicate, an object the API server rejects as invalid fails the Buildkite job with the server's
message, anything else is retried later. Messages are single lines built from the API's own status
message; they never contain credentials (the client's bearer token only travels in headers).
"""

from __future__ import annotations


class KubeError(Exception):
    """Base of every error this package raises; ``status`` is the HTTP status (0 when the request never
    got an answer) and ``reason`` the API's machine-readable reason (``NotFound``, ``Forbidden``...)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubeAPIError(KubeError):
    """A request failed for a reason without its own class (forbidden, not found, network, server
    error...). Usually worth retrying later."""


class AlreadyExistsError(KubeError):
    """The object being created already exists (HTTP 409 ``AlreadyExists``)."""


class InvalidObjectError(KubeError):
    """The API server rejected the object as invalid (HTTP 422). The message is the server's own,
    e.g. ``Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value``."""


class AgentTokenError(KubeAPIError):
    """The agent-token Secret exists but holds no usable ``BUILDKITE_AGENT_TOKEN``."""


class KubeConfigError(KubeError):
    """No usable client configuration (not in a cluster, and no readable kubeconfig)."""
