"""What hostile input costs the engine: regular expressions and oversized or deeply nested jobs.

Prints, for each adversarial ``matches()`` case, the time of Python's backtracking ``re`` (capped: a
case that exceeds the cap prints ``>cap``) next to RE2 (``engine.core.regex``, what both evaluation
paths use); then the cost of refusing a job input (a 20,000-deep plugin, an oversized
``BUILDKITE_PLUGINS``, an oversized env) through the whole ``evaluate`` next to a normal job, all
measured in the same run so the numbers compare on a shared, noisy machine.

Usage: .venv/bin/python bench/guardrail_inputs.py [--repeat 5] [--re-cap 2.0]
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import re
import statistics
import time
from collections.abc import Callable

from engine.core.evaluate import evaluate
from engine.core.regex import re2_matches
from engine.model.config import parse_config
from engine.model.job import BuildkiteJob, parse_job
from engine.model.limits import MAX_JOB_BYTES, MAX_PLUGINS_BYTES
from engine.policy.loader import load_policies

PLUGIN_KEY = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"
CASES = [
    ("(a+)+$", "a" * 28 + "!"),
    ("(a+)+$", "a" * 5_000 + "!"),
    ("^(a|aa)*$", "a" * 40 + "b"),
    ("(x+x+)+y", "x" * 5_000),
    ("^(\\w+\\s?)*$", "word " * 1_000 + "!"),
    ("a*a*a*a*a*b", "a" * 5_000),
    (".*.*.*=.*", "x" * 5_000),
]


def _python_re(pattern: str, text: str, results: multiprocessing.Queue[float]) -> None:
    started = time.perf_counter()
    re.search(pattern, text)
    results.put(time.perf_counter() - started)


def python_re_seconds(pattern: str, text: str, cap: float) -> float | None:
    """Python's ``re`` in a child process, so a runaway case can be stopped at ``cap`` seconds."""
    results: multiprocessing.Queue[float] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_python_re, args=(pattern, text, results))
    child.start()
    child.join(cap)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return results.get()


def best_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def job_with(env: list[str], command: str = "make") -> BuildkiteJob:
    return parse_job(
        {
            "uuid": "0193b000-0000-4000-8000-00000000beef",
            "command": command,
            "env": env,
            "agentQueryRules": ["queue=kubernetes"],
            "pipeline": {"slug": "web", "name": "web"},
            "build": {"number": 1, "branch": "main", "commit": "c", "source": {"name": "api"}},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--re-cap", type=float, default=2.0, help="seconds before Python re is stopped")
    args = parser.parse_args()

    print("matches(): Python re (backtracking) vs RE2, best of runs")
    print(f"{'pattern':<16} {'text':>8} {'python re':>12} {'RE2':>12}")
    for pattern, text in CASES:
        python = python_re_seconds(pattern, text, args.re_cap)
        re2_time = best_of(args.repeat, functools.partial(re2_matches, text, pattern))
        shown = f">{args.re_cap:.1f} s" if python is None else f"{python * 1e3:.3f} ms"
        print(f"{pattern:<16} {len(text):>8} {shown:>12} {re2_time * 1e3:>9.3f} ms")

    policies = load_policies([])
    config = parse_config({}, "bench").expression_view()
    plugin = {"podSpec": {"containers": [{"image": "golang:1.23", "command": ["go test ./..."]}]}}
    normal = job_with([f"BUILDKITE_PLUGINS={json.dumps([{PLUGIN_KEY: plugin}])}"])
    deep = "[" * 20_000 + "]" * 20_000
    inputs = {
        "normal job with a plugin": normal,
        "plugin nested 20,000 deep": job_with(
            [f'BUILDKITE_PLUGINS=[{{"{PLUGIN_KEY}": {{"podSpecPatch": {{"x": {deep}}}}}}}]']
        ),
        "plugin nested 66 deep": job_with(
            [f'BUILDKITE_PLUGINS=[{{"{PLUGIN_KEY}": {{"x": {"[" * 63 + "]" * 63}}}}}]']
        ),
        f"BUILDKITE_PLUGINS > {MAX_PLUGINS_BYTES // 1024} KiB": job_with(
            [f'BUILDKITE_PLUGINS=[{{"x#v1": "{"x" * MAX_PLUGINS_BYTES}"}}]']
        ),
        f"env > {MAX_JOB_BYTES // 1024} KiB": job_with(["BIG=" + "y" * MAX_JOB_BYTES]),
    }
    print()
    print("evaluate() on refused input vs a normal job (median of runs)")
    for name, buildkite_job in inputs.items():
        times = []
        decision = evaluate(policies, buildkite_job, config)
        for _ in range(args.repeat):
            started = time.perf_counter()
            evaluate(policies, buildkite_job, config)
            times.append(time.perf_counter() - started)
        outcome = "admitted" if decision.admitted else f"denied by {decision.denials[0].rule}"
        print(f"{name:<28} {statistics.median(times) * 1e3:>9.3f} ms  {outcome}")


if __name__ == "__main__":
    main()
