"""Pod-sizes example: with the plugin prohibited, a job runs with exactly one known size, or not at all.

``10-pod-sizes.yaml`` lets a step pick ``size=small|medium|large`` with an agent tag, and the
controller runs with ``prohibit-kubernetes-plugin: true``. Property: the job is denied, or its command
container carries exactly the resources of one known size and the pod is on that size's node pool.
The author's only levers are the agent tags and the way ``BUILDKITE_PLUGINS`` is written.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.compiler import PolicySet
from engine.model.decision import Decision
from tests.attacks.harness import (
    PLUGIN_KEY,
    Job,
    example,
    pod,
    policies,
    require_admitted,
    run,
    step_container,
)
from tests.attacks.oracle import containers_named

SIZES = {
    "small": ({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}, "general"),
    "medium": ({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}, "general"),
    "large": ({"requests": {"cpu": "8", "memory": "32Gi"}, "limits": {"memory": "32Gi"}}, "compute"),
}
"""The sizes the example documents: resources of the command containers, and the node pool."""

CONFIG = {"prohibit-kubernetes-plugin": True}
ANY_SIZE = set(SIZES)
"""A job that asks for no size may get a default one, or be denied; one with an unknown size or the
prohibited plugin is offered no size at all, so it must be denied."""


def sizes_policy() -> PolicySet:
    return policies(example("10-pod-sizes.yaml"))


def size_of(decision: Decision) -> str | None:
    """The one known size the admitted pod matches, or ``None``."""
    spec = pod(decision)
    commands = containers_named(spec, "container-0")
    if len(commands) != 1:
        return None
    resources = commands[0].container.get("resources")
    pool = (spec.get("nodeSelector") or {}).get("node-pool")
    matches = [name for name, (shape, node_pool) in SIZES.items() if resources == shape and pool == node_pool]
    return matches[0] if len(matches) == 1 else None


def assert_denied_or_one_known_size(job: Job, offered: set[str]) -> None:
    decision = run(sizes_policy(), job, CONFIG)
    if decision.admitted:
        size = size_of(decision)
        if size is None:
            pytest.fail(f"admitted without a known size: {pod(decision).get('nodeSelector')}")
        assert size in offered, f"admitted as {size}; acceptable: {sorted(offered) or 'none (deny)'}"


PLUGIN = {
    "podSpec": {"containers": [step_container(resources={"requests": {"cpu": "64", "memory": "256Gi"}})]}
}


@pytest.mark.parametrize(
    ("tags", "plugins", "offered"),
    [
        pytest.param(
            ("queue=kubernetes", "size=small", "size=huge"), None, {"small"}, id="two-size-tags-unknown-last"
        ),
        pytest.param(
            ("queue=kubernetes", "size=huge", "size=small"), None, {"small"}, id="two-size-tags-unknown-first"
        ),
        pytest.param(
            ("queue=kubernetes", "size=large", "size=small"),
            None,
            {"large", "small"},
            id="two-known-size-tags",
        ),
        pytest.param(
            ("queue=kubernetes", "size=small", "size=small"), None, {"small"}, id="same-size-tag-twice"
        ),
        pytest.param(("queue=kubernetes",), None, ANY_SIZE, id="no-size-tag"),
        pytest.param(("queue=kubernetes", "Size=large"), None, ANY_SIZE, id="size-key-capitalised"),
        pytest.param(("queue=kubernetes", "size =large"), None, ANY_SIZE, id="size-key-trailing-space"),
        pytest.param(("queue=kubernetes", "size=large "), None, set(), id="size-value-trailing-space"),
        pytest.param(("queue=kubernetes", "size=Large"), None, set(), id="size-value-capitalised"),
        pytest.param(("queue=kubernetes", "size=*"), None, set(), id="size-wildcard"),
        pytest.param(("queue=kubernetes", "size"), None, ANY_SIZE, id="size-without-value"),
        pytest.param(
            ("queue=kubernetes", "size=small"), [{PLUGIN_KEY: PLUGIN}], set(), id="plugin-with-size-tag"
        ),
        pytest.param(
            ("queue=kubernetes", "size=small"), [{"kubernetes": PLUGIN}], set(), id="plugin-under-short-key"
        ),
        pytest.param(
            ("queue=kubernetes", "size=small"),
            [{PLUGIN_KEY + "#v1.2.3": PLUGIN}],
            set(),
            id="plugin-under-versioned-key",
        ),
        pytest.param(
            ("queue=kubernetes", "size=small"), [{PLUGIN_KEY: None}], set(), id="plugin-with-null-config"
        ),
        pytest.param(
            ("queue=kubernetes", "size=small"),
            [{"docker#v5.11.0": {"image": "x"}}, {PLUGIN_KEY: PLUGIN}],
            set(),
            id="plugin-after-another-plugin",
        ),
        pytest.param(
            ("queue=kubernetes", "size=small"),
            [{"https://github.com/buildkite-plugins/kubernetes-buildkite-plugin.git": PLUGIN}],
            {"small"},
            id="plugin-under-a-git-url-spelling",
        ),
    ],
)
def test_a_job_gets_one_known_size_or_is_denied(
    tags: tuple[str, ...], plugins: list[Any] | None, offered: set[str]
) -> None:
    assert_denied_or_one_known_size(Job(tags=tags, plugins=plugins), offered)


def test_duplicate_plugin_keys_in_one_entry_are_still_the_plugin() -> None:
    body = '{"podSpec": {"containers": []}}'
    text = f'[{{"{PLUGIN_KEY}": {body}, "{PLUGIN_KEY}": {body}}}]'
    assert_denied_or_one_known_size(
        Job(tags=("queue=kubernetes", "size=small"), plugins_json=text), {"small"}
    )


@pytest.mark.parametrize("size", sorted(SIZES))
def test_each_known_size_is_admitted_with_its_shape(size: str) -> None:
    decision = run(sizes_policy(), Job(tags=("queue=kubernetes", f"size={size}")), CONFIG)
    require_admitted(decision)
    actual = size_of(decision)
    assert actual == size
