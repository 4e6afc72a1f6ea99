"""Resource-bounds example: the bounds hold for every container kind and every way to ask.

``30-queue-resource-bounds.yaml`` promises: on queue ``kubernetes`` no container ends up with an
effective memory request above 8Gi (it may be clamped), and on every queue a CPU request above 16
cores is refused. An effective request counts limits given without requests, because the API server
defaults the request to the limit.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from engine.core.compiler import PolicySet
from tests.attacks import placement
from tests.attacks.harness import (
    Job,
    example,
    only_container,
    pod,
    policies,
    require_admitted,
    run,
    step_container,
)
from tests.attacks.oracle import effective_requests, resources_above

MEMORY_BOUND = Fraction(8 * 2**30)
CPU_BOUND = Fraction(16)


def bounds() -> PolicySet:
    return policies(example("30-queue-resource-bounds.yaml"))


def requests(**values: Any) -> dict[str, Any]:
    return {"resources": {"requests": values}}


def limits(**values: Any) -> dict[str, Any]:
    return {"resources": {"limits": values}}


MEMORY_ROUTES = (
    "podSpec-second-container",
    "podSpec-init",
    "podSpec-restartable-init",
    "sidecar",
    "podSpec-ephemeral",
    "podSpecPatch-new-container",
    "podSpecPatch-new-init",
    "podSpecPatch-agent",
    "podSpecPatch-checkout",
    "podSpecPatch-copy-agent",
    "podSpecPatch-imagepullcheck-0",
    "podSpecPatch-replace-pod",
)


def memory_attacks() -> list[Any]:
    cases: list[tuple[str, Any, tuple[str, ...]]] = [
        ("requests-16Gi-via-podSpec", placement.in_step(requests(memory="16Gi")), ("queue=kubernetes",)),
        ("limits-only-32Gi-via-podSpec", placement.in_step(limits(memory="32Gi")), ("queue=kubernetes",)),
        ("limits-only-32Gi-via-sidecar", placement.in_sidecar(limits(memory="32Gi")), ("queue=kubernetes",)),
        (
            "limits-only-via-podSpecPatch-container-0",
            placement.patching("container-0")(limits(memory="64Gi")),
            ("queue=kubernetes",),
        ),
    ]
    cases += [
        (f"requests-16Gi-via-{name}", placement.ROUTES[name](requests(memory="16Gi")), ("queue=kubernetes",))
        for name in MEMORY_ROUTES
    ]
    for label, value in [
        ("bytes-string", "17179869184"),
        ("bytes-number", 17179869184),
        ("float-number", 1.6e10),
        ("Mi", "16384Mi"),
        ("exponent", "1.6e10"),
        ("decimal-G", "9G"),
        ("fraction-Ti", "0.5Ti"),
        ("one-byte-over", "8589934593"),
    ]:
        cases.append(
            (f"memory-spelled-{label}", placement.in_step(requests(memory=value)), ("queue=kubernetes",))
        )
    big = placement.in_step(requests(memory="16Gi"))
    cases += [
        ("duplicate-queue-tag-kubernetes-first", big, ("queue=kubernetes", "queue=big")),
        ("duplicate-queue-tag-kubernetes-last", big, ("queue=big", "queue=kubernetes")),
        (
            "role-key-smuggled-in-patch",
            {
                "podSpecPatch": {
                    "containers": [{"name": "container-0", "$role": "sidecar", **requests(memory="64Gi")}]
                }
            },
            ("queue=kubernetes",),
        ),
        (
            "role-key-smuggled-in-step-init",
            {
                "podSpec": {
                    "initContainers": [
                        {
                            "name": "prep",
                            "image": "registry.example.com/x:1",
                            "$role": "agent",
                            **limits(memory="64Gi"),
                        }
                    ]
                }
            },
            ("queue=kubernetes",),
        ),
    ]
    return [pytest.param(plugin, tags, id=case_id) for case_id, plugin, tags in cases]


@pytest.mark.parametrize(("plugin", "tags"), memory_attacks())
def test_memory_above_the_bound_never_runs_on_the_shared_queue(plugin: Any, tags: tuple[str, ...]) -> None:
    decision = run(bounds(), Job(plugin=plugin, tags=tags))
    if decision.admitted:
        actual = resources_above(pod(decision), "memory", MEMORY_BOUND)
        assert actual == []


CPU_ROUTES = (
    "podSpec",
    "podSpec-init",
    "sidecar",
    "podSpec-ephemeral",
    "podSpecPatch-new-container",
    "podSpecPatch-new-init",
    "podSpecPatch-agent",
    "podSpecPatch-copy-agent",
)


def cpu_attacks() -> list[Any]:
    cases: list[tuple[str, Any]] = [
        (f"requests-17-via-{name}", placement.ROUTES[name](requests(cpu="17"))) for name in CPU_ROUTES
    ]
    cases += [
        ("limits-only-32-via-podSpec", placement.in_step(limits(cpu="32"))),
        ("limits-only-32-via-podSpec-init", placement.in_step_init(limits(cpu="32"))),
        ("limits-only-32-via-sidecar", placement.in_sidecar(limits(cpu="32"))),
    ]
    for label, value in [
        ("millicores", "16001m"),
        ("float-number", 16.5),
        ("integer-number", 17),
        ("exponent", "1.7e1"),
        ("kilo", "0.017k"),
    ]:
        cases.append((f"cpu-spelled-{label}", placement.in_step(requests(cpu=value))))
    return [pytest.param(plugin, id=case_id) for case_id, plugin in cases]


@pytest.mark.parametrize("plugin", cpu_attacks())
@pytest.mark.parametrize("queue", ["kubernetes", "builds"])
def test_cpu_above_the_ceiling_is_denied_on_every_queue(plugin: Any, queue: str) -> None:
    decision = run(bounds(), Job(plugin=plugin, tags=(f"queue={queue}",)))
    if decision.admitted:
        pytest.fail(f"admitted: {resources_above(pod(decision), 'cpu', CPU_BOUND)}")


# --- controls --------------------------------------------------------------------------------------


def test_a_request_within_the_bound_is_left_alone() -> None:
    plugin = placement.in_step(
        {"resources": {"requests": {"memory": "4Gi", "cpu": "16"}, "limits": {"memory": "64Gi"}}}
    )
    decision = run(bounds(), Job(plugin=plugin))
    require_admitted(decision)
    actual = effective_requests(only_container(decision, "app"))
    assert actual == {
        "memory": Fraction(4 * 2**30),
        "cpu": Fraction(16),
    }


def test_memory_is_not_bounded_on_other_queues() -> None:
    plugin = {"podSpec": {"containers": [step_container(resources={"requests": {"memory": "16Gi"}})]}}
    decision = run(bounds(), Job(plugin=plugin, tags=("queue=big-memory",)))
    require_admitted(decision)
    actual = effective_requests(only_container(decision, "app"))["memory"]
    assert actual == Fraction(16 * 2**30)


def test_hello_world_is_admitted() -> None:
    decision = run(bounds(), Job())
    require_admitted(decision)
