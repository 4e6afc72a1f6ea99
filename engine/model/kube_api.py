"""The Kubernetes API versions the engine can check Jobs against, and their generated tables.

Each supported version has a table generated from that version's own OpenAPI definitions
(``scripts/gen_kube_api.py``): 1.20 from the v1.20.2 source tree the test API server is built from,
1.29 and 1.34 from the definitions the ``kubernetes-validate`` package ships. Supporting another
version means generating its table and adding it here; the config key ``kubernetes-version`` accepts
exactly these. 1.29 is the first with native sidecars (init containers with ``restartPolicy:
Always``), 1.34 the first with pod-level ``resources`` on by default.
"""

from __future__ import annotations

from types import ModuleType

from engine.model import kube_api_v1_20, kube_api_v1_29, kube_api_v1_34

TABLES: dict[str, ModuleType] = {"1.20": kube_api_v1_20, "1.29": kube_api_v1_29, "1.34": kube_api_v1_34}
KUBERNETES_VERSIONS: tuple[str, ...] = tuple(TABLES)
DEFAULT_KUBERNETES_VERSION = "1.20"


def version_key(version: str) -> tuple[int, int]:
    """``"1.29"`` -> ``(1, 29)``, for comparing versions."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def union_structs() -> dict[str, dict[str, str]]:
    """Every struct with every field any supported version has (the newest version's type where they
    differ): what a policy may spell out, whatever version it will run against. The built Job is
    then checked against the configured version exactly."""
    merged: dict[str, dict[str, str]] = {}
    for version in sorted(TABLES, key=version_key):
        for name, fields in TABLES[version].STRUCTS.items():
            merged.setdefault(name, {}).update(fields)
    return merged
