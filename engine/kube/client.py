"""The controller's door to the Kubernetes API: an async facade over the synchronous official client.

Every call runs the ``kubernetes`` package's blocking request in a worker thread
(``asyncio.to_thread``), so the event loop never waits on the network. Objects go in and come out as
plain dicts in the API's wire shape (``_preload_content=False`` and ``json.loads``), never as the
package's model classes, because that is the shape policies produce and watchers read.

Only the verbs the controller's Role grants are used (``engine.kube.permissions``): Jobs get/create/
patch, pods delete and evict, Secrets get, Events list. Failures become one of
:mod:`engine.kube.errors` with a one-line message taken from the API's ``Status``; nothing here ever
puts a token into a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from engine.kube.api_call import run_request
from engine.kube.errors import (
    AgentTokenError,
    AlreadyExistsError,
    InvalidObjectError,
    KubeAPIError,
    KubeConfigError,
    KubeError,
)
from engine.kube.events import render_events
from engine.kube.objects import list_at, name_of, namespace_of
from engine.model.jsonvalue import JSONObject

__all__ = [
    "AGENT_TOKEN_KEY",
    "AgentTokenError",
    "AlreadyExistsError",
    "InvalidObjectError",
    "KubeAPIError",
    "KubeClient",
    "KubeConfigError",
    "KubeError",
    "load_api_client",
]

AGENT_TOKEN_KEY = "BUILDKITE_AGENT_TOKEN"
"""The Secret key holding the agent token (upstream's name, shared with the Helm chart)."""
DEFAULT_POOL_SIZE = 32
"""HTTP connections kept per API server: one per concurrent worker thread, plus the watch streams."""

_MERGE_PATCH = "application/merge-patch+json"
_IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")
_log = logging.getLogger(__name__)


# ---- configuration -----------------------------------------------------------------------------------


def load_api_client(
    kubeconfig: str | None = None, *, pool_size: int = DEFAULT_POOL_SIZE
) -> k8s_client.ApiClient:
    """A configured ``ApiClient``, found the way controller-runtime's ``GetConfig`` finds one:

    1. ``kubeconfig`` (the ``--kubeconfig`` flag) when given;
    2. else the ``KUBECONFIG`` environment variable (may list several files, ``:``-separated);
    3. else the in-cluster service account, when running in a pod;
    4. else ``~/.kube/config``.

    Raises :class:`KubeConfigError` with one line saying what was tried.
    """
    configuration = k8s_client.Configuration()
    explicit = kubeconfig or os.environ.get("KUBECONFIG", "")
    try:
        if explicit:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=explicit, client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST") and _IN_CLUSTER_TOKEN.exists():
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            default = Path.home() / ".kube" / "config"
            if not default.exists():
                raise KubeConfigError(
                    "no Kubernetes configuration: not running in a cluster, no --kubeconfig or KUBECONFIG, "
                    f"and {default} does not exist"
                )
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(default), client_configuration=configuration
            )
    except (ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as error:
        where = explicit or "the in-cluster service account"
        detail = " ".join(str(error).split()) or type(error).__name__
        raise KubeConfigError(f"cannot load Kubernetes configuration from {where}: {detail}") from None
    configuration.connection_pool_maxsize = max(pool_size, 1)
    return k8s_client.ApiClient(configuration)


# ---- the facade --------------------------------------------------------------------------------------


class KubeClient:
    """Async access to the few API calls the controller makes, in one default namespace."""

    def __init__(self, api: k8s_client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._core = k8s_client.CoreV1Api(api)
        self._batch = k8s_client.BatchV1Api(api)
        self._eviction_version: str | None = None

    async def _call(self, operation: str, request: Callable[[], Any]) -> JSONObject:
        return await asyncio.to_thread(run_request, operation, request)

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    async def create_job(self, manifest: Mapping[str, Any]) -> JSONObject:
        """Create a batch/v1 Job (in its ``metadata.namespace``, else the default) and return it as
        the server stored it. Raises :class:`AlreadyExistsError`, :class:`InvalidObjectError` or
        :class:`KubeAPIError`."""
        namespace = self._ns(namespace_of(manifest))
        operation = f"create Job {namespace}/{name_of(manifest)}"
        body: Any = dict(manifest)
        return await self._call(
            operation,
            lambda: self._batch.create_namespaced_job(namespace, body, _preload_content=False),
        )

    async def get_job(self, name: str, namespace: str | None = None) -> JSONObject | None:
        """The Job as the API server has it now, or ``None`` when it does not exist."""
        namespace = self._ns(namespace)
        try:
            return await self._call(
                f"get Job {namespace}/{name}",
                lambda: self._batch.read_namespaced_job(name, namespace, _preload_content=False),
            )
        except KubeAPIError as error:
            if error.status == 404:
                return None
            raise

    async def set_job_active_deadline(self, name: str, seconds: int, namespace: str | None = None) -> None:
        """Set ``spec.activeDeadlineSeconds`` with a JSON merge patch (no read-modify-write, so no
        conflicts). Kubernetes then ends the Job once it has been active that long."""
        namespace = self._ns(namespace)
        patch = {"spec": {"activeDeadlineSeconds": int(seconds)}}
        await self._call(
            f"set activeDeadlineSeconds on Job {namespace}/{name}",
            lambda: self._batch.patch_namespaced_job(
                name, namespace, patch, _content_type=_MERGE_PATCH, _preload_content=False
            ),
        )

    async def read_agent_token(self, secret_name: str, namespace: str | None = None) -> str:
        """The ``BUILDKITE_AGENT_TOKEN`` value of the Secret, read now (so a rotated token is used).

        Raises :class:`AgentTokenError` ("agent token is empty") when the key is missing or empty,
        :class:`KubeAPIError` when the Secret cannot be read. The token never appears in any message.
        """
        namespace = self._ns(namespace)
        where = f"Secret {namespace}/{secret_name}"
        secret = await self._call(
            f"read {where}",
            lambda: self._core.read_namespaced_secret(secret_name, namespace, _preload_content=False),
        )
        data = secret.get("data")
        encoded = data.get(AGENT_TOKEN_KEY) if isinstance(data, dict) else None
        token = ""
        if isinstance(encoded, str):
            try:
                token = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
            except (binascii.Error, UnicodeDecodeError):
                raise AgentTokenError(f"{where}: {AGENT_TOKEN_KEY} is not valid base64 text") from None
        if not token:
            raise AgentTokenError(
                f"{where}: {AGENT_TOKEN_KEY}: agent token is empty", reason="EmptyAgentToken"
            )
        return token

    async def list_events(self, kind: str, name: str, namespace: str | None = None) -> list[JSONObject]:
        """Events whose ``involvedObject`` is the ``kind`` object called ``name``."""
        namespace = self._ns(namespace)
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        listing = await self._call(
            f"list events for {kind} {namespace}/{name}",
            lambda: self._core.list_namespaced_event(
                namespace, field_selector=selector, _preload_content=False
            ),
        )
        return [item for item in list_at(listing, "items") if isinstance(item, dict)]

    async def events_table(self, kind: str, name: str, namespace: str | None = None) -> str:
        """The events table for a failure message (:func:`engine.kube.events.render_events`); when the
        events cannot be listed, a line saying so instead (a failure message is still worth sending)."""
        try:
            events = await self.list_events(kind, name, namespace)
        except KubeError as error:
            _log.warning("could not list events for %s %s: %s", kind, name, error)
            return f"Couldn't get events for {kind.lower()} {name}: {error}"
        return render_events(events)

    async def evict_pod(self, pod: Mapping[str, Any]) -> None:
        """Evict the pod through the ``pods/eviction`` subresource (which honours PodDisruptionBudgets).

        ``policy/v1`` first, falling back to ``policy/v1beta1`` on API servers older than v1.22 (the
        version that worked is remembered). A pod that is already gone counts as evicted.
        """
        name = name_of(pod)
        namespace = self._ns(namespace_of(pod))
        versions = [self._eviction_version] if self._eviction_version else list(_EVICTION_VERSIONS)
        for index, version in enumerate(versions):
            try:
                await self._call(
                    f"evict pod {namespace}/{name}", self._eviction_request(name, namespace, version)
                )
            except KubeAPIError as error:
                if error.status == 404:
                    return
                unsupported = error.status == 400 and 'no kind "Eviction" is registered' in str(error)
                if unsupported and index + 1 < len(versions):
                    continue
                raise
            self._eviction_version = version
            return

    def _eviction_request(self, name: str, namespace: str, version: str) -> Callable[[], Any]:
        body: Any = {
            "apiVersion": version,
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        return lambda: self._core.create_namespaced_pod_eviction(
            name, namespace, body, _preload_content=False
        )

    async def delete_pod(
        self, name: str, namespace: str | None = None, grace_period_seconds: int | None = 0
    ) -> None:
        """Delete the pod (by default at once, grace period 0); a pod that is already gone is fine."""
        namespace = self._ns(namespace)
        try:
            await self._call(
                f"delete pod {namespace}/{name}",
                lambda: self._core.delete_namespaced_pod(
                    name, namespace, grace_period_seconds=grace_period_seconds, _preload_content=False
                ),
            )
        except KubeAPIError as error:
            if error.status != 404:
                raise
