"""A v0.47 install's values file renders with this chart, and the controller takes the config it renders.

``examples/upstream-v0.47/values.yaml`` has the shape of an upstream v0.47 install (no GraphQL token,
``config.queue``, the HEAD chart defaults) plus ``config.profile``. It is rendered exactly as it is:
the agent token alone selects the Stacks API mode, as v0.47 runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.model.config import parse_config
from engine.policy.loader import load_policies
from engine.predeploy import check_manifests
from tests.chart import one_of_kind, render, rendered_config, template_result

VALUES = Path(__file__).resolve().parents[2] / "examples" / "upstream-v0.47" / "values.yaml"


def _render() -> list[dict[str, Any]]:
    return render((str(VALUES),), ())


def test_the_v047_values_render_and_the_controller_takes_their_config(tmp_path: Path) -> None:
    manifests = _render()
    config = parse_config(dict(rendered_config(manifests)), "config.yaml")
    assert (config.profile, config.job_prefix, config.kubernetes_version) == ("upstream-v0.47", "ci-", "1.29")
    assert (config.mode().name, config.queue, config.reservation_expiry_seconds) == (
        "stacks",
        "kubernetes",
        900,
    )
    assert config.agent_config is not None
    assert config.agent_config.container_start_timeout == 120.0
    deployment = one_of_kind(manifests, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in container["env"]


def test_the_role_lets_the_controller_read_pod_templates() -> None:
    rules = one_of_kind(_render(), "Role")["rules"]
    assert {"apiGroups": [""], "resources": ["podtemplates"], "verbs": ["get"]} in rules


def test_the_pre_deploy_check_loads_the_profile_the_config_selects() -> None:
    result = template_result((str(VALUES),), ())
    assert result.returncode == 0, result.stderr
    report = check_manifests(result.stdout, "rendered")
    assert report.ok, report.problems
    [checked] = report.checked
    default_count = len(load_policies([]))
    assert f"; {default_count + 2} policies load" in checked  # the profile adds two policies
