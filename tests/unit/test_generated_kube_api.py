"""engine/model/kube_api_v*.py are what scripts/gen_kube_api.py makes of each version's definitions.

1.20 comes from the v1.20.2 OpenAPI spec in the Kubernetes source tree scripts/build-kube.sh unpacks
into its cache; without it that check is skipped, except under REQUIRE_KUBE=1 (CI builds that tree),
where it must run. 1.29 and 1.34 come from the definitions the kubernetes-validate package ships
(installed by scripts/install.sh), so they are always checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.model import kube_api
from engine.model.kube_api import TABLES, union_structs, version_key

ROOT = Path(__file__).resolve().parents[2]
MISSING_SOURCE = 2
SCALARS = {"string", "bytes", "boolean", "int32", "int64", "number", "quantity", "int-or-string", "time"}
SCALARS.add("any")


@pytest.mark.parametrize("version", sorted(TABLES))
def test_the_checked_in_table_matches_the_generator(version: str) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_kube_api.py"), "--check", "--version", version],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if run.returncode == MISSING_SOURCE and version == "1.20" and os.environ.get("REQUIRE_KUBE") != "1":
        pytest.skip(run.stderr.strip())
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("version", sorted(TABLES))
def test_the_table_reaches_everything_a_job_refers_to(version: str) -> None:
    table = TABLES[version]
    structs = table.STRUCTS
    assert table.ROOT == "Job"
    assert table.VERSION.startswith(f"v{version}.")
    assert "status" not in structs["Job"]
    for name, fields in structs.items():
        for field, expression in fields.items():
            inner = expression.strip("[]{}")
            assert inner in structs or inner in SCALARS, f"{version} {name}.{field}: {expression}"
    assert table.REQUIRED["Container"] == ("name",)


def test_the_versions_differ_where_the_profiles_need_them_to() -> None:
    """Native sidecars (Container.restartPolicy) from 1.29, pod-level resources from 1.34."""
    assert "restartPolicy" not in TABLES["1.20"].STRUCTS["Container"]
    assert TABLES["1.29"].STRUCTS["Container"]["restartPolicy"] == "string"
    assert "resources" not in TABLES["1.29"].STRUCTS["PodSpec"]
    assert TABLES["1.34"].STRUCTS["PodSpec"]["resources"] == "ResourceRequirements"


def test_the_union_has_every_field_of_every_version() -> None:
    union = union_structs()
    for table in TABLES.values():
        for name, fields in table.STRUCTS.items():
            assert set(fields) <= set(union[name])
    assert tuple(sorted(TABLES, key=version_key)) == kube_api.KUBERNETES_VERSIONS
