"""The Kubernetes API permissions the controller needs, written down as data.

Why data and not prose: the Helm chart's Role must grant exactly these rules (least privilege), and a
test (``tests/chart/test_rbac.py``) renders the chart and compares its Role with this tuple. When a
component starts using another verb or resource, its author adds it here; the chart test then fails
until the Role template grants it too, so the chart can neither lag behind nor grant more.

Who uses what (keep this list true when you change the code):

* batch ``jobs``
    * ``get``, ``list``, ``watch``: the Job informer (deduper, limiter and job watcher rebuild their
      state from it and react to Job changes).
    * ``create``: the scheduler creates one Job per admitted Buildkite job.
    * ``patch``: the job watcher and the completions watcher set ``activeDeadlineSeconds`` to stop a
      stalled Job or a pod whose sidecars outlive the agent.
    * ``delete`` (Stacks API mode): the pod watcher deletes the Job of a cancelled job whose pod is
      pending (evicting the pod alone would let the Job replace it), the job watcher one that never
      had a pod, and the scheduler a Job whose acquisition token Secret could not be written.
* core ``pods``
    * ``get``, ``list``, ``watch``: the Pod informer (pod watcher, completions watcher).
    * ``delete``: the pod watcher removes a pod that can never start (image pull failure) or whose
      build was cancelled while it was pending.
* core ``pods/eviction`` ``create``: the pod watcher evicts such pods where eviction is preferred
  (it honours PodDisruptionBudgets).
* core ``secrets`` ``get``, on that one Secret only (``resourceNames``): the controller reads the agent
  token from the Secret named by config key ``agent-token-secret`` when it must acquire and fail a
  Buildkite job itself. It reads no other Secret (its GraphQL token comes from its environment).
* core ``secrets`` ``create``, ``delete`` (Stacks API mode with ``job-acquisition-tokens``): the
  scheduler writes each Job's acquisition token Secret, and deletes it once the Job has finished.
  RBAC cannot limit ``create`` by name; the names are ``buildkite-jat-<job uuid>``.
* core ``events`` ``list``: the job watcher quotes a stalled Job's events in the failure message it
  sends to Buildkite.
* core ``podtemplates`` ``get``: with the upstream-v0.47 profile, the scheduler reads the PodTemplate a
  step names (``podTemplate``) and hands its spec to the engine (upstream's RBAC grants the same).
"""

from __future__ import annotations

from dataclasses import dataclass

CORE_API_GROUP = ""


@dataclass(frozen=True)
class Permission:
    """One RBAC rule: ``verbs`` on ``resource`` (``"pods/eviction"`` for a subresource) in ``api_group``.

    ``api_group`` is ``""`` for the core group, exactly as RBAC ``apiGroups`` spells it.
    """

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    """Only these objects (RBAC ``resourceNames``); empty means every object of the resource."""


AGENT_TOKEN_SECRET = "<agent-token-secret>"
"""Stands for the Secret named by config ``agent-token-secret`` in :data:`CONTROLLER_PERMISSIONS`."""

CONTROLLER_PERMISSIONS: tuple[Permission, ...] = (
    Permission("batch", "jobs", ("get", "list", "watch", "create", "patch")),
    Permission(CORE_API_GROUP, "pods", ("get", "list", "watch", "delete")),
    Permission(CORE_API_GROUP, "pods/eviction", ("create",)),
    Permission(CORE_API_GROUP, "secrets", ("get",), (AGENT_TOKEN_SECRET,)),
    Permission(CORE_API_GROUP, "events", ("list",)),
    Permission(CORE_API_GROUP, "podtemplates", ("get",)),
)
"""What the controller needs; the chart's Role grants exactly ``controller_permissions(<its
agent-token-secret>)``: nothing the controller lacks, nothing more."""


STACKS_PERMISSIONS: tuple[Permission, ...] = (Permission("batch", "jobs", ("delete",)),)
"""What the Stacks API mode needs on top of :data:`CONTROLLER_PERMISSIONS`."""
ACQUISITION_TOKEN_PERMISSIONS: tuple[Permission, ...] = (
    Permission(CORE_API_GROUP, "secrets", ("create", "delete")),
)
"""What job acquisition tokens need on top (their Secrets)."""


def controller_permissions(
    agent_token_secret: str, *, stacks: bool = False, acquisition_tokens: bool = False
) -> tuple[Permission, ...]:
    """:data:`CONTROLLER_PERMISSIONS` for a controller whose ``agent-token-secret`` is this Secret, plus
    what its mode needs (``stacks``: the Stacks API mode; ``acquisition_tokens``: with job acquisition
    tokens)."""
    rules = CONTROLLER_PERMISSIONS
    if stacks:
        rules += STACKS_PERMISSIONS
    if stacks and acquisition_tokens:
        rules += ACQUISITION_TOKEN_PERMISSIONS
    return tuple(
        Permission(
            p.api_group,
            p.resource,
            p.verbs,
            tuple(agent_token_secret if name == AGENT_TOKEN_SECRET else name for name in p.resource_names),
        )
        for p in rules
    )
