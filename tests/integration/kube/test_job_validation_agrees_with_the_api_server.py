"""The engine's Job check and a real v1.20 API server agree: what the engine flags, the server refuses
(422) or silently prunes; what the engine admits, the server stores unchanged.

Every mutation of the unit tests' table is POSTed as raw JSON with server-side dry-run to the test API
server (the Python client validates bodies itself, so it would refuse some before the server saw them).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.harness.cluster import KubeCluster
from tests.integration.test_golden_server_validation import differences
from tests.unit.engine.test_kube_validation import BASE, CASES, mutated, problems

# The URL names the namespace, so a body naming another one is refused for that reason alone.
NOT_COMPARABLE = {"metadata/namespace"}
COMPARED = [case for case in CASES if case[0] not in NOT_COMPARABLE]


def server_verdict(cluster: KubeCluster, namespace: str, manifest: dict[str, Any]) -> str:
    """``refused: ...``, ``pruned: ...`` or ``accepted``."""
    body = json.loads(json.dumps(manifest))
    body["metadata"]["namespace"] = namespace
    request = urllib.request.Request(
        f"{cluster.server}/apis/batch/v1/namespaces/{namespace}/jobs?dryRun=All",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {cluster.token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(cluster.ca_cert_path))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            stored = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code in (400, 422):
            return f"refused: {error.read().decode()}"
        raise
    dropped = differences(body, stored)
    return f"pruned: {dropped}" if dropped else "accepted"


def test_the_base_job_is_valid_for_both(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    assert problems(BASE) == []
    assert server_verdict(kube_cluster, kube_namespace, BASE) == "accepted"


@pytest.mark.parametrize(
    ("change", "value", "expected"), COMPARED, ids=[f"{c}={v!r}" for c, v, _ in COMPARED]
)
def test_what_the_engine_flags_the_server_refuses_or_prunes(
    change: str, value: Any, expected: str, kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    manifest = mutated(change, value)
    assert problems(manifest) != []
    verdict = server_verdict(kube_cluster, kube_namespace, manifest)
    assert verdict != "accepted", f"the engine refuses {change}={value!r} but the server accepts it"
