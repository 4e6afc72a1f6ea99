"""The controller at scale: bursts of jobs against the real apiserver, compared with the bare client.

One run starts the test harness's real kube-apiserver + kube-controller-manager (audit log on for the
two users measured), the fake Buildkite (GraphQL validated against the schema) in this process, and
``engine run`` as its own process. Then, ``--rounds`` times, alternately:

* **bare client**: a separate process creates ``--jobs`` Jobs with the official client
  (``BatchV1Api.create_namespaced_job``, ``--threads`` threads, a connection per thread). The Jobs are
  the very manifests the controller would send for the same kind of job (the default policies'
  output), so the API server does the same work per Job;
* **controller burst**: ``--jobs`` jobs become scheduled in Buildkite at once; the controller (already
  running and idle, polling every second, ``max-in-flight`` 0) creates their Jobs.

Both create rates come from the API server's audit log (first request received → last create
answered), so they are measured the same way. Per round it prints the burst's seconds until all Jobs
exist, the ratio of the two create rates (target ≥ 0.9), p50/p99 of scheduled in Buildkite → Job
created, the controller's requests per job by verb (target: 1.0 writes, 0 LISTs), Buildkite requests
per job, and CPU seconds per 1,000 jobs for both (the controller's measured from the burst until every
pod's events are handled, minus its idle rate). Finally it keeps adding jobs until ``--in-flight`` Jobs
exist and prints the controller's RSS then and its peak (target ≤ 200 MB), next to its idle RSS.

Usage: .venv/bin/python bench/controller_at_scale.py [--jobs 1000] [--rounds 3] [--in-flight 5000]
       [--threads 8] [--concurrency 8] [--profile DIR]   (--profile needs py-spy on PATH)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from bench.scale_probes import (
    WRITE_VERBS,
    AuditLog,
    cpu_seconds,
    created_jobs,
    load_average,
    memory_megabytes,
    percentile,
    spread,
    verbs_between,
)
from engine.buildkite.graphql import BuildkiteGraphQL
from engine.core.evaluate import evaluate
from engine.kube.labels import CONTROLLER_ID_LABEL
from engine.model.config import parse_config
from engine.model.job import parse_job
from engine.model.jsonvalue import JSONObject
from engine.policy.loader import load_policies
from tests.fakes.buildkite import FakeBuildkite
from tests.harness.cluster import KubeBinariesMissingError, KubeCluster, locate_binaries

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
SECRET = "buildkite-agent-token"
CONTROLLER_USER = "controller"
BARE_USER = "bare"
BARE_ORG = "bare-org"
ORG = "test-org"
CONTROLLER_ID = "bench"
WAIT_SECONDS = 600.0
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def wait_until(
    what: str, probe: Callable[[], bool], timeout: float = WAIT_SECONDS, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config_data(
    fake: FakeBuildkite, namespace: str, concurrency: int, cancel_check_interval: str, extra: dict[str, str]
) -> dict[str, Any]:
    return {
        "org": ORG,
        "id": CONTROLLER_ID,
        "buildkite-token": fake.graphql_token,
        "graphql-endpoint": fake.graphql_url,
        "agent-config": {"endpoint": fake.agent_url},
        "agent-token-secret": SECRET,
        "namespace": namespace,
        "tags": ["queue=kubernetes"],
        "max-in-flight": 0,
        "job-creation-concurrency": concurrency,
        "poll-interval": "1s",
        # A loaded machine's job controller can take longer than the default 30s to make a burst's
        # pods; the job watcher must not fail those Jobs meanwhile (it is not what is measured).
        "empty-job-grace-period": "10m",
        "job-cancel-checker-poll-interval": cancel_check_interval,
        **extra,
    }


def count_objects(api: k8s_client.ApiClient, resource: str, namespace: str) -> int:
    """How many ``jobs`` or ``pods`` the namespace holds (a metadata-only list, cheap for everyone)."""
    lister: Any = (
        k8s_client.BatchV1Api(api).list_namespaced_job
        if resource == "jobs"
        else k8s_client.CoreV1Api(api).list_namespaced_pod
    )
    response = lister(namespace, _preload_content=False, _headers={"Accept": _METADATA_ONLY})
    return len(json.loads(response.data)["items"])


# ---- the bare client (a process of its own) ------------------------------------------------------------


def bare_client_main(kubeconfig: str, manifests: Path, threads: int) -> int:
    """Create every Job of ``manifests`` (JSON lines) with ``threads`` threads; print CPU and wall time."""
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = threads
    batch = k8s_client.BatchV1Api(k8s_client.ApiClient(configuration))
    bodies = [json.loads(line) for line in manifests.read_text().splitlines() if line]
    lock = threading.Lock()
    errors: list[str] = []

    def work() -> None:
        while True:
            with lock:
                if not bodies:
                    return
                body = bodies.pop()
            try:
                batch.create_namespaced_job(body["metadata"]["namespace"], body)
            except Exception as exc:  # reported, not fatal: the rate then says what it says
                with lock:
                    errors.append(str(exc)[:200])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    cpu, wall = time.process_time(), time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(
        json.dumps({"cpu": time.process_time() - cpu, "wall": time.monotonic() - wall, "errors": errors[:3]})
    )
    return 0


# ---- the controller (a process of its own) ---------------------------------------------------------------


class ControllerProcess:
    """``engine run`` with the bench config, its log in a file."""

    def __init__(self, work: Path, config: dict[str, Any], kubeconfig: Path) -> None:
        self.health_port = free_port()
        config_file = work / "controller.yaml"
        config_file.write_text(yaml.safe_dump(config))
        self.log_path = work / "controller.log"
        self._log = self.log_path.open("wb")
        engine = Path(sys.executable).with_name("engine")
        self.process = subprocess.Popen(
            [
                str(engine),
                "run",
                "--config",
                str(config_file),
                "--kubeconfig",
                str(kubeconfig),
                "--health-port",
                str(self.health_port),
                "--log-format",
                "json",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
        self.pid = self.process.pid

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the controller exited with {self.process.returncode}; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> tuple[float, float]:
        return memory_megabytes(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# ---- one run ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(
        self, cluster: KubeCluster, fake: FakeBuildkite, work: Path, args: argparse.Namespace
    ) -> None:
        self.cluster = cluster
        self.fake = fake
        self.work = work
        self.args = args
        self.api = cluster.api_client()
        self.core = k8s_client.CoreV1Api(self.api)
        self.audit = AuditLog(cluster)
        self.policies = load_policies([])
        self.controller: ControllerProcess | None = None
        self.idle_cpu_rate = 0.0
        self.idle_rss = 0.0
        self.created_by_controller = 0

    def namespace(self, name: str) -> None:
        self.core.create_namespace(k8s_client.V1Namespace(metadata=k8s_client.V1ObjectMeta(name=name)))

    # ---- controller ----

    def start_controller(self) -> ControllerProcess:
        self.namespace(NAMESPACE)
        token = __import__("base64").b64encode(self.fake.agent_token.encode()).decode()
        self.core.create_namespaced_secret(
            NAMESPACE,
            k8s_client.V1Secret(
                metadata=k8s_client.V1ObjectMeta(name=SECRET), data={"BUILDKITE_AGENT_TOKEN": token}
            ),
        )
        kubeconfig = self.cluster.write_kubeconfig(self.work / "controller.kubeconfig", CONTROLLER_USER)
        controller = ControllerProcess(
            self.work,
            config_data(
                self.fake,
                NAMESPACE,
                self.args.concurrency,
                self.args.cancel_check_interval,
                dict(self.args.set),
            ),
            kubeconfig,
        )
        self.controller = controller
        wait_until("the controller to be ready", controller.ready, timeout=120)
        time.sleep(3)  # settle into the idle polling rhythm
        cpu, began = controller.cpu(), time.monotonic()
        time.sleep(5)
        self.idle_cpu_rate = (controller.cpu() - cpu) / (time.monotonic() - began)
        self.idle_rss = controller.memory()[0]
        return controller

    def burst(self, jobs: int) -> tuple[dict[str, float], float, float]:
        """Make ``jobs`` jobs scheduled; wait until the controller created all their Jobs and every pod
        exists. Returns (visible time by Job name, when the burst began, when all was settled)."""
        assert self.controller is not None
        began = time.time()
        visible: dict[str, float] = {}
        for _ in range(jobs):
            uuid = self.fake.add_job(org=ORG)
            visible[f"buildkite-{uuid}"] = time.time()
        self.created_by_controller += jobs
        total = self.created_by_controller

        def all_created() -> bool:
            created = created_jobs(self.audit.requests(), CONTROLLER_USER, NAMESPACE)
            return all(name in created for name in visible)

        wait_until(f"the controller to create {jobs} Jobs", all_created, interval=0.5)
        wait_until(
            "every Job's pod", lambda: count_objects(self.api, "pods", NAMESPACE) >= total, interval=0.5
        )
        time.sleep(2)  # the last pod events reach the controller
        return visible, began, time.time()

    def controller_round(self, jobs: int, profile: Path | None) -> dict[str, float]:
        assert self.controller is not None
        spy = None
        if profile is not None:
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(self.controller.pid),
                    "--gil",
                    "--rate",
                    "200",
                    "--format",
                    "speedscope",
                    "-o",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        counters = dict(self.fake.counters)
        cpu, began_mono = self.controller.cpu(), time.monotonic()
        visible, began, settled = self.burst(jobs)
        cpu_used = self.controller.cpu() - cpu - self.idle_cpu_rate * (time.monotonic() - began_mono)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        requests = self.audit.requests()
        created = created_jobs(requests, CONTROLLER_USER, NAMESPACE)
        mine = [created[name] for name in visible]
        first = min(r.received for r in mine)
        last = max(r.completed for r in mine)
        latencies = [created[name].completed - visible[name] for name in visible]
        verbs = verbs_between(requests, CONTROLLER_USER, began, settled)
        writes = sum(count for key, count in verbs.items() if key.split()[0] in WRITE_VERBS)
        lists = sum(count for key, count in verbs.items() if key.startswith("list "))
        calls = {key: self.fake.counters[key] - counters.get(key, 0) for key in list(self.fake.counters)}
        by_kind = {
            key: count for key, count in calls.items() if count and key.startswith(("graphql.", "agent."))
        }
        buildkite = calls.get("graphql.requests", 0) + sum(
            count for key, count in by_kind.items() if key.startswith("agent.") and "_" not in key
        )
        return {
            "rate": jobs / (last - first),
            "all_created": max(r.completed for r in mine) - min(visible.values()),
            "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "writes": writes / jobs,
            "lists": lists,
            "buildkite": buildkite / jobs,
            "cpu": cpu_used * 1000 / jobs,
            **{f"verb {key}": count / jobs for key, count in sorted(verbs.items())},
            **{f"buildkite {key}": count / jobs for key, count in sorted(by_kind.items())},
        }

    # ---- bare client ----

    def bare_manifests(self, jobs: int, namespace: str) -> Path:
        """The Jobs the controller would create for ``jobs`` fresh jobs, placed in ``namespace``."""
        for _ in range(jobs):
            self.fake.add_job(org=BARE_ORG)
        config = parse_config(
            config_data(
                self.fake,
                namespace,
                self.args.concurrency,
                self.args.cancel_check_interval,
                dict(self.args.set),
            ),
            "bench",
        ).expression_view()

        async def fetch() -> list[JSONObject]:
            client = BuildkiteGraphQL(self.fake.graphql_url, self.fake.graphql_token)
            try:
                return await client.scheduled_jobs(BARE_ORG, "kubernetes")
            finally:
                await client.close()

        nodes = asyncio.run(fetch())
        for node in nodes:  # taken: the next round's fetch must not see them again
            self.fake.set_job_state(str(node["uuid"]), "RUNNING")
        path = self.work / f"{namespace}.jsonl"
        with path.open("w") as out:
            for node in nodes:
                manifest = dict(evaluate(self.policies, parse_job(node), config).manifest)
                metadata = {**manifest["metadata"], "namespace": namespace}
                metadata["labels"] = {**metadata.get("labels", {}), CONTROLLER_ID_LABEL: "bare"}
                manifest["metadata"] = metadata
                out.write(json.dumps(manifest) + "\n")
        return path

    def bare_round(self, jobs: int, index: int) -> dict[str, float]:
        namespace = f"bare-{index}"
        self.namespace(namespace)
        manifests = self.bare_manifests(jobs, namespace)
        kubeconfig = self.cluster.write_kubeconfig(self.work / "bare.kubeconfig", BARE_USER)
        output = subprocess.run(
            [
                sys.executable,
                str(Path(__file__)),
                "bare-client",
                str(kubeconfig),
                str(manifests),
                str(self.args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        result = json.loads(output)
        if result["errors"]:
            print(f"bare client errors: {result['errors']}", file=sys.stderr)
        created = list(created_jobs(self.audit.requests(), BARE_USER, namespace).values())
        first = min(r.received for r in created)
        last = max(r.completed for r in created)
        wait_until(
            "the bare Jobs' pods", lambda: count_objects(self.api, "pods", namespace) >= jobs, interval=0.5
        )
        time.sleep(2)
        return {"rate": len(created) / (last - first), "cpu": result["cpu"] * 1000 / jobs}

    # ---- memory ----

    def fill(self, in_flight: int, jobs: int) -> tuple[float, float]:
        """Bursts until ``in_flight`` Jobs exist; (RSS then, peak RSS) of the controller."""
        assert self.controller is not None
        while self.created_by_controller < in_flight:
            self.burst(min(jobs, in_flight - self.created_by_controller))
        time.sleep(5)
        return self.controller.memory()


def report(
    bench: Bench, rounds: list[tuple[dict[str, float], dict[str, float]]], memory: tuple[float, float] | None
) -> None:
    args = bench.args
    print(
        f"\njobs per burst: {args.jobs}, rounds: {args.rounds}, bare threads: {args.threads}, "
        f"job-creation-concurrency: {args.concurrency}, cancel check every {args.cancel_check_interval}, "
        f"other config: {dict(args.set) or 'none'}, "
        f"load average now: {load_average()}"
    )
    print(
        "round  bare/s  ctrl/s  ratio  all-created-s  p50-ms  p99-ms  writes/job  lists  bk/job  "
        "cpu-s/1000 ctrl  cpu-s/1000 bare"
    )
    for index, (bare, ctrl) in enumerate(rounds, 1):
        print(
            f"{index:5}  {bare['rate']:6.0f}  {ctrl['rate']:6.0f}  {ctrl['rate'] / bare['rate']:5.2f}  "
            f"{ctrl['all_created']:13.2f}  {ctrl['p50']:6.0f}  {ctrl['p99']:6.0f}  {ctrl['writes']:10.2f}  "
            f"{ctrl['lists']:5.0f}  {ctrl['buildkite']:6.3f}  {ctrl['cpu']:15.2f}  {bare['cpu']:15.2f}"
        )
    print("median (min-max) over rounds:")
    print(f"  create-rate ratio controller/bare: {spread([c['rate'] / b['rate'] for b, c in rounds])}")
    print(f"  bare client Jobs/s: {spread([b['rate'] for b, _ in rounds])}")
    print(f"  controller Jobs/s: {spread([c['rate'] for _, c in rounds])}")
    print(f"  seconds until all {args.jobs} Jobs exist: {spread([c['all_created'] for _, c in rounds])}")
    print(
        f"  scheduled->created p50 ms: {spread([c['p50'] for _, c in rounds])}, "
        f"p99 ms: {spread([c['p99'] for _, c in rounds])}"
    )
    print(
        f"  CPU s per 1000 jobs: controller {spread([c['cpu'] for _, c in rounds])}, "
        f"bare {spread([b['cpu'] for b, _ in rounds])}"
    )
    verbs = sorted({key for _, c in rounds for key in c if key.startswith("verb ")})
    for key in verbs:
        print(f"  {key.removeprefix('verb ')} per job: {spread([c.get(key, 0.0) for _, c in rounds])}")
    print(f"  Buildkite requests per job: {spread([c['buildkite'] for _, c in rounds])}")
    for key in sorted({key for _, c in rounds for key in c if key.startswith("buildkite ")}):
        print(f"    {key.removeprefix('buildkite ')} per job: {spread([c.get(key, 0.0) for _, c in rounds])}")
    print(f"controller idle: RSS {bench.idle_rss:.0f} MB, CPU {bench.idle_cpu_rate * 100:.1f}% of a core")
    if memory is not None:
        print(
            f"controller with {args.in_flight} Jobs in flight: "
            f"RSS {memory[0]:.0f} MB, peak RSS {memory[1]:.0f} MB"
        )


def run(args: argparse.Namespace) -> int:
    binaries = locate_binaries()
    users = (CONTROLLER_USER, BARE_USER)
    print(f"load average at start: {load_average()}")
    with (
        KubeCluster(binaries, extra_users=users, audit_users=users) as cluster,
        FakeBuildkite(organizations=(ORG, BARE_ORG)) as fake,
        tempfile.TemporaryDirectory() as scratch,
    ):
        bench = Bench(cluster, fake, Path(scratch), args)
        controller = bench.start_controller()
        try:
            rounds = []
            for index in range(args.rounds):
                bare = bench.bare_round(args.jobs, index)
                profile = None
                if args.profile is not None and index == 0:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    profile = args.profile / "controller-burst.speedscope.json"
                ctrl = bench.controller_round(args.jobs, profile)
                rounds.append((bare, ctrl))
                print(
                    f"round {index + 1}: bare {bare['rate']:.0f}/s, controller {ctrl['rate']:.0f}/s "
                    f"(load {load_average()})",
                    flush=True,
                )
            memory = bench.fill(args.in_flight, args.jobs) if args.in_flight > 0 else None
            report(bench, rounds, memory)
        finally:
            controller.stop()
            if args.keep_log is not None:
                shutil.copy(controller.log_path, args.keep_log)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "bare-client":
        return bare_client_main(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per burst")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--in-flight", type=int, default=5000, help="Jobs in flight for the memory figure (0: skip)"
    )
    parser.add_argument("--threads", type=int, default=8, help="bare client threads")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="the controller's job-creation-concurrency"
    )
    parser.add_argument(
        "--cancel-check-interval",
        default="5s",
        help="job-cancel-checker-poll-interval: each pending pod asks Buildkite this often (default 5s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=lambda text: tuple(text.split("=", 1)),
        metavar="KEY=VALUE",
        help="another controller config key (e.g. stale-job-data-timeout=60s); repeatable",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the first controller burst into this directory")
    parser.add_argument("--keep-log", type=Path, help="copy the controller's log here")
    args = parser.parse_args()
    try:
        return run(args)
    except KubeBinariesMissingError as missing:
        print(missing, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
