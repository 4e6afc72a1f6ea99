"""The controller's door to the Kubernetes API: an async facade over the synchronous official client.

Every call runs a blocking request of the ``kubernetes`` package's ``ApiClient`` in a worker thread,
so the event loop never waits on the network. Objects go in and come out as plain dicts in the API's
wire shape, never as the package's model classes, because that is the shape policies produce and
watchers read: bodies are encoded once with :mod:`engine.kube.wire` and sent as bytes, and answers
nobody reads (a created Job, a patched one) are not decoded (see :func:`engine.kube.api_call.perform`).

Job creates run on an executor of their own, sized to ``job-creation-concurrency`` (the number of
creates the monitor's workers can have in flight), so a burst of creates neither waits behind other
blocking work nor makes it wait: policy evaluation, the watchers' calls and the informers' lists use
other threads.

Only the verbs the controller's Role grants are used (``engine.kube.permissions``): Jobs get/create/
patch, pods delete and evict, Secrets get, Events list. Failures become one of
:mod:`engine.kube.errors` with a one-line message taken from the API's ``Status``; nothing here ever
puts a token into a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import os
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from engine.kube import wire
from engine.kube.api_call import MERGE_PATCH_CONTENT, Request, perform
from engine.kube.errors import (
    AgentTokenError,
    AlreadyExistsError,
    InvalidObjectError,
    KubeAPIError,
    KubeConfigError,
    KubeError,
)
from engine.kube.events import render_events
from engine.kube.objects import list_at, name_of, namespace_of, uid_of
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
DEFAULT_CREATE_WORKERS = 5
"""Threads creating Jobs at once (upstream's default ``job-creation-concurrency``)."""

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


def _segment(value: str) -> str:
    """One URL path segment (a namespace or a name), quoted."""
    return quote(value, safe="")


class KubeClient:
    """Async access to the few API calls the controller makes, in one default namespace.

    ``create_workers`` threads create Jobs (see the module doc); :meth:`close` stops them.
    """

    def __init__(
        self, api: k8s_client.ApiClient, namespace: str, *, create_workers: int = DEFAULT_CREATE_WORKERS
    ) -> None:
        self.api = api
        self.namespace = namespace
        self._eviction_version: str | None = None
        self._create_executor = ThreadPoolExecutor(
            max_workers=max(create_workers, 1), thread_name_prefix="kube-create"
        )

    def close(self) -> None:
        """Stop the create threads (creates already sent finish; the API client is the caller's)."""
        self._create_executor.shutdown(wait=False, cancel_futures=True)

    async def _call(
        self, operation: str, request: Request, *, decode: bool = True, executor: Executor | None = None
    ) -> JSONObject:
        loop = asyncio.get_running_loop()
        work = functools.partial(perform, self.api, operation, request, decode=decode)
        return await loop.run_in_executor(executor, work)

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    def _job_path(self, namespace: str, name: str = "") -> str:
        path = f"/apis/batch/v1/namespaces/{_segment(namespace)}/jobs"
        return f"{path}/{_segment(name)}" if name else path

    def _pod_path(self, namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{_segment(namespace)}/pods/{_segment(name)}"

    async def create_job(self, manifest: Mapping[str, Any], *, want_uid: bool = False) -> str | None:
        """Create a batch/v1 Job (in its ``metadata.namespace``, else the default). The answer (the
        stored Job) is not decoded unless ``want_uid``, which returns the new Job's UID (to own other
        objects); otherwise the informer delivers it. Raises :class:`AlreadyExistsError`,
        :class:`InvalidObjectError` or :class:`KubeAPIError`."""
        namespace = self._ns(namespace_of(manifest))
        operation = f"create Job {namespace}/{name_of(manifest)}"
        try:
            body = wire.encode(manifest)
        except wire.EncodeError as error:
            raise InvalidObjectError(f"{operation}: the Job is not JSON: {error}", reason="Invalid") from None
        created = await self._call(
            operation,
            Request("POST", self._job_path(namespace), body=body),
            decode=want_uid,
            executor=self._create_executor,
        )
        return (uid_of(created) or None) if want_uid else None

    async def delete_job(self, name: str, namespace: str | None = None, *, uid: str | None = None) -> None:
        """Delete the Job and (in the background) its pods; with ``uid``, only if it is still that Job.
        A Job that is already gone is fine."""
        namespace = self._ns(namespace)
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self._call(
                f"delete Job {namespace}/{name}",
                Request("DELETE", self._job_path(namespace, name), body=wire.encode(options)),
                decode=False,
            )
        except KubeAPIError as error:
            if error.status != 404:
                raise

    async def create_secret(self, manifest: Mapping[str, Any]) -> None:
        """Create a core/v1 Secret (in its ``metadata.namespace``, else the default). Its data is never
        part of an error message. Raises :class:`AlreadyExistsError` or :class:`KubeAPIError`."""
        namespace = self._ns(namespace_of(manifest))
        await self._call(
            f"create Secret {namespace}/{name_of(manifest)}",
            Request("POST", f"/api/v1/namespaces/{_segment(namespace)}/secrets", body=wire.encode(manifest)),
            decode=False,
        )

    async def delete_secret(self, name: str, namespace: str | None = None) -> None:
        """Delete a Secret; one that is already gone is fine."""
        namespace = self._ns(namespace)
        try:
            await self._call(
                f"delete Secret {namespace}/{name}",
                Request("DELETE", f"/api/v1/namespaces/{_segment(namespace)}/secrets/{_segment(name)}"),
                decode=False,
            )
        except KubeAPIError as error:
            if error.status != 404:
                raise

    async def get_job(self, name: str, namespace: str | None = None) -> JSONObject | None:
        """The Job as the API server has it now, or ``None`` when it does not exist."""
        namespace = self._ns(namespace)
        try:
            return await self._call(
                f"get Job {namespace}/{name}", Request("GET", self._job_path(namespace, name))
            )
        except KubeAPIError as error:
            if error.status == 404:
                return None
            raise

    async def get_pod_template(self, name: str, namespace: str | None = None) -> JSONObject | None:
        """The PodTemplate ``name`` (a step's ``podTemplate``), or ``None`` when it does not exist."""
        namespace = self._ns(namespace)
        try:
            return await self._call(
                f"get PodTemplate {namespace}/{name}",
                Request("GET", f"/api/v1/namespaces/{_segment(namespace)}/podtemplates/{_segment(name)}"),
            )
        except KubeAPIError as error:
            if error.status == 404:
                return None
            raise

    async def set_job_active_deadline(self, name: str, seconds: int, namespace: str | None = None) -> None:
        """Set ``spec.activeDeadlineSeconds`` with a JSON merge patch (no read-modify-write, so no
        conflicts). Kubernetes then ends the Job once it has been active that long."""
        namespace = self._ns(namespace)
        patch = wire.encode({"spec": {"activeDeadlineSeconds": int(seconds)}})
        await self._call(
            f"set activeDeadlineSeconds on Job {namespace}/{name}",
            Request("PATCH", self._job_path(namespace, name), body=patch, content_type=MERGE_PATCH_CONTENT),
            decode=False,
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
            Request("GET", f"/api/v1/namespaces/{_segment(namespace)}/secrets/{_segment(secret_name)}"),
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
            Request(
                "GET", f"/api/v1/namespaces/{_segment(namespace)}/events", query=[("fieldSelector", selector)]
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
                    f"evict pod {namespace}/{name}",
                    self._eviction_request(name, namespace, version),
                    decode=False,
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

    def _eviction_request(self, name: str, namespace: str, version: str) -> Request:
        body = {"apiVersion": version, "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        return Request("POST", self._pod_path(namespace, name) + "/eviction", body=wire.encode(body))

    async def delete_pod(
        self, name: str, namespace: str | None = None, grace_period_seconds: int | None = 0
    ) -> None:
        """Delete the pod (by default at once, grace period 0); a pod that is already gone is fine."""
        namespace = self._ns(namespace)
        query = [] if grace_period_seconds is None else [("gracePeriodSeconds", str(grace_period_seconds))]
        try:
            await self._call(
                f"delete pod {namespace}/{name}",
                Request("DELETE", self._pod_path(namespace, name), query=query),
                decode=False,
            )
        except KubeAPIError as error:
            if error.status != 404:
                raise
