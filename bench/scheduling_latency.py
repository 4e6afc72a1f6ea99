"""Scheduling latency: a burst of Buildkite jobs through the whole stack to Kubernetes Jobs.

Real parts: the controller runtime (monitor → deduper → limiter → scheduler, informers, watchers) in
this process, the real kube-apiserver + kube-controller-manager of the test harness, and the fake
Buildkite over HTTP (GraphQL validated against the schema). For each job it measures

    scheduled in Buildkite (the moment the fake made it visible: right after ``add_job`` returned)
    → the Kubernetes Job exists (the moment a watch on Jobs delivered its ADDED event)

and prints p50/p99/max of that latency plus the throughput (jobs / seconds from the first job
becoming visible to the last Job appearing). The controller is already running and idle when the
burst lands, as in production, so the latency includes waiting for the next poll (poll interval 1 s).

Usage: .venv/bin/python bench/scheduling_latency.py [--jobs 300] [--concurrency 5] [--max-in-flight 0]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch

from bench.scale_probes import percentile
from engine.controller.runtime import ControllerRuntime, RuntimeOptions
from engine.model.config import ControllerConfig, parse_config
from engine.policy.loader import load_policies
from tests.fakes.buildkite import FakeBuildkite
from tests.harness.cluster import KubeBinariesMissingError, KubeCluster, locate_binaries

NAMESPACE = "bench"
SECRET = "buildkite-agent-token"


class JobWatch:
    """Records when each Job in the namespace was first seen (ADDED), on a background thread."""

    def __init__(self, api: k8s_client.ApiClient, namespace: str) -> None:
        self._batch = k8s_client.BatchV1Api(api)
        self._namespace = namespace
        self._watch: Any = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        self.seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as exc:  # the cluster going away at the end of the run
            if not self._stopped:
                print(f"job watch failed: {exc}", file=sys.stderr)

    def _follow(self) -> None:
        listing = self._batch.list_namespaced_job(self._namespace)
        self._ready.set()
        for event in self._watch.stream(
            self._batch.list_namespaced_job,
            self._namespace,
            resource_version=listing.metadata.resource_version if listing.metadata else None,
            timeout_seconds=600,
        ):
            if event["type"] == "ADDED":
                now = time.time()
                with self._lock:
                    self.seen.setdefault(event["object"].metadata.name, now)

    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()


def controller_config(fake: FakeBuildkite, concurrency: int, max_in_flight: int) -> ControllerConfig:
    return parse_config(
        {
            "org": "test-org",
            "buildkite-token": fake.graphql_token,
            "graphql-endpoint": fake.graphql_url,
            "agent-config": {"endpoint": fake.agent_url},
            "agent-token-secret": SECRET,
            "namespace": NAMESPACE,
            "tags": ["queue=kubernetes"],
            "max-in-flight": max_in_flight,
            "job-creation-concurrency": concurrency,
        },
        "bench",
    )


def run(cluster: KubeCluster, jobs: int, concurrency: int, max_in_flight: int) -> int:
    api = cluster.api_client()
    core = k8s_client.CoreV1Api(api)
    core.create_namespace(k8s_client.V1Namespace(metadata=k8s_client.V1ObjectMeta(name=NAMESPACE)))
    with FakeBuildkite() as fake, tempfile.TemporaryDirectory() as scratch:
        token = base64.b64encode(fake.agent_token.encode()).decode()
        core.create_namespaced_secret(
            NAMESPACE,
            k8s_client.V1Secret(
                metadata=k8s_client.V1ObjectMeta(name=SECRET), data={"BUILDKITE_AGENT_TOKEN": token}
            ),
        )
        kubeconfig = Path(scratch) / "kubeconfig"
        kubeconfig.write_text(
            cluster.kubeconfig_path.read_text().replace(
                "insecure-skip-tls-verify: true", f"certificate-authority: {cluster.ca_cert_path}"
            )
        )
        runtime = ControllerRuntime(
            controller_config(fake, concurrency, max_in_flight),
            load_policies([]),
            RuntimeOptions(kubeconfig=str(kubeconfig), health_port=None),
        )
        thread = threading.Thread(target=lambda: asyncio.run(runtime.run()), name="controller", daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not runtime.ready:
            if time.monotonic() > deadline or not thread.is_alive():
                print("the controller did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
        watch = JobWatch(api, NAMESPACE)
        watch.start()
        time.sleep(1.5)  # let the controller settle into its idle polling rhythm

        visible: dict[str, float] = {}
        for _ in range(jobs):
            uuid = fake.add_job()
            visible[f"buildkite-{uuid}"] = time.time()
        deadline = time.monotonic() + 300
        while watch.count() < jobs and time.monotonic() < deadline:
            time.sleep(0.05)
        runtime.stop()
        thread.join(60)
        watch.stop()

        seen = dict(watch.seen)
        missing = set(visible) - set(seen)
        if missing:
            print(f"{len(missing)} jobs never got a Kubernetes Job", file=sys.stderr)
            return 1
        latencies = [seen[name] - visible[name] for name in visible]
        span = max(seen.values()) - min(visible.values())
        limit = max_in_flight or "unlimited"
        print(f"jobs: {jobs}  job-creation-concurrency: {concurrency}  max-in-flight: {limit}")
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        worst, mean = max(latencies) * 1000, statistics.mean(latencies) * 1000
        print(
            "scheduled in Buildkite -> Kubernetes Job created: "
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms, mean {mean:.0f} ms"
        )
        print(
            f"throughput: {jobs / span:.1f} jobs/s ({span:.2f} s from the first job visible to the last Job)"
        )
        queries = runtime.metrics.registry.get_sample_value("buildkite_monitor_job_queries_total") or 0
        print(f"GraphQL polls during the run: {queries:.0f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=5, help="job-creation-concurrency")
    parser.add_argument("--max-in-flight", type=int, default=0)
    args = parser.parse_args()
    try:
        binaries = locate_binaries()
    except KubeBinariesMissingError as missing:
        print(missing, file=sys.stderr)
        return 2
    with KubeCluster(binaries) as cluster:
        return run(cluster, args.jobs, args.concurrency, args.max_in_flight)


if __name__ == "__main__":
    sys.exit(main())
