"""Fast CEL closures against the ``cel`` library, on the expressions and data of a real job.

The example job (``examples/jobs/go-test-with-postgres.json``) is run through the shipped policies
once, recording every expression the engine evaluates together with the values it was evaluated
against. For ~15 representative expressions this prints the µs per evaluation of the fast closure,
of the ``cel`` library with its context built once (only ``execute`` timed), of the library when
the roots must be added to its context again first (what the engine pays after a root changed), and
the fast compile time; then the total over every recorded evaluation. Target: a typical expression
in <= 2 µs.

Usage: .venv/bin/python bench/cel_fast_bench.py [--repeat 5] [--min-time 0.05]
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cel
from cel.stdlib import STDLIB_FUNCTIONS

from engine.core.cel_fast import CelError, Unsupported, compile_fast
from engine.core.evaluate import evaluate
from engine.core.expressions import Activation, CompiledExpression, _rewrite_vars
from engine.core.function_registry import HELPERS
from engine.inputs import load_config_file, load_job_file
from engine.policy.loader import load_policies

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS: dict[str, Callable[..., Any]] = {**STDLIB_FUNCTIONS, **HELPERS}

# A distinctive piece of each representative expression, as written in policies/*.yaml.
REPRESENTATIVE = [
    'lookup(plugin, "podSpec", {})',
    "has(job.pluginsError)",
    "config.prohibitKubernetesPlugin && job.hasKubernetesPlugin",
    "vars.skipCheckout ? 0 : 1",
    "size(invalidLabels(vars.tagLabels)) > 0",
    'job.otherPluginsJson == "" ? []',
    "vars.redactedVars.join(',')",
    "has(config.agentConfig) ? config.agentConfig : {}",
    "has(vars.ac.hooksPath) ? vars.ac.hooksPath",
    '(has(vars.ac.endpoint) ? [{"name": "BUILDKITE_AGENT_ENDPOINT"',
    '"k8s:agent-stack-version=" + stack.version',
    "size(vars.stepContainers) == 0 ? [config.image]",
    'merge(lookup(config, "defaultMetadata.labels", {})',
    "string(index + vars.systemContainerCount)",
    'size(lookup(container, "command", [])) == 0 ? job.command',
    'nonEmpty(lookup(container, "envFrom", []) + vars.commandEnvFrom',
    "vars.checkoutParams.map(p,",
    "lists.range(size(vars.imagesToCheck)).map(i,",
]


@dataclass
class Evaluation:
    source: str
    roots: dict[str, Any]


def record_job_evaluations() -> list[Evaluation]:
    """Every CEL evaluation the engine makes for the example job, with the roots it reads."""
    recorded: list[Evaluation] = []
    original = Activation.evaluate

    def recording(activation: Activation, expression: CompiledExpression) -> Any:
        if expression.member_chain is None:  # plain member chains never reach CEL in the engine
            roots = {root: activation.get(root) for root in expression.roots if activation.has(root)}
            recorded.append(Evaluation(_rewrite_vars(expression.source), roots))
        return original(activation, expression)

    Activation.evaluate = recording  # type: ignore[method-assign,assignment]
    try:
        job = load_job_file(ROOT / "examples" / "jobs" / "go-test-with-postgres.json")
        config = load_config_file(ROOT / "examples" / "config" / "minimal.yaml").expression_view()
        decision = evaluate(load_policies([]), job, config)
        assert decision.admitted, decision.denials
    finally:
        Activation.evaluate = original  # type: ignore[method-assign]
    return recorded


def per_call_seconds(call: Callable[[], Any], repeat: int, min_time: float) -> float:
    """Best-of-``repeat`` seconds per call, each repeat running for at least ``min_time``."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        if time.perf_counter() - start >= min_time / 10:
            break
        loops *= 4
    loops = max(1, int(loops * (min_time / max(time.perf_counter() - start, 1e-9)) / 10))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def quietly(program: Callable[[Mapping[str, Any]], Any], roots: Mapping[str, Any]) -> Callable[[], Any]:
    def call() -> Any:
        try:
            return program(roots)
        except CelError:
            return None

    return call


def reference(source: str, roots: Mapping[str, Any]) -> Callable[[], Any]:
    program = cel.compile(source)
    context = cel.Context(variables=dict(roots), functions=dict(FUNCTIONS))

    def call() -> Any:
        try:
            return program.execute(context)
        except Exception:
            return None

    return call


def reference_with_conversion(source: str, roots: Mapping[str, Any]) -> Callable[[], Any]:
    """What the engine pays when the roots changed since the last evaluation: each root is added to
    the context again (converting it to CEL values), then the program runs."""
    program = cel.compile(source)
    context = cel.Context(functions=dict(FUNCTIONS))

    def call() -> Any:
        for name, value in roots.items():
            context.add_variable(name, value)
        try:
            return program.execute(context)
        except Exception:
            return None

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per timing repeat")
    args = parser.parse_args()
    evaluations = record_job_evaluations()

    print(f"{'expression':58} {'fast µs':>8} {'cel µs':>8} {'+convert':>9} {'compile µs':>11}")
    for key in REPRESENTATIVE:
        needle = _rewrite_vars(key)
        chosen = next((e for e in evaluations if needle in e.source), None)
        if chosen is None:
            print(f"{key[:58]:58} (not evaluated for this job)")
            continue
        compiling = functools.partial(compile_fast, chosen.source, FUNCTIONS)
        compile_time = per_call_seconds(compiling, 3, args.min_time)
        fast_call = quietly(compile_fast(chosen.source, FUNCTIONS), chosen.roots)
        fast = per_call_seconds(fast_call, args.repeat, args.min_time)
        slow = per_call_seconds(reference(chosen.source, chosen.roots), args.repeat, args.min_time)
        converting = reference_with_conversion(chosen.source, chosen.roots)
        slowest = per_call_seconds(converting, args.repeat, args.min_time)
        label = " ".join(chosen.source.split())
        label = label if len(label) <= 58 else label[:55] + "..."
        print(
            f"{label:58} {fast * 1e6:8.2f} {slow * 1e6:8.2f} {slowest * 1e6:9.1f} {compile_time * 1e6:11.1f}"
        )

    supported = []
    for evaluation in evaluations:
        try:
            supported.append((evaluation, compile_fast(evaluation.source, FUNCTIONS)))
        except Unsupported as exc:
            print(f"unsupported: {evaluation.source!r}: {exc}")
    calls = [quietly(program, evaluation.roots) for evaluation, program in supported]

    def whole_job() -> None:
        for call in calls:
            call()

    total = per_call_seconds(whole_job, args.repeat, args.min_time * 4)
    print(
        f"\nall {len(calls)} CEL evaluations of the job (fast closures): {total * 1e3:.3f} ms"
        f" ({total * 1e6 / max(len(calls), 1):.2f} µs each)"
    )


if __name__ == "__main__":
    main()
