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
* core ``pods``
    * ``get``, ``list``, ``watch``: the Pod informer (pod watcher, completions watcher).
    * ``delete``: the pod watcher removes a pod that can never start (image pull failure) or whose
      build was cancelled while it was pending.
* core ``pods/eviction`` ``create``: the pod watcher evicts such pods where eviction is preferred
  (it honours PodDisruptionBudgets).
* core ``secrets`` ``get``: the controller reads the agent token from the Secret named by config key
  ``agent-token-secret`` when it must acquire and fail a Buildkite job itself.
* core ``events`` ``list``: the job watcher quotes a stalled Job's events in the failure message it
  sends to Buildkite.
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


CONTROLLER_PERMISSIONS: tuple[Permission, ...] = (
    Permission("batch", "jobs", ("get", "list", "watch", "create", "patch")),
    Permission(CORE_API_GROUP, "pods", ("get", "list", "watch", "delete")),
    Permission(CORE_API_GROUP, "pods/eviction", ("create",)),
    Permission(CORE_API_GROUP, "secrets", ("get",)),
    Permission(CORE_API_GROUP, "events", ("list",)),
)
