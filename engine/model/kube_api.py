"""The Kubernetes API versions the engine can check Jobs against, and their generated tables.

Each supported version has a table generated from that version's own OpenAPI definitions
(``scripts/gen_kube_api.py``). Supporting another version means generating its table and adding it
here; the config key ``kubernetes-version`` accepts exactly these.
"""

from __future__ import annotations

from types import ModuleType

from engine.model import kube_api_v1_20

TABLES: dict[str, ModuleType] = {"1.20": kube_api_v1_20}
KUBERNETES_VERSIONS: tuple[str, ...] = tuple(TABLES)
DEFAULT_KUBERNETES_VERSION = "1.20"
