"""pytest fixtures for tests that need the real control plane (register via ``pytest_plugins``).

One cluster per test session (starting takes ~5 s and ~450 MB); each test gets its own namespace so
tests cannot see each other's objects. Tests using these fixtures are marked ``cluster``
automatically, so ``-m "not cluster"`` deselects them.

Where the binaries are missing the tests are skipped, except with ``REQUIRE_KUBE=1`` (CI), where a
missing binary must fail the run instead of silently testing less.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import (
    ClusterStartError,
    KubeBinaries,
    KubeBinariesMissingError,
    KubeCluster,
    locate_binaries,
)

CLUSTER_FIXTURES = frozenset({"kube_cluster", "kube_namespace", "kube_api"})
_NAMESPACE_MAX = 63
_TEST_NAMESPACE_LABEL = "agent-stack-policy.test/harness"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Add the ``cluster`` marker to every test that (directly or through other fixtures) uses one."""
    for item in items:
        if CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def _kube_required() -> bool:
    return os.environ.get("REQUIRE_KUBE", "") == "1"


def binaries_or_skip() -> KubeBinaries:
    """The cluster binaries; skips the calling test if they are missing, or fails it under REQUIRE_KUBE=1."""
    try:
        return locate_binaries()
    except KubeBinariesMissingError as missing:
        if _kube_required():
            pytest.fail(f"REQUIRE_KUBE=1 but {missing}", pytrace=False)
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """A started cluster shared by the whole session; stopped when the session ends."""
    cluster = KubeCluster(binaries_or_skip())
    try:
        cluster.start()
    except ClusterStartError as error:
        pytest.fail(f"test cluster did not start: {error}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kube_api(kube_cluster: KubeCluster) -> Iterator[k8s_client.ApiClient]:
    """An admin ``ApiClient`` for the session's cluster, closed after the test."""
    with contextlib.closing(kube_cluster.api_client()) as api:
        yield api


def namespace_name_for(test_name: str) -> str:
    """A valid, unique namespace name (DNS label) that still says which test made it."""
    suffix = secrets.token_hex(3)
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-") or "test"
    slug = slug[: _NAMESPACE_MAX - len(suffix) - 1].rstrip("-")
    return f"{slug}-{suffix}"


@pytest.fixture
def kube_namespace(request: pytest.FixtureRequest, kube_api: k8s_client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test; deleted afterwards (in the background, not awaited)."""
    core_v1 = k8s_client.CoreV1Api(kube_api)
    name = namespace_name_for(request.node.name)
    core_v1.create_namespace(
        k8s_client.V1Namespace(
            metadata=k8s_client.V1ObjectMeta(name=name, labels={_TEST_NAMESPACE_LABEL: "true"})
        )
    )
    try:
        yield name
    finally:
        try:
            core_v1.delete_namespace(name, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise
