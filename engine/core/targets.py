"""Which containers a container-scoped rule applies to, and the roles that decide it.

Symbolic targets select by the role the build policies recorded when they added a container
(``append`` with ``role``), not by name, so a user's container called ``agent`` is never mistaken for
the stack's agent. Every container in the pod is reachable, whatever put it there:

* a container the stack's policies added has a role (``command``, ``sidecar``, ``agent``,
  ``checkout``, ``system`` for the stack's own init containers);
* a container without one came from the pipeline author another way (the step's ``initContainers``
  or ``ephemeralContainers``, or a ``podSpecPatch`` adding one): ``$step`` selects it together with the
  command containers and sidecars, and ``$all`` selects every container of every kind;
* a role follows its container's name through patches (:func:`keep_roles`): a patch that replaces or
  recreates the ``agent`` container (``$patch: replace``, ``$retainKeys``) leaves it the agent.

The role marker is an engine-reserved key, never taken from input (the job parser refuses it in the
plugin) and stripped from the result (:func:`strip_roles`).
"""

from __future__ import annotations

from engine.core.function_registry import ROLE_KEY
from engine.model.jsonvalue import JSON

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
"""Every list of containers a pod has, in the order targets visit them."""

_ROLE_TARGETS = {"$command": "command", "$sidecars": "sidecar", "$agent": "agent", "$checkout": "checkout"}
_STEP_ROLES = frozenset({"command", "sidecar", ""})
_LIST_TARGETS = {"$containers": "containers", "$init": "initContainers", "$ephemeral": "ephemeralContainers"}

Target = tuple[str, int]
"""(``containers`` | ``initContainers`` | ``ephemeralContainers``, index in that list)."""


def resolve_targets(pod_spec: JSON, target: str) -> list[Target]:
    """The targeted containers in pod order: regular, then init, then ephemeral containers."""
    if not isinstance(pod_spec, dict):
        return []
    if target in _LIST_TARGETS:
        key = _LIST_TARGETS[target]
        return [(key, i) for i in range(len(_items(pod_spec, key)))]
    found: list[Target] = []
    for key in CONTAINER_LISTS:
        for index, container in enumerate(_items(pod_spec, key)):
            if _selected(container, target):
                found.append((key, index))
    return found


def _selected(container: JSON, target: str) -> bool:
    if target == "$all":
        return True
    if not isinstance(container, dict):
        return target == "$step"
    if target in _ROLE_TARGETS:
        return container.get(ROLE_KEY) == _ROLE_TARGETS[target]
    if target == "$step":
        role = container.get(ROLE_KEY, "")
        return role in _STEP_ROLES or not isinstance(role, str)
    return container.get("name") == target


def _items(pod_spec: dict[str, JSON], key: str) -> list[JSON]:
    items = pod_spec.get(key)
    return items if isinstance(items, list) else []


def keep_roles(before: JSON, after: JSON) -> JSON:
    """``after`` (a pod spec) with the role of each container that lost it put back, matched by name
    within the same list; ``after`` itself when nothing was lost. Lists the rule did not touch (the
    same object before and after) are skipped without a look, which is nearly every rule."""
    if not isinstance(before, dict) or not isinstance(after, dict) or before is after:
        return after
    result = after
    for key in CONTAINER_LISTS:
        items = after.get(key)
        old_items = before.get(key)
        if items is old_items or not isinstance(items, list) or not isinstance(old_items, list):
            continue
        lost = [
            i
            for i, c in enumerate(items)
            if isinstance(c, dict) and ROLE_KEY not in c and isinstance(c.get("name"), str)
        ]
        if not lost:
            continue
        roles = {
            c["name"]: c[ROLE_KEY]
            for c in old_items
            if isinstance(c, dict) and ROLE_KEY in c and isinstance(c.get("name"), str)
        }
        lost = [i for i in lost if items[i]["name"] in roles]
        if not lost:
            continue
        if result is after:
            result = dict(after)
        restored = list(items)
        for i in lost:
            restored[i] = {**restored[i], ROLE_KEY: roles[restored[i]["name"]]}
        result[key] = restored
    return result


def keep_role(before: JSON, after: JSON) -> JSON:
    """A targeted container ``after`` a rule, with the role it had ``before`` if the rule dropped it
    (a ``$patch: replace`` of the whole container)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return after
    lost = ROLE_KEY in before and ROLE_KEY not in after
    if lost and after.get("name", before.get("name")) == before.get("name"):
        return {**after, ROLE_KEY: before[ROLE_KEY]}
    return after


def strip_roles(pod_spec: JSON) -> JSON:
    """The pod spec without the engine's role markers (they never leave the engine)."""
    if not isinstance(pod_spec, dict):
        return pod_spec
    result = pod_spec
    for key in CONTAINER_LISTS:
        items = pod_spec.get(key)
        if isinstance(items, list) and any(isinstance(c, dict) and ROLE_KEY in c for c in items):
            if result is pod_spec:
                result = dict(pod_spec)
            result[key] = [
                {k: v for k, v in c.items() if k != ROLE_KEY} if isinstance(c, dict) else c for c in items
            ]
    return result
