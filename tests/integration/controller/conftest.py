"""Fixtures for end-to-end controller tests: the real control plane, the fake Buildkite, and the
controller itself running in-process (its own thread and event loop, as ``engine run`` would run it).

``controllers.start(...)`` builds a config pointing at the fake Buildkite and the test namespace,
starts :class:`~engine.controller.runtime.ControllerRuntime` and returns once it polls; every
controller a test started is stopped (and must have stopped cleanly) when the test ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client as k8s_client

from engine.controller.metrics import ControllerMetrics
from engine.controller.runtime import ControllerRuntime, RuntimeOptions
from engine.kube.labels import JOB_UUID_LABEL
from engine.model.config import ControllerConfig, parse_config
from engine.model.jsonvalue import JSONObject
from engine.policy.loader import load_policies
from engine.resources import profile_policy_dirs
from tests.fakes.buildkite import FakeBuildkite
from tests.harness.cluster import KubeCluster

T = TypeVar("T")

AGENT_TOKEN_SECRET = "buildkite-agent-token"
QUEUE = "kubernetes"
START_TIMEOUT = 30.0


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; the controller acts asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class RunningController:
    """A controller runtime on its own thread and event loop."""

    def __init__(self, runtime: ControllerRuntime) -> None:
        self.runtime = runtime
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="controller", daemon=True)

    @property
    def metrics(self) -> ControllerMetrics:
        return self.runtime.metrics

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or None)
        return 0.0 if value is None else value

    def _main(self) -> None:
        try:
            asyncio.run(self.runtime.run())
        except BaseException as exc:  # reported to the test by stop() / start()
            self.error = exc

    def start(self, *, may_fail: bool = False) -> RunningController:
        """Start, and return once it polls (or, with ``may_fail``, once it polls or stopped)."""
        self._thread.start()
        wait_for(
            "the controller to start polling",
            lambda: self.runtime.ready or not self._thread.is_alive(),
            timeout=START_TIMEOUT,
        )
        if self.error is not None and not may_fail:
            raise AssertionError(f"the controller failed to start: {self.error!r}")
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait_failed(self, timeout: float = 30.0) -> BaseException:
        """Wait for the controller to stop by itself; return (and take over) the error it stopped with."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the controller was still running after {timeout:.0f}s")
        error, self.error = self.error, None
        if error is None:
            raise AssertionError("the controller stopped without an error")
        return error

    def stop(self, timeout: float = 30.0) -> None:
        """Stop and wait; a controller that failed (rather than being stopped) fails the test."""
        if self._thread.is_alive():
            self.runtime.stop()
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise AssertionError(f"the controller did not stop within {timeout:.0f}s")
        if self.error is not None:
            raise AssertionError(f"the controller stopped with an error: {self.error!r}")


class Controllers:
    """Starts controllers for one test against its namespace and the fake Buildkite."""

    def __init__(
        self,
        cluster: KubeCluster,
        namespace: str,
        api: k8s_client.ApiClient,
        buildkite: FakeBuildkite,
        work: Path,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.api = api
        self.buildkite = buildkite
        self.work = work
        self.batch = k8s_client.BatchV1Api(api)
        self.core = k8s_client.CoreV1Api(api)
        self.started: list[RunningController] = []
        self.kubeconfig = self._verified_kubeconfig()
        token = base64.b64encode(buildkite.agent_token.encode()).decode()
        self.core.create_namespaced_secret(
            namespace,
            k8s_client.V1Secret(
                metadata=k8s_client.V1ObjectMeta(name=AGENT_TOKEN_SECRET),
                data={"BUILDKITE_AGENT_TOKEN": token},
            ),
        )

    def _verified_kubeconfig(self) -> Path:
        """A kubeconfig that verifies the API server's certificate (the harness's one skips it)."""
        path = self.work / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.cluster.server,
                        "certificate-authority": str(self.cluster.ca_cert_path),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.cluster.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def config(self, *, mode: str = "graphql", **overrides: Any) -> ControllerConfig:
        """The controller config for this test: the fake Buildkite, this namespace, then ``overrides``
        (file keys with ``_`` for ``-``). ``mode="stacks"``: the Stacks API mode, configured as an
        upstream v0.28+ user would (the queue and the agent token's Secret, nothing else Buildkite)."""
        data: dict[str, Any] = (
            stacks_mode_config(self.buildkite)
            if mode == "stacks"
            else {
                "org": "test-org",
                "buildkite-token": self.buildkite.graphql_token,
                "graphql-endpoint": self.buildkite.graphql_url,
                "agent-config": {"endpoint": self.buildkite.agent_url},
                "tags": [f"queue={QUEUE}"],
            }
        )
        data.update(
            {
                "agent-token-secret": AGENT_TOKEN_SECRET,
                "namespace": self.namespace,
                "max-in-flight": 0,
                "poll-interval": "1s",
            }
        )
        data.update({key.replace("_", "-"): value for key, value in overrides.items()})
        return parse_config(data, "test")

    def start(
        self,
        *,
        policy_dirs: tuple[Path, ...] = (),
        reload_interval: float = 2.0,
        health_port: int | None = None,
        may_fail: bool = False,
        mode: str = "graphql",
        **config: Any,
    ) -> RunningController:
        controller_config = self.config(mode=mode, **config)
        # as engine run does: the config's profile policies, then the given directories
        paths = (*profile_policy_dirs(controller_config.profile), *policy_dirs)
        runtime = ControllerRuntime(
            controller_config,
            load_policies(list(paths)),
            RuntimeOptions(
                policy_paths=paths,
                kubeconfig=str(self.kubeconfig),
                health_port=health_port,
                policy_reload_interval=reload_interval,
                health_host="127.0.0.1",
            ),
        )
        controller = RunningController(runtime)
        self.started.append(controller)
        return controller.start(may_fail=may_fail)

    def stop_all(self) -> None:
        errors = []
        for controller in self.started:
            try:
                controller.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        if errors:
            raise AssertionError("; ".join(errors))

    # ---- what the cluster holds ------------------------------------------------------------------

    def jobs(self) -> list[JSONObject]:
        """Every Kubernetes Job in the namespace, as wire-shape dicts."""
        response: Any = self.batch.list_namespaced_job(self.namespace, _preload_content=False)
        items: list[JSONObject] = json.loads(response.data)["items"]
        return items

    def jobs_by_uuid(self) -> dict[str, list[JSONObject]]:
        found: dict[str, list[JSONObject]] = {}
        for job in self.jobs():
            uuid = job["metadata"].get("labels", {}).get(JOB_UUID_LABEL, "")
            found.setdefault(uuid, []).append(job)
        return found

    def pods(self, selector: str = "") -> list[JSONObject]:
        response: Any = self.core.list_namespaced_pod(
            self.namespace, label_selector=selector, _preload_content=False
        )
        items: list[JSONObject] = json.loads(response.data)["items"]
        return items

    def pod_of(self, uuid: str) -> JSONObject:
        return wait_for(
            f"the pod of job {uuid}",
            lambda: next(iter(self.pods(f"{JOB_UUID_LABEL}={uuid}")), None),
        )


def stacks_mode_config(buildkite: FakeBuildkite) -> dict[str, Any]:
    """What a Stacks API mode config needs to reach the fake: the queue and the agent API endpoint."""
    return {"queue": QUEUE, "agent-config": {"endpoint": buildkite.agent_url}}


def unfinished(jobs: list[JSONObject]) -> list[JSONObject]:
    return [job for job in jobs if not _finished(job)]


def _finished(job: Mapping[str, Any]) -> bool:
    conditions = job.get("status", {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


@pytest.fixture
def buildkite() -> Iterator[FakeBuildkite]:
    with FakeBuildkite() as server:
        yield server


@pytest.fixture
def controllers(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    kube_api: k8s_client.ApiClient,
    buildkite: FakeBuildkite,
    tmp_path: Path,
) -> Iterator[Controllers]:
    harness = Controllers(kube_cluster, kube_namespace, kube_api, buildkite, tmp_path)
    try:
        yield harness
    finally:
        harness.stop_all()
