"""A v0.47 install's values file renders with this chart, and the controller takes the config it renders.

``examples/upstream-v0.47/values.yaml`` has the shape of an upstream v0.47 install (no GraphQL token,
``config.queue``, the HEAD chart defaults) plus ``config.profile``. Until the Stacks API mode (which
another part of this project adds) is in the chart, it renders in the GraphQL mode: the test supplies
the GraphQL token and organization that mode needs, and leaves out the Stacks mode's keys the config
model does not know yet (``tests/unit/test_upstream_v047_example.py`` explains; once they exist, the
file is rendered exactly as it is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.model.config import parse_config
from engine.policy.loader import load_policies
from engine.predeploy import check_manifests
from tests.chart import GRAPHQL_TOKEN, ORG, one_of_kind, render, rendered_config, template_result
from tests.unit.test_upstream_v047_example import loadable

VALUES = Path(__file__).resolve().parents[2] / "examples" / "upstream-v0.47" / "values.yaml"


def _render(tmp_path: Path) -> list[dict[str, Any]]:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    values["config"] = loadable(values["config"])
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values), encoding="utf-8")
    return render(
        (str(file),),
        ("--set", f"graphqlToken={GRAPHQL_TOKEN}", "--set", f"config.org={ORG}"),
    )


def test_the_v047_values_render_and_the_controller_takes_their_config(tmp_path: Path) -> None:
    manifests = _render(tmp_path)
    config = parse_config(dict(rendered_config(manifests)), "config.yaml")
    assert (config.profile, config.job_prefix, config.kubernetes_version) == ("upstream-v0.47", "ci-", "1.29")
    assert config.agent_config is not None
    assert config.agent_config.container_start_timeout == 120.0
    deployment = one_of_kind(manifests, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in container["env"]


def test_the_role_lets_the_controller_read_pod_templates(tmp_path: Path) -> None:
    rules = one_of_kind(_render(tmp_path), "Role")["rules"]
    assert {"apiGroups": [""], "resources": ["podtemplates"], "verbs": ["get"]} in rules


def test_the_pre_deploy_check_loads_the_profile_the_config_selects(tmp_path: Path) -> None:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    values["config"] = loadable(values["config"])
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values), encoding="utf-8")
    result = template_result(
        (str(file),), ("--set", f"graphqlToken={GRAPHQL_TOKEN}", "--set", f"config.org={ORG}")
    )
    assert result.returncode == 0, result.stderr
    report = check_manifests(result.stdout, "rendered")
    assert report.ok, report.problems
    [checked] = report.checked
    default_count = len(load_policies([]))
    assert f"; {default_count + 2} policies load" in checked  # the profile adds two policies
