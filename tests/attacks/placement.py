"""Where an author can put a container field: every place the ``kubernetes`` plugin reaches.

Each function returns the plugin config that puts ``fields`` on one container (or ``pod_fields`` on
the pod) by one route. The catalogue combines a forbidden value with every route, because a guard
that checks one list, or checks before the patches, is bypassed by the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.attacks.harness import ALLOWED_IMAGE, PLUGIN_KEY, step_container

Plugin = dict[str, Any]
Route = Callable[[dict[str, Any]], Plugin]


def in_step(fields: dict[str, Any]) -> Plugin:
    """A container of the step's podSpec (it becomes a command container)."""
    return {"podSpec": {"containers": [step_container(**fields)]}}


def in_second_step_container(fields: dict[str, Any]) -> Plugin:
    """The second of two podSpec containers."""
    return {"podSpec": {"containers": [step_container(), step_container(name="second", **fields)]}}


def in_step_init(fields: dict[str, Any]) -> Plugin:
    """An init container of the step's podSpec."""
    return {"podSpec": {"initContainers": [{"name": "prepare", "image": ALLOWED_IMAGE, **fields}]}}


def in_restartable_init(fields: dict[str, Any]) -> Plugin:
    """A restartable ("sidecar") init container of the step's podSpec."""
    container = {"name": "side-init", "image": ALLOWED_IMAGE, "restartPolicy": "Always", **fields}
    return {"podSpec": {"initContainers": [container]}}


def in_sidecar(fields: dict[str, Any]) -> Plugin:
    """One of the plugin's ``sidecars``."""
    return {"sidecars": [{"name": "db", "image": ALLOWED_IMAGE, **fields}]}


def in_step_ephemeral(fields: dict[str, Any]) -> Plugin:
    """An ephemeral container in the step's podSpec."""
    return {"podSpec": {"ephemeralContainers": [{"name": "debug", "image": ALLOWED_IMAGE, **fields}]}}


def in_patch_ephemeral(fields: dict[str, Any]) -> Plugin:
    """An ephemeral container added by the step's podSpecPatch."""
    return {"podSpecPatch": {"ephemeralContainers": [{"name": "debug", "image": ALLOWED_IMAGE, **fields}]}}


def in_patch_new_container(fields: dict[str, Any]) -> Plugin:
    """A brand-new container added by the step's podSpecPatch (no role the build gave it)."""
    return {"podSpecPatch": {"containers": [{"name": "extra", "image": ALLOWED_IMAGE, **fields}]}}


def in_patch_new_init(fields: dict[str, Any]) -> Plugin:
    """A brand-new init container added by the step's podSpecPatch."""
    return {"podSpecPatch": {"initContainers": [{"name": "extra-init", "image": ALLOWED_IMAGE, **fields}]}}


def patching(name: str, kind: str = "containers", *, with_step: bool = False) -> Route:
    """A podSpecPatch entry merged by name into an existing container (a system one, usually)."""

    def route(fields: dict[str, Any]) -> Plugin:
        plugin: Plugin = {"podSpecPatch": {kind: [{"name": name, **fields}]}}
        if with_step:  # a step image other than the agent's, so imagepullcheck-0 exists
            plugin["podSpec"] = {"containers": [step_container()]}
        return plugin

    return route


def sidecar_named(name: str) -> Route:
    """A sidecar whose name collides with (or imitates) a system container."""

    def route(fields: dict[str, Any]) -> Plugin:
        return {"sidecars": [{"name": name, "image": ALLOWED_IMAGE, **fields}]}

    return route


def step_named(name: str) -> Route:
    """A podSpec container whose name collides with (or imitates) a system container."""

    def route(fields: dict[str, Any]) -> Plugin:
        return {"podSpec": {"containers": [step_container(name=name, **fields)]}}

    return route


def patch_with_directive(directive: dict[str, Any]) -> Route:
    """A podSpecPatch on ``container-0`` carrying a strategic-merge directive next to the fields."""

    def route(fields: dict[str, Any]) -> Plugin:
        return {"podSpecPatch": {"containers": [{"name": "container-0", **directive, **fields}]}}

    return route


def patch_security_context_replace(fields: dict[str, Any]) -> Plugin:
    """``$patch: replace`` inside the securityContext of ``container-0``."""
    context = {"$patch": "replace", **fields.get("securityContext", {})}
    return {"podSpecPatch": {"containers": [{"name": "container-0", "securityContext": context}]}}


def patch_set_element_order(fields: dict[str, Any]) -> Plugin:
    """A new container placed first with ``$setElementOrder/containers``."""
    return {
        "podSpecPatch": {
            "$setElementOrder/containers": [
                {"name": "extra"},
                {"name": "container-0"},
                {"name": "agent"},
                {"name": "checkout"},
            ],
            "containers": [{"name": "extra", "image": ALLOWED_IMAGE, **fields}],
        }
    }


def patch_replace_whole_pod(fields: dict[str, Any]) -> Plugin:
    """``$patch: replace`` at the top of the podSpecPatch: the pod becomes only what the patch says."""
    return {
        "podSpecPatch": {
            "$patch": "replace",
            "restartPolicy": "Never",
            "containers": [{"name": "only", "image": ALLOWED_IMAGE, **fields}],
        }
    }


def patch_replace_container_list(fields: dict[str, Any]) -> Plugin:
    """A ``{"$patch": "replace"}`` element in ``containers``: the list becomes the patch's list."""
    return {
        "podSpecPatch": {
            "containers": [{"$patch": "replace"}, {"name": "only", "image": ALLOWED_IMAGE, **fields}]
        }
    }


def two_plugin_entries(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """Two kubernetes entries in BUILDKITE_PLUGINS: a harmless first one, the attack second."""
    return [{PLUGIN_KEY: {"podSpec": {"containers": [step_container()]}}}, {PLUGIN_KEY: in_step(fields)}]


def duplicate_json_keys(fields: dict[str, Any]) -> str:
    """One plugin entry whose JSON names ``podSpec`` twice: harmless first, the attack second."""
    harmless = json.dumps({"containers": [step_container()]})
    attack = json.dumps({"containers": [step_container(**fields)]})
    return f'[{{"{PLUGIN_KEY}": {{"podSpec": {harmless}, "podSpec": {attack}}}}}]'


ROUTES: dict[str, Route] = {
    "podSpec": in_step,
    "podSpec-second-container": in_second_step_container,
    "podSpec-init": in_step_init,
    "podSpec-restartable-init": in_restartable_init,
    "sidecar": in_sidecar,
    "podSpec-ephemeral": in_step_ephemeral,
    "podSpecPatch-ephemeral": in_patch_ephemeral,
    "podSpecPatch-new-container": in_patch_new_container,
    "podSpecPatch-new-init": in_patch_new_init,
    "podSpecPatch-agent": patching("agent"),
    "podSpecPatch-checkout": patching("checkout"),
    "podSpecPatch-container-0": patching("container-0"),
    "podSpecPatch-copy-agent": patching("copy-agent", "initContainers"),
    "podSpecPatch-imagepullcheck-0": patching("imagepullcheck-0", "initContainers", with_step=True),
    "sidecar-named-agent": sidecar_named("agent"),
    "sidecar-named-Cyrillic-agent": sidecar_named("\u0430gent"),
    "podSpec-named-checkout": step_named("checkout"),
    "podSpec-named-copy-agent": step_named("copy-agent"),
    "sidecar-named-imagepullcheck-0": sidecar_named("imagepullcheck-0"),
    "podSpecPatch-Agent-capitalised": patching("Agent"),
    "podSpecPatch-agent-trailing-space": patching("agent "),
    "podSpecPatch-agent-zero-width": patching("agent\u200b"),
    "podSpecPatch-retainKeys": patch_with_directive(
        {"$retainKeys": ["name", "image", "securityContext", "ports"]}
    ),
    "podSpecPatch-$patch-merge": patch_with_directive({"$patch": "merge"}),
    "podSpecPatch-setElementOrder": patch_set_element_order,
    "podSpecPatch-replace-pod": patch_replace_whole_pod,
    "podSpecPatch-replace-container-list": patch_replace_container_list,
}
"""Every route that puts fields on a container, by technique name."""

CORE_ROUTES = (
    "podSpec",
    "podSpec-init",
    "sidecar",
    "podSpec-ephemeral",
    "podSpecPatch-new-container",
    "podSpecPatch-agent",
    "podSpecPatch-copy-agent",
)
"""A smaller set for controls that are checked the same way in every container."""
