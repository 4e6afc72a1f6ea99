"""Every golden Job of the upstream-v0.47 profile is one Kubernetes accepts.

The test cluster's API server is v1.20 (the one Debian's source package builds). A golden Job that uses
nothing newer (checked with the engine's own v1.20 table) is created there with server-side dry-run,
which must accept it without dropping or changing anything, as for the default profile's goldens. A Job
that needs a newer API is checked statically, strictly (unknown fields refused), against the published
OpenAPI schema of its ``kubernetes-version`` (the kubernetes-validate package): native sidecars
(``restartPolicy`` on an init container) need 1.29, pod-level ``resources`` 1.34. Which fixture is
checked how is listed by :func:`test_the_split_is_the_documented_one`.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s_client

from engine.core.kube_validation import validate_job
from tests.golden import GoldenFixture, v047_fixtures
from tests.integration.test_golden_server_validation import check_accepted

ADMITTED = [fixture for fixture in v047_fixtures() if not fixture.is_denial]
NEWER_API = {
    "02-per-container-summary": "1.29",
    "05-pod-resource-class": "1.34",
    "15-native-sidecars": "1.29",
}
"""The fixtures a v1.20 server cannot take, and the version each is checked against instead."""


def _kubernetes_version(fixture: GoldenFixture) -> str:
    assert fixture.config is not None
    config = yaml.safe_load(fixture.config.read_text(encoding="utf-8"))
    return str(config.get("kubernetes-version", "1.29"))


def _fits_1_20(manifest: dict[str, Any]) -> bool:
    return validate_job(manifest, "1.20") == []


def test_the_split_is_the_documented_one() -> None:
    newer = {f.name: _kubernetes_version(f) for f in ADMITTED if not _fits_1_20(f.expected_manifest())}
    assert newer == NEWER_API


SERVER = [f for f in ADMITTED if f.name not in NEWER_API]
STATIC = [f for f in ADMITTED if f.name in NEWER_API]


@pytest.mark.parametrize("fixture", SERVER, ids=[f.name for f in SERVER])
def test_expected_job_is_accepted_by_the_api_server(
    fixture: GoldenFixture, kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    check_accepted(fixture, kube_api, kube_namespace)


@pytest.mark.parametrize("fixture", STATIC, ids=[f.name for f in STATIC])
def test_expected_job_is_valid_for_its_newer_kubernetes_version(fixture: GoldenFixture) -> None:
    version = NEWER_API[fixture.name]
    manifest = fixture.expected_manifest()
    kubernetes_validate.validate(manifest, f"{version}.0", strict=True)
    assert validate_job(manifest, version) == []


def test_the_static_check_can_fail() -> None:
    """A native sidecar is an unknown field to the strict schema of 1.27 (the field came in 1.28, alpha)."""
    manifest = next(f for f in STATIC if f.name == "15-native-sidecars").expected_manifest()
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, "1.27.0", strict=True)
