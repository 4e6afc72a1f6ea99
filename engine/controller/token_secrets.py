"""The Secret that carries a job's acquisition token into its pod (``job-acquisition-tokens``).

A job acquisition token is a bearer credential, so the Job never holds it (Buildkite's guide: keep it
out of persistent workload definitions, give it to the agent container only). The policy points the
agent container's ``BUILDKITE_AGENT_TOKEN`` at a Secret named by the job's UUID
(:func:`engine.model.acquisition_token.acquisition_token_secret_name`); this module creates that
Secret, right after the Job, owned by the Job, so Kubernetes deletes it with the Job, and deletes it
itself as soon as the Job has finished (:class:`TokenSecretJanitor`).

Order and duplicates: the Job is created first. Its name is what makes a Buildkite job's Kubernetes
Job unique (two controllers sharing a stack key may both hold the job), so only the controller whose
create succeeded writes the Secret, and one whose create met ``AlreadyExists`` touches nothing. If the
Secret cannot be written after a few tries, the new Job is deleted again (its pod could never start)
and the error is raised, so the job is tried again while its reservation lasts.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from engine.controller.metrics import StacksMetrics
from engine.controller.watchers.background import BackgroundTasks
from engine.kube.errors import AlreadyExistsError, KubeError
from engine.kube.informer import WatchEvent
from engine.kube.labels import CONTROLLER_ID_LABEL, JOB_UUID_LABEL, job_is_finished, job_uuid_of
from engine.kube.objects import name_of, namespace_of
from engine.model.acquisition_token import SECRET_KEY, acquisition_token_secret_name
from engine.model.jsonvalue import JSONObject

ATTEMPTS = 3
FIRST_DELAY = 0.5

_log = logging.getLogger(__name__)


class TokenSecretsAPI(Protocol):
    """The Kubernetes calls made here (``KubeClient`` satisfies it)."""

    async def create_job(self, manifest: Mapping[str, Any], *, want_uid: bool = False) -> str | None: ...

    async def delete_job(
        self, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> None: ...

    async def create_secret(self, manifest: Mapping[str, Any]) -> None: ...

    async def delete_secret(self, name: str, namespace: str | None = None) -> None: ...


def token_secret_manifest(
    job_uuid: str, token: str, *, job_name: str, job_uid: str, namespace: str, controller_id: str
) -> JSONObject:
    """The immutable Secret holding ``token``, labelled like the Job and owned by it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": {
            "name": acquisition_token_secret_name(job_uuid),
            "namespace": namespace,
            "labels": {JOB_UUID_LABEL: job_uuid, CONTROLLER_ID_LABEL: controller_id},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": job_uid,
                    "controller": True,
                }
            ],
        },
        "data": {SECRET_KEY: base64.b64encode(token.encode("utf-8")).decode("ascii")},
    }


class TokenSecretCreationError(Exception):
    """The Secret could not be written; the Job was deleted again."""


class AcquisitionTokenSecrets:
    """Creates a Job together with its acquisition token Secret (the scheduler's path for such jobs)."""

    def __init__(
        self,
        kube: TokenSecretsAPI,
        controller_id: str,
        metrics: StacksMetrics,
        *,
        first_delay: float = FIRST_DELAY,
    ) -> None:
        self._kube = kube
        self._controller_id = controller_id
        self._metrics = metrics
        self._first_delay = first_delay

    async def create_job_with_token(self, manifest: JSONObject, job_uuid: str, token: str) -> None:
        """Create the Job, then its token Secret; raises what the Job's create raised (``AlreadyExists``
        means another controller has the Job: nothing else is touched), or
        :class:`TokenSecretCreationError`."""
        uid = await self._kube.create_job(manifest, want_uid=True)
        name, namespace = name_of(manifest), namespace_of(manifest)
        secret = token_secret_manifest(
            job_uuid,
            token,
            job_name=name,
            job_uid=uid or "",
            namespace=namespace,
            controller_id=self._controller_id,
        )
        delay = self._first_delay
        problem = "no attempt made"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._kube.create_secret(secret)
            except AlreadyExistsError:
                # Left by an earlier Job of this job (deleted, its Secret not collected yet): replace it.
                problem = "a Secret of that name already exists"
                await self._delete_quietly(secret)
            except KubeError as error:
                problem = str(error)
            else:
                self._metrics.acquisition_token_secrets.labels(result="created").inc()
                return
            if attempt < ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
        self._metrics.acquisition_token_secrets.labels(result="error").inc()
        _log.error(
            "could not create the acquisition token Secret of job %s (%s); deleting its new Job %s",
            job_uuid,
            problem,
            name,
        )
        try:
            await self._kube.delete_job(name, namespace or None, uid=uid)
        except KubeError as error:
            _log.error("could not delete Job %s either: %s", name, error)
        raise TokenSecretCreationError(f"job {job_uuid}: the acquisition token Secret: {problem}")

    async def _delete_quietly(self, secret: JSONObject) -> None:
        try:
            await self._kube.delete_secret(name_of(secret), namespace_of(secret) or None)
        except KubeError as error:
            _log.warning("could not delete stale Secret %s: %s", name_of(secret), error)


class TokenSecretJanitor:
    """Job informer handler: once a Job has finished, its acquisition token Secret is deleted (the
    token is no use any more; Kubernetes would delete it with the Job, ``job-ttl`` later)."""

    def __init__(self, kube: TokenSecretsAPI, metrics: StacksMetrics) -> None:
        self._kube = kube
        self._metrics = metrics
        self._done: set[str] = set()
        self._tasks = BackgroundTasks("token secret janitor")

    def on_event(self, event: WatchEvent) -> None:
        uuid = job_uuid_of(event.obj)
        if uuid is None:
            return
        if event.kind == "deleted":
            self._done.discard(uuid)
            return
        if uuid in self._done or not job_is_finished(event.obj):
            return
        self._done.add(uuid)
        self._tasks.start(self._delete(uuid, namespace_of(event.obj)), name=f"delete token of {uuid}")

    async def _delete(self, uuid: str, namespace: str) -> None:
        try:
            await self._kube.delete_secret(acquisition_token_secret_name(uuid), namespace or None)
        except KubeError as error:
            self._done.discard(uuid)
            _log.warning("could not delete the acquisition token Secret of job %s: %s", uuid, error)
        else:
            self._metrics.acquisition_token_secrets.labels(result="deleted").inc()

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self._tasks.cancel_all()

    async def idle(self) -> None:
        await self._tasks.wait_idle()
