"""What the fault tests drive and measure: the controller as a real ``engine run`` process, a clock on
Kubernetes Jobs, jobs added over time, latency figures, and the end-of-test invariant.

Latency of a job = from the moment the fake Buildkite listed it (right after ``add_job`` returned) to
the moment a watch on Jobs delivered its Job (``ADDED``), both on ``time.monotonic()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch
from prometheus_client.parser import text_string_to_metric_families

from engine.kube.labels import JOB_UUID_LABEL
from engine.model.jsonvalue import JSONObject
from tests.fakes.buildkite import FakeBuildkite

ROOT = Path(__file__).resolve().parents[4]
ENTRY_POINT = "from engine.cli import main; main()"
"""Exactly what the ``engine`` console script runs."""
START_TIMEOUT = 60.0
"""Seconds for a controller process to become ready (imports, policies, informer sync) on a loaded machine."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, probe: Callable[[], object], timeout: float = 60.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class EngineProcess:
    """``engine run`` as its own process (the way a Deployment runs it), killed and restarted at will.

    Health and metrics share one fixed port, so a restarted process answers where the old one did.
    Each run logs JSON to its own file under ``work``. ``mode="stacks"`` configures the Stacks API mode
    (a queue and the agent token's Secret; no GraphQL token in the environment).
    """

    def __init__(
        self,
        work: Path,
        buildkite: FakeBuildkite,
        *,
        namespace: str,
        kubeconfig: Path,
        agent_token_secret: str,
        policy_dirs: Iterable[Path] = (),
        mode: str = "graphql",
        **config: Any,
    ) -> None:
        self.work = work
        self.buildkite = buildkite
        self.kubeconfig = kubeconfig
        self.policy_dirs = tuple(policy_dirs)
        self.mode = mode
        self.port = free_port()
        self.config_path = work / "controller-config.yaml"
        data: dict[str, Any] = (
            {"queue": "kubernetes"}
            if mode == "stacks"
            else {"org": "test-org", "graphql-endpoint": buildkite.graphql_url, "tags": ["queue=kubernetes"]}
        )
        data.update(
            {
                "namespace": namespace,
                "agent-token-secret": agent_token_secret,
                "agent-config": {"endpoint": buildkite.agent_url},
                "max-in-flight": 0,
                "poll-interval": "1s",
                "prometheus-port": self.port,
            }
        )
        data.update({key.replace("_", "-"): value for key, value in config.items()})
        self.config_path.write_text(yaml.safe_dump(data))
        self.runs: list[subprocess.Popen[bytes]] = []
        self.log_paths: list[Path] = []

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.runs[-1]

    def start(self) -> None:
        """Start a new run (the previous one must have ended)."""
        if self.runs and self.process.poll() is None:
            raise RuntimeError("the controller is still running")
        log_path = self.work / f"controller-{len(self.runs) + 1}.log"
        command = [sys.executable, "-c", ENTRY_POINT, "run", "--config", str(self.config_path)]
        command += ["--log-format", "json", "--health-port", str(self.port)]
        for directory in self.policy_dirs:
            command += ["--policies", str(directory)]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONPATH": str(ROOT)}
        if self.mode != "stacks":
            env["BUILDKITE_TOKEN"] = self.buildkite.graphql_token
        with log_path.open("wb") as log:
            self.runs.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        self.log_paths.append(log_path)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        wait_until(
            "the controller to be ready", lambda: self.ready() or self.process.poll() is not None, timeout
        )
        if self.process.poll() is not None:
            raise AssertionError(f"the controller exited with {self.process.returncode}:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up, as an OOM kill or a node failure."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        """SIGTERM and wait; the exit status (SIGKILL after 30 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except (urllib.error.URLError, OSError):
            return 0, ""

    def alive(self) -> bool:
        """The process runs and its event loop answers ``/healthz``."""
        return self.process.poll() is None and self._get("/healthz")[0] == 200

    def ready(self) -> bool:
        return self._get("/readyz")[0] == 200

    def metric(self, name: str, **labels: str) -> float:
        """One sample from ``/metrics`` (0 when absent)."""
        status, text = self._get("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def messages(self) -> list[str]:
        """Every log message of every run."""
        found = []
        for path in self.log_paths:
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    found.append(str(json.loads(line)["message"]))
        return found

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.log_paths)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class JobClock:
    """When each Kubernetes Job in a namespace first appeared, by Buildkite job UUID (a watch on a thread)."""

    def __init__(self, api: k8s_client.ApiClient, namespace: str) -> None:
        self._batch = k8s_client.BatchV1Api(api)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-clock", daemon=True)

    def __enter__(self) -> JobClock:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the Job watch did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()

    @property
    def seen(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seen)

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        """Wait until at least ``count`` Jobs were seen."""
        wait_until(f"{count} Kubernetes Jobs", lambda: len(self.seen) >= count, timeout, interval=0.02)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._follow()
            except Exception:  # a dropped watch (or no API server): list and watch again shortly
                self._stopped.wait(0.2)

    def _follow(self) -> None:
        listing = self._batch.list_namespaced_job(self._namespace)
        now = time.monotonic()
        for job in listing.items:
            self._note((job.metadata.labels if job.metadata else None) or {}, now)
        self._ready.set()
        watch: Any = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        for event in watch.stream(
            self._batch.list_namespaced_job,
            self._namespace,
            resource_version=listing.metadata.resource_version if listing.metadata else None,
            timeout_seconds=30,
        ):
            if self._stopped.is_set():
                watch.stop()
                return
            if event["type"] == "ADDED":
                self._note(event["object"].metadata.labels or {}, time.monotonic())

    def _note(self, labels: Mapping[str, str], moment: float) -> None:
        uuid = labels.get(JOB_UUID_LABEL)
        if uuid:
            with self._lock:
                self._seen.setdefault(uuid, moment)


def add_spread(buildkite: FakeBuildkite, count: int, interval: float, **job: Any) -> dict[str, float]:
    """Add ``count`` jobs ``interval`` seconds apart; when each became visible, by UUID."""
    added: dict[str, float] = {}
    for index in range(count):
        if index:
            time.sleep(interval)
        uuid = buildkite.add_job(**job)
        added[uuid] = time.monotonic()
    return added


def latencies(added: Mapping[str, float], clock: JobClock, timeout: float = 60.0) -> list[float]:
    """Seconds from listing to Job for each job in ``added`` (waits until every one has a Job)."""
    wait_until(f"{len(added)} Jobs", lambda: set(added) <= set(clock.seen), timeout)
    seen = clock.seen
    return [seen[uuid] - moment for uuid, moment in added.items()]


@dataclass
class Figures:
    """The numbers one fault test reports (printed in the run's summary and asserted on)."""

    scenario: str
    lines: list[str] = field(default_factory=list)

    def latency(self, phase: str, values: list[float]) -> None:
        ordered = sorted(values)
        p50 = statistics.median(ordered)
        self.lines.append(f"{phase}: {len(ordered)} jobs, latency p50 {p50:.2f}s max {ordered[-1]:.2f}s")

    def note(self, text: str) -> None:
        self.lines.append(text)

    def render(self) -> str:
        return "\n".join([f"{self.scenario}:", *(f"  {line}" for line in self.lines)])


def assert_within_normal(figures: Figures, phase: str, baseline: list[float], during: list[float]) -> None:
    """The fault's jobs waited at most 5 s longer than the slowest job of the baseline."""
    figures.latency(phase, during)
    bound = max(baseline) + 5.0
    assert max(during) <= bound, f"{phase}: max latency {max(during):.2f}s > baseline max + 5s ({bound:.2f}s)"


def assert_alive_and_ready(controller: EngineProcess) -> None:
    assert controller.alive(), f"the controller is not alive:\n{controller.log_tail()}"
    assert controller.ready(), f"the controller is not ready:\n{controller.log_tail()}"


def jobs_by_uuid(batch: k8s_client.BatchV1Api, namespace: str) -> dict[str, list[JSONObject]]:
    response: Any = batch.list_namespaced_job(namespace, _preload_content=False)
    found: dict[str, list[JSONObject]] = {}
    for job in json.loads(response.data)["items"]:
        uuid = job["metadata"].get("labels", {}).get(JOB_UUID_LABEL, "")
        found.setdefault(uuid, []).append(job)
    return found


def assert_each_job_ended_once(
    figures: Figures,
    batch: k8s_client.BatchV1Api,
    namespace: str,
    buildkite: FakeBuildkite,
    *,
    scheduled: Iterable[str],
    failed: Iterable[str] = (),
) -> None:
    """The invariant: every job in ``scheduled`` is exactly one Kubernetes Job and was not failed;
    every job in ``failed`` is one failed Buildkite job with a message (finished once) and no Job."""
    scheduled, failed = set(scheduled), set(failed)
    by_uuid = jobs_by_uuid(batch, namespace)
    duplicates = sorted(uuid for uuid, jobs in by_uuid.items() if len(jobs) > 1)
    lost = sorted(scheduled - set(by_uuid))
    unexpected = sorted(set(by_uuid) - scheduled)
    finishes = [r for r in buildkite.agent_requests("finish") if r.status == 200]
    finished = [r.path.split("/")[3] for r in finishes] + [f.job_uuid for f in buildkite.stacks.finishes()]
    failed_twice = sorted(uuid for uuid in failed if finished.count(uuid) > 1)
    not_failed = sorted(
        uuid for uuid in failed if buildkite.job(uuid).state != "FINISHED" or not buildkite.job(uuid).log
    )
    wrongly_failed = sorted(uuid for uuid in scheduled if buildkite.job(uuid).state != "SCHEDULED")
    reserved_without_a_job = sorted(
        job.uuid for job in buildkite.jobs() if job.reserved_by is not None and job.uuid not in by_uuid
    )
    figures.note(
        f"end: {len(scheduled)} Kubernetes Jobs expected, {len(failed)} Buildkite jobs failed expected; "
        f"duplicates {len(duplicates)}, lost {len(lost) + len(not_failed)}, "
        f"failed twice {len(failed_twice)}, reserved without a Job {len(reserved_without_a_job)}"
    )
    assert duplicates == [], f"Buildkite jobs with more than one Kubernetes Job: {duplicates}"
    assert lost == [], f"Buildkite jobs without a Kubernetes Job: {lost}"
    assert unexpected == [], f"Kubernetes Jobs for jobs that should have none: {unexpected}"
    assert not_failed == [], f"Buildkite jobs not failed with a message: {not_failed}"
    assert failed_twice == [], f"Buildkite jobs failed more than once: {failed_twice}"
    assert wrongly_failed == [], f"scheduled jobs that were failed or taken: {wrongly_failed}"
    assert reserved_without_a_job == [], f"jobs reserved but never created: {reserved_without_a_job}"
