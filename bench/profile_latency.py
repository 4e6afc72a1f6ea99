"""The upstream-v0.47 profile's cost per job, against the default profile, measured in the same run.

Each golden fixture of the profile (``tests/golden-v047``, admitted ones) is evaluated with its config
through both policy sets: the default set alone (the same job and config, ``profile: default``) and
the default set plus the profile. Prints p50/p99 per job for each and the ratio, so a profile that
makes evaluation much slower is seen (the machine is shared; compare the two columns, not absolute
numbers across runs).

Usage: .venv/bin/python bench/profile_latency.py [--iterations 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from engine.core.evaluate import evaluate
from engine.dry_run import read_pod_templates
from engine.inputs import load_config_file, load_job_file
from engine.model.config import parse_config
from engine.policy.loader import load_policies

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted(p for p in (ROOT / "tests" / "golden-v047").iterdir() if (p / "expected.yaml").is_file())


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    default_set = load_policies([])
    head_set = load_policies([], profile="upstream-v0.47")
    cases = []
    for fixture in FIXTURES:
        config = load_config_file(fixture / "config.yaml")
        default_view = parse_config(
            {"id": config.id, "agent-token-secret": config.agent_token_secret}, "default"
        ).expression_view()
        templates_dir = fixture / "pod-templates"
        files = sorted(templates_dir.glob("*.yaml")) if templates_dir.is_dir() else []
        templates, _ = read_pod_templates([f"{f.stem}={f}" for f in files])
        cases.append((load_job_file(fixture / "job.json"), config.expression_view(), default_view, templates))
    timings: dict[str, list[float]] = {"default": [], "upstream-v0.47": []}
    for _ in range(args.iterations):
        for job, head_view, default_view, templates in cases:
            started = time.perf_counter()
            evaluate(default_set, job, default_view)
            timings["default"].append(time.perf_counter() - started)
            started = time.perf_counter()
            evaluate(head_set, job, head_view, pod_templates=templates)
            timings["upstream-v0.47"].append(time.perf_counter() - started)
    print(f"{len(cases)} fixtures x {args.iterations} iterations")
    results = {name: _percentiles(samples) for name, samples in timings.items()}
    for name, (p50, p99) in results.items():
        print(f"{name:>15}: p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms")
    ratio = results["upstream-v0.47"][0] / results["default"][0]
    print(f"{'ratio':>15}: p50 {ratio:.2f}x the default profile")


if __name__ == "__main__":
    main()
