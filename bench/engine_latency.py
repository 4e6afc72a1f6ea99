"""Engine latency: one realistic job through the default policies plus every example policy.

Prints p50/p99 per-job latency and jobs/s, and, when a real kube-apiserver is available (the test
harness binaries are built), the ratio to one ``create`` call of the same Job with server-side
dry-run. Targets (README): p50 <= 1 ms and p99 <= 3 ms on the 2-core CI machine with the default set
plus 20 user policies.

It also prints, measured in the same run, what the engine's last two steps cost inside that figure:
the finishing step (``engine.core.finish``) and the Kubernetes API check of the finished Job
(``engine.core.kube_validation``), as p50 and as a share of the whole evaluation.

Each figure is given as wall time and as the thread's CPU time (``time.thread_time``): on a shared,
loaded machine the wall time mostly measures the other processes, the CPU time what the engine costs.

``--baseline DIR`` measures another checkout (a ``git worktree`` of ``main``, say) in the same run:
this bench runs alternately on DIR's engine, default policies and examples and on this checkout's,
``--rounds`` times each in fresh processes, and the medians of their p50s are printed side by side.

Usage: .venv/bin/python bench/engine_latency.py [--iterations 2000] [--no-cluster]
       .venv/bin/python bench/engine_latency.py --baseline ../main-worktree [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import engine
from engine import __version__
from engine.core.evaluate import evaluate
from engine.core.finish import finish_job
from engine.core.kube_validation import validate_job
from engine.model.config import parse_config
from engine.model.job import parse_job
from engine.policy.loader import load_policies

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT = Path(engine.__file__).resolve().parent.parent
"""The checkout whose engine is imported (ROOT, or the ``--baseline`` one): its examples are used."""


def realistic_job() -> dict[str, Any]:
    """30 env vars and a kubernetes plugin with podSpec, podSpecPatch and two sidecars."""
    uuid = "01938f30-1d2e-4f3a-8b4c-5d6e7f8a9b0c"
    plugin = {
        "github.com/buildkite-plugins/kubernetes-buildkite-plugin": {
            "podSpec": {
                "containers": [
                    {
                        "image": "registry.example.com/ci/golang:1.23",
                        "command": ["go test ./..."],
                        "env": [{"name": "GOFLAGS", "value": "-mod=mod"}],
                        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
                    }
                ]
            },
            "podSpecPatch": {
                "containers": [
                    {"name": "container-0", "env": [{"name": "DATABASE_URL", "value": "postgres://db"}]}
                ],
                "nodeSelector": {"pool": "ci"},
            },
            "sidecars": [
                {
                    "image": "registry.example.com/ci/postgres:16",
                    "env": [{"name": "POSTGRES_PASSWORD", "value": "test"}],
                },
                {"image": "registry.example.com/ci/redis:7"},
            ],
            "gitEnvFrom": [{"secretRef": {"name": "git-ssh"}}],
            "metadata": {"labels": {"team": "payments"}},
        }
    }
    env = [f"BUILDKITE_EXTRA_{i}=value-{i}" for i in range(18)] + [
        "BUILDKITE=true",
        "CI=true",
        "BUILDKITE_PIPELINE_SLUG=payments-api",
        "BUILDKITE_BUILD_URL=https://buildkite.com/acme/payments-api/builds/812",
        "BUILDKITE_BUILD_NUMBER=812",
        "BUILDKITE_BRANCH=main",
        "BUILDKITE_COMMIT=0123456789abcdef0123456789abcdef01234567",
        "BUILDKITE_STEP_KEY=test",
        "BUILDKITE_LABEL=:golang: test",
        "BUILDKITE_COMMAND=go test ./...",
        "BUILDKITE_ARTIFACT_PATHS=coverage.out",
        "BUILDKITE_PLUGINS=" + json.dumps([plugin], separators=(",", ":")),
    ]
    return {
        "uuid": uuid,
        "command": "go test ./...",
        "env": env,
        "agentQueryRules": ["queue=kubernetes", "size=large"],
        "scheduledAt": "2026-11-27T10:00:00Z",
    }


def timed(step: Any, iterations: int) -> float:
    """The median duration of ``step()`` over ``iterations`` calls."""
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def api_create_seconds(manifest: dict[str, Any], runs: int = 50) -> float | None:
    """Median duration of a dry-run Job create on the real apiserver, or None without one."""
    try:
        sys.path.insert(0, str(ROOT))
        from kubernetes import client  # noqa: PLC0415 - only when a cluster is wanted

        from tests.harness.cluster import (  # noqa: PLC0415 - the harness lives with the tests
            KubeBinariesMissingError,
            KubeCluster,
            locate_binaries,
        )
    except ImportError:
        return None
    try:
        binaries = locate_binaries()
    except KubeBinariesMissingError:
        return None
    with KubeCluster(binaries) as cluster:
        batch = client.BatchV1Api(cluster.api_client())
        body: Any = dict(manifest)
        body["metadata"] = {**manifest["metadata"], "namespace": "default"}
        timings: list[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            batch.create_namespaced_job("default", body, dry_run="All")
            timings.append(time.perf_counter() - start)
        return statistics.median(timings)


TEAM_POLICY = """apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {{name: team-{n}}}
spec:
  phase: customize
  match: has(pipeline.slug) && pipeline.slug.startsWith("team-{n}-")
  rules:
  - name: pool
    patch: {{spec: {{template: {{spec: {{nodeSelector: {{team: "t{n}"}}}}}}}}}}
  - name: requests
    target: $command
    defaults: {{resources: {{requests: {{cpu: "1"}}}}}}
"""


def user_policy_dirs(count: int, scratch: Path) -> list[Path]:
    """The example policies, topped up with team policies (matching other pipelines) to ``count``.

    The restricted Pod Security pair is left out: the restricted example denies a step container
    without its own restricted securityContext (this job's have none), and a denied job is no
    benchmark; its companion, which prepares the stack's containers for it, means nothing alone.
    """
    examples = [
        path
        for path in sorted((CHECKOUT / "examples" / "policies").glob("*.yaml"))
        if path.name not in ("41-pod-security-restricted.yaml", "42-pod-security-restricted-stack.yaml")
    ]
    scratch.mkdir(parents=True, exist_ok=True)
    for path in examples:
        (scratch / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    for n in range(max(0, count - len(examples))):
        (scratch / f"team-{n:02d}.yaml").write_text(TEAM_POLICY.format(n=n), encoding="utf-8")
    return [scratch]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--user-policies", type=int, default=20)
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure in the same run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.baseline is not None:
        return compare(args.baseline, args.rounds, args.iterations, args.user_policies)

    defaults = load_policies([], include_defaults=True)
    with tempfile.TemporaryDirectory() as scratch:
        policies = load_policies(user_policy_dirs(args.user_policies, Path(scratch)), include_defaults=True)
    view = parse_config({"tags": ["queue=kubernetes", "size=large"]}, "bench").expression_view()
    job = parse_job(realistic_job())

    decision = evaluate(policies, job, view)
    if not decision.admitted:
        print("benchmark job was denied:", decision.failure_message, file=sys.stderr)
        return 1
    for _ in range(50):
        evaluate(policies, job, view)
    samples: list[float] = []
    cpu_samples: list[float] = []
    started = time.perf_counter()
    for _ in range(args.iterations):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        evaluate(policies, job, view)
        samples.append(time.perf_counter() - t0)
        cpu_samples.append(time.thread_time() - c0)
    total = time.perf_counter() - started

    p50, p99 = percentile(samples, 0.50), percentile(samples, 0.99)
    cpu50, cpu99 = percentile(cpu_samples, 0.50), percentile(cpu_samples, 0.99)
    print(f"policies: {len(policies)} ({len(policies) - len(defaults)} user, {len(defaults)} default)")
    print(f"iterations: {args.iterations}")
    print(f"p50: {p50 * 1e3:.3f} ms")
    print(f"p99: {p99 * 1e3:.3f} ms")
    print(f"cpu p50: {cpu50 * 1e3:.3f} ms")
    print(f"cpu p99: {cpu99 * 1e3:.3f} ms")
    print(f"jobs/s: {args.iterations / total:.0f}")
    finish = timed(
        lambda: finish_job(
            decision.manifest, decision.trace, view, policies.digests, decision.warnings, __version__
        ),
        args.iterations,
    )
    check = timed(lambda: validate_job(decision.manifest), args.iterations)
    print(f"finishing step p50: {finish * 1e3:.3f} ms ({finish / p50:.0%} of evaluate)")
    print(f"Kubernetes API check p50: {check * 1e3:.3f} ms ({check / p50:.0%} of evaluate)")
    if not args.no_cluster:
        create = api_create_seconds(decision.manifest)
        if create is None:
            print("apiserver create: unavailable (run scripts/build-kube.sh)")
        else:
            print(f"apiserver create (dry-run, median): {create * 1e3:.3f} ms")
            print(f"engine p50 / create: {p50 / create:.3f}")
    return 0


def run_once(checkout: Path, iterations: int, user_policies: int) -> dict[str, float]:
    """One run of this bench on ``checkout``'s engine in a fresh process: its figures, by name (ms)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--no-cluster",
        "--iterations",
        str(iterations),
        "--user-policies",
        str(user_policies),
    ]
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    output = subprocess.run(
        command, cwd=checkout, env=environment, capture_output=True, text=True, check=True
    )
    figures = {}
    for name, value in re.findall(r"^([^\n]*?)[ \t]*p50: ([0-9.]+) ms", output.stdout, flags=re.M):
        figures[name or "wall"] = float(value)
    return figures


def compare(baseline: Path, rounds: int, iterations: int, user_policies: int) -> int:
    """This checkout against ``baseline``, alternately, in the same run."""
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    for _ in range(rounds):
        runs["baseline"].append(run_once(baseline.resolve(), iterations, user_policies))
        runs["this"].append(run_once(ROOT, iterations, user_policies))
    names = [name for name in runs["this"][0] if all(name in r for r in runs["baseline"])]
    print(f"{rounds} alternating rounds of {iterations} jobs; each run's p50 (ms): the median over the")
    print("runs, and the least disturbed run (min), which a loaded machine changes least")
    print(
        f"{'figure':<24}{'baseline':>10}{'this':>10}{'change':>9}"
        f"{'min base':>10}{'min this':>10}{'change':>9}"
    )
    for name in names:
        before = [r[name] for r in runs["baseline"]]
        after = [r[name] for r in runs["this"]]
        median_before, median_after = statistics.median(before), statistics.median(after)
        print(
            f"{name:<24}{median_before:>10.3f}{median_after:>10.3f}{median_after / median_before - 1:>+9.0%}"
            f"{min(before):>10.3f}{min(after):>10.3f}{min(after) / min(before) - 1:>+9.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
