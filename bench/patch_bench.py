"""Patch engine latency: the ~40 patch operations one Buildkite job's policies make, on a realistic Job.

The whole-job engine budget is ~1 ms p50, so the patch operations must stay a small part of it. This
replays a representative mix (strategic merges on the Job and on single containers, defaults, JSON
patches) against a Job shaped like the ones agent-stack-k8s builds (agent, checkout, command and
sidecar containers with ~20 env vars each, an init container, volumes) and prints p50/p99 for the
whole mix and the mean per operation kind.

Usage: .venv/bin/python bench/patch_bench.py [--iterations 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from engine.core.patch import CONTAINER, JOB, apply_defaults, apply_json_patch, strategic_merge

Operation = Callable[[Any], Any]


def _env(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}_{index}", "value": f"value-{index}"} for index in range(count)]


def _container(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": "buildkite/agent:3.78.0",
        "command": ["/workspace/tini-static"],
        "args": ["--", "buildkite-agent", "bootstrap"],
        "workingDir": "/workspace",
        "env": _env("BUILDKITE", 20),
        "volumeMounts": [
            {"name": "workspace", "mountPath": "/workspace"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }


def realistic_job() -> dict[str, Any]:
    containers = [_container(name) for name in ("agent", "checkout", "container-0", "sidecar-0", "sidecar-1")]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "buildkite-0190b7ab",
            "labels": {f"tag.buildkite.com/k{index}": f"v{index}" for index in range(4)},
            "annotations": {"buildkite.com/job-url": "https://buildkite.com/org/pipe/builds/1#job"},
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": {"buildkite.com/job-uuid": "0190b7ab"}},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [_container("copy-agent")],
                    "containers": containers,
                    "volumes": [{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def _on_pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


def _job_patch(patch: dict[str, Any]) -> Operation:
    return lambda job: strategic_merge(job, patch, JOB)[0]


def _job_defaults(defaults: dict[str, Any]) -> Operation:
    return lambda job: apply_defaults(job, defaults)[0]


def _json_patch(operations: list[dict[str, Any]]) -> Operation:
    return lambda job: apply_json_patch(job, operations)[0]


def _container_patch(patch: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda container: strategic_merge(container, patch, CONTAINER)[0]


def _container_defaults(defaults: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda container: apply_defaults(container, defaults)[0]


def _with_container(job: dict[str, Any], index: int, container: dict[str, Any]) -> dict[str, Any]:
    """The Job with one container swapped, rebuilding only the containers on the way."""
    spec = job["spec"]
    template = spec["template"]
    pod = template["spec"]
    containers = [*pod["containers"][:index], container, *pod["containers"][index + 1 :]]
    return {**job, "spec": {**spec, "template": {**template, "spec": {**pod, "containers": containers}}}}


def _container_op(name: str, apply: Callable[[dict[str, Any]], dict[str, Any]]) -> Operation:
    """What a ``target:`` rule does: change one container, then put it back into the Job."""

    def run(job: Any) -> Any:
        containers = job["spec"]["template"]["spec"]["containers"]
        index = next(i for i, container in enumerate(containers) if container["name"] == name)
        updated = apply(containers[index])
        return job if updated is containers[index] else _with_container(job, index, updated)

    return run


def operations() -> list[tuple[str, Operation]]:
    """39 operations: what a default policy set plus a few user policies do to one job."""
    ops: list[tuple[str, Operation]] = []
    for index in range(8):
        ops.append(("smp job labels", _job_patch({"metadata": {"labels": {f"policy/{index}": "yes"}}})))
    for index in range(6):
        ops.append(("smp pod spec", _job_patch(_on_pod({"nodeSelector": {f"node/{index}": "x"}}))))
    new_container = {"containers": [{"name": "extra", "image": "busybox"}]}
    ops.append(("smp add container", _job_patch(_on_pod(new_container))))
    ops.append(("smp add volume", _job_patch(_on_pod({"volumes": [{"name": "cache", "emptyDir": {}}]}))))
    # "agent" twice: the second application changes nothing, as when two policies agree.
    for name in ("agent", "checkout", "container-0", "sidecar-0", "sidecar-1", "agent"):
        env_patch = {"env": [{"name": "POLICY_ENV", "value": name}], "volumeMounts": [{"mountPath": "/c"}]}
        ops.append(("smp container env", _container_op(name, _container_patch(env_patch))))
    container_defaults = {"resources": {"limits": {"memory": "1Gi"}}, "imagePullPolicy": "IfNotPresent"}
    for name in ("agent", "checkout", "container-0", "sidecar-0", "sidecar-1"):
        ops.append(("defaults container", _container_op(name, _container_defaults(container_defaults))))
    for index in range(6):
        ops.append(("defaults job", _job_defaults({"spec": {"activeDeadlineSeconds": index}})))
    tolerations = "/spec/template/spec/tolerations"
    ops.append(("json patch", _json_patch([{"op": "add", "path": tolerations, "value": []}])))
    for index in range(5):
        append = {"op": "add", "path": f"{tolerations}/-", "value": {"key": f"t{index}"}}
        ops.append(("json patch", _json_patch([append])))
    return ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()

    ops = operations()
    per_kind: dict[str, list[float]] = {}
    totals: list[float] = []
    for _ in range(args.iterations):
        job = realistic_job()
        started = time.perf_counter()
        for kind, op in ops:
            op_started = time.perf_counter()
            job = op(job)
            per_kind.setdefault(kind, []).append(time.perf_counter() - op_started)
        totals.append(time.perf_counter() - started)

    totals.sort()
    p50 = statistics.median(totals) * 1e6
    p99 = totals[int(len(totals) * 0.99) - 1] * 1e6
    print(f"{len(ops)} operations per job, {args.iterations} jobs")
    print(f"whole mix: p50 {p50:.0f} µs, p99 {p99:.0f} µs")
    for kind, samples in per_kind.items():
        print(f"  {kind:<20} mean {statistics.fmean(samples) * 1e6:6.1f} µs")


if __name__ == "__main__":
    main()
