"""Which containers a container-scoped rule applies to.

Symbolic targets select by the role the build policies recorded when they added a container
(``append`` with ``role``), not by name, so a user's container called ``agent`` is never mistaken for
the stack's agent. A plain name selects regular and init containers with that name.
"""

from __future__ import annotations

from engine.core.function_registry import ROLE_KEY
from engine.model.jsonvalue import JSON

_ROLE_TARGETS = {"$command": "command", "$sidecars": "sidecar", "$agent": "agent", "$checkout": "checkout"}

Target = tuple[str, int]
"""(``containers`` | ``initContainers``, index in that list)."""


def resolve_targets(pod_spec: JSON, target: str) -> list[Target]:
    """The targeted containers in pod order (regular containers before init containers)."""
    if not isinstance(pod_spec, dict):
        return []
    containers = pod_spec.get("containers") or []
    init_containers = pod_spec.get("initContainers") or []
    if target in _ROLE_TARGETS:
        role = _ROLE_TARGETS[target]
        return [
            ("containers", i)
            for i, c in enumerate(containers)
            if isinstance(c, dict) and c.get(ROLE_KEY) == role
        ]
    if target == "$containers":
        return [("containers", i) for i in range(len(containers))]
    if target == "$init":
        return [("initContainers", i) for i in range(len(init_containers))]
    found = [
        ("containers", i) for i, c in enumerate(containers) if isinstance(c, dict) and c.get("name") == target
    ]
    found += [
        ("initContainers", i)
        for i, c in enumerate(init_containers)
        if isinstance(c, dict) and c.get("name") == target
    ]
    return found


def strip_roles(pod_spec: JSON) -> JSON:
    """The pod spec without the engine's role markers (they never leave the engine)."""
    if not isinstance(pod_spec, dict):
        return pod_spec
    result = pod_spec
    for key in ("containers", "initContainers", "ephemeralContainers"):
        items = pod_spec.get(key)
        if isinstance(items, list) and any(isinstance(c, dict) and ROLE_KEY in c for c in items):
            if result is pod_spec:
                result = dict(pod_spec)
            result[key] = [
                {k: v for k, v in c.items() if k != ROLE_KEY} if isinstance(c, dict) else c for c in items
            ]
    return result
