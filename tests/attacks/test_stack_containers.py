"""The stack's containers keep how they run: a step's podSpecPatch may not change commands or args.

The default policies refuse a podSpecPatch container that sets ``command`` or ``args`` (upstream's
rule: those are how the stack runs the step, its checkout and its agent). Property: whatever
directive the author uses instead of setting them (``null``, ``$retainKeys``, ``$patch: replace``,
``$deleteFromPrimitiveList``), the job is denied, or the ``command`` and ``args`` of the agent, the
checkout, the command container and the init containers are exactly those of the same job without the
patch.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.attacks.harness import ALLOWED_IMAGE, Job, pod, policies, require_admitted, run
from tests.attacks.oracle import containers_named

RUN_FIELDS = ("command", "args")
STACK_CONTAINERS = ("agent", "checkout", "container-0")


def how_they_run(spec: dict[str, Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for name in STACK_CONTAINERS:
        found[name] = [{k: ref.container.get(k) for k in RUN_FIELDS} for ref in containers_named(spec, name)]
    return found


def patch_container(name: str, **fields: Any) -> dict[str, Any]:
    return {"podSpecPatch": {"containers": [{"name": name, **fields}]}}


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(patch_container("container-0", command=None), id="command-0-command-null"),
        pytest.param(patch_container("container-0", args=None), id="command-0-args-null"),
        pytest.param(
            patch_container("container-0", **{"$deleteFromPrimitiveList/args": ["bootstrap"]}),
            id="command-0-deleteFromPrimitiveList-args",
        ),
        pytest.param(
            patch_container("container-0", **{"$retainKeys": ["name", "image", "env"]}),
            id="command-0-retainKeys",
        ),
        pytest.param(
            {
                "podSpecPatch": {
                    "containers": [{"$patch": "replace"}, {"name": "container-0", "image": ALLOWED_IMAGE}]
                }
            },
            id="containers-list-replaced",
        ),
        pytest.param(patch_container("checkout", args=None), id="checkout-script-null"),
        pytest.param(
            patch_container("checkout", **{"$retainKeys": ["name", "image"]}), id="checkout-retainKeys"
        ),
        pytest.param(patch_container("agent", args=None), id="agent-args-null"),
        pytest.param(
            patch_container("agent", **{"$deleteFromPrimitiveList/args": ["start"]}),
            id="agent-deleteFromPrimitiveList-args",
        ),
    ],
)
def test_a_patch_cannot_change_how_the_stack_runs_its_containers(plugin: dict[str, Any]) -> None:
    before = run(policies(), Job())
    after = run(policies(), Job(plugin=plugin))
    if after.admitted:
        actual = how_they_run(pod(after))
        expected = how_they_run(pod(before))
        assert actual == expected


def test_a_harmless_patch_is_still_admitted() -> None:
    plugin = patch_container("container-0", resources={"requests": {"cpu": "1"}})
    decision = run(policies(), Job(plugin=plugin))
    require_admitted(decision)
    actual = how_they_run(pod(decision))
    assert actual == how_they_run(pod(run(policies(), Job())))
