"""Integration tests of the Kubernetes adapters and the watchers against the real control plane.

The helpers below are shared by the test modules of this package: waiting for asynchronous effects,
and making the API server refuse pod creation (a ResourceQuota of zero pods), which is how these tests
get a Job that never has a pod now that the harness disables the ServiceAccount admission plugin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

WAIT_SECONDS = 20.0


async def eventually(
    what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = WAIT_SECONDS, interval: float = 0.1
) -> T:
    """Await ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def block_pod_creation(core_v1: Any, namespace: str) -> None:
    """Make the API server refuse every new pod in ``namespace`` (``exceeded quota``).

    The harness runs no resource-quota controller, so the quota's status is written here, and the
    quota admission plugin sees it once its informer catches up: probe until a pod is refused.
    """
    core_v1.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    )
    core_v1.patch_namespaced_resource_quota_status(
        "no-pods", namespace, {"status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}}
    )
    probe = {
        "metadata": {"name": "quota-probe"},
        "spec": {"containers": [{"name": "probe", "image": "busybox:1.36"}]},
    }
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            core_v1.create_namespaced_pod(namespace, probe)
        except ApiException as error:
            if error.status == 403 and "exceeded quota" in str(error.body):
                return
            raise
        core_v1.delete_namespaced_pod("quota-probe", namespace, grace_period_seconds=0)
        time.sleep(0.1)
    raise AssertionError("the ResourceQuota never started refusing pods")
