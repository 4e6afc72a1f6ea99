"""The chart refuses what the controller refuses: ``helm template`` fails, naming the offending key,
for every config the controller's config model would refuse, and renders every config it accepts.

Each refused case is also checked against the model itself (the file the chart would render must
really be one the controller refuses), so the two can only agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.model.config import ConfigError, resolve_config
from engine.model.policy import API_VERSION, NAME_PATTERN
from tests.chart import CHART_DIR, REPO_ROOT, TOKENS, render, rendered_config, template_result

EXAMPLES = REPO_ROOT / "examples" / "config"
ONLY_TOKENS = TOKENS[:4]
"""The tokens without ``config.org``: these tests give the whole config themselves."""
CHART_INJECTED = {"agent-token-secret": "ci-agent-stack-k8s-secrets", "namespace": "buildkite", "id": "x"}

# Upstream's docs/container_resource_limits.md snippet, indented as published: `requests`/`limits`
# (or `resources`) end up beside initContainers instead of inside the copy-agent container.
UPSTREAM_MISINDENTED = [
    """
config:
  org: my-org
  pod-spec-patch:
    initContainers:
    - name: copy-agent
    requests:
      cpu: 100m
      memory: 50Mi
    limits:
      memory: 100Mi
    containers:
    - name: agent
      resources:
        requests: {cpu: 100m, memory: 50Mi}
""",
    """
config:
  org: my-org
  pod-spec-patch:
    initContainers:
    - name: copy-agent
    resources:
      requests: {cpu: 100m, memory: 50Mi}
      limits: {memory: 100Mi}
""",
]


def controller_refuses(config: dict[str, Any]) -> bool:
    """Whether the controller would refuse the file the chart renders for ``config`` (with the token
    the chart's Secret puts in its environment)."""
    try:
        parsed = resolve_config({**CHART_INJECTED, **config}, {"BUILDKITE_TOKEN": "t"}, {}, "config.yaml")
    except ConfigError:
        return True
    return bool(parsed.missing_required_for_controller())


def helm_error(values: str, tmp_path: Path) -> str:
    file = tmp_path / "values.yaml"
    file.write_text(values, encoding="utf-8")
    result = template_result([], (*ONLY_TOKENS, "-f", str(file)))
    assert result.returncode != 0, "helm rendered values the controller refuses"
    return result.stderr


REFUSED = [
    ("missing-org", "config: {prometheus-port: 9216}", "at '/config': missing property 'org'"),
    ("typo", "config: {org: o, max-inflight: 10}", "additional properties 'max-inflight' not allowed"),
    ("nested-typo", "config: {org: o, agent-config: {no-htp2: true}}", "additional properties 'no-htp2'"),
    ("type", "config: {org: o, max-in-flight: lots}", "at '/config/max-in-flight'"),
    ("negative", "config: {org: o, max-in-flight: -1}", "at '/config/max-in-flight'"),
    ("duration", "config: {org: o, job-ttl: 5 minutes}", "at '/config/job-ttl'"),
    ("negative-duration", "config: {org: o, job-ttl: -5m}", "at '/config/job-ttl'"),
    ("interposer", "config: {org: o, default-command-params: {interposer: shell}}", "interposer"),
    ("no-queue-tag", "config: {org: o, tags: [os=linux]}", "at '/config/tags'"),
    ("tag-not-key-value", "config: {org: o, tags: [queue=a, linux]}", "at '/config/tags"),
    ("volume-without-name", "config: {org: o, workspace-volume: {emptyDir: {}}}", "missing property 'name'"),
    (
        "pod-spec-patch-command",
        "config: {org: o, pod-spec-patch: {containers: [{name: c, command: [make]}]}}",
        "at '/config/pod-spec-patch/containers/0/command'",
    ),
    (
        "pod-spec-patch-typo",
        "config: {org: o, pod-spec-patch: {containers: [{name: c, imagee: x}]}}",
        "additional properties 'imagee' not allowed",
    ),
    ("kubernetes-version", "config: {org: o, kubernetes-version: '1.99'}", "at '/config/kubernetes-version'"),
    (
        "label-value-type",
        "config: {org: o, default-metadata: {labels: {team: 1}}}",
        "default-metadata/labels/team",
    ),
    ("profiler-address", "config: {org: o, profiler-address: localhost}", "at '/config/profiler-address'"),
    ("id", "config: {org: o, id: has spaces}", "at '/config/id'"),
    *[
        (f"upstream-misindented-{i}", text, "at '/config/pod-spec-patch': additional properties")
        for i, text in enumerate(UPSTREAM_MISINDENTED)
    ],
]


@pytest.mark.parametrize(("name", "values", "expected"), REFUSED, ids=[case[0] for case in REFUSED])
def test_a_config_the_controller_refuses_fails_helm_template_naming_the_key(
    name: str, values: str, expected: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(values)["config"]
    assert controller_refuses(config), f"{name}: the controller accepts this config"
    error = helm_error(values, tmp_path)
    assert "don't meet the specifications of the schema" in error
    assert expected in error, error


ACCEPTED = [
    ("minimal", {"org": "o"}),
    ("string-forms", {"org": "o", "debug": "true", "max-in-flight": "10", "tags": "queue=a,os=linux"}),
    ("durations-as-seconds", {"org": "o", "job-ttl": 300, "poll-interval": 2.5}),
    ("kubernetes-version", {"org": "o", "kubernetes-version": "v1.20.2"}),
    (
        "kubernetes-objects",
        {
            "org": "o",
            "pod-spec-patch": {
                "nodeSelector": {"pool": "ci"},
                "containers": [{"name": "container-0", "resources": {"requests": {"cpu": "500m"}}}],
            },
            "default-checkout-params": {"envFrom": [{"prefix": "GIT_", "secretRef": {"name": "git"}}]},
        },
    ),
    *[
        (path.stem, {"org": "o", **yaml.safe_load(path.read_text(encoding="utf-8"))})
        for path in sorted(EXAMPLES.glob("*.yaml"))
    ],
]


@pytest.mark.parametrize(("name", "config"), ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_a_config_the_controller_accepts_renders(name: str, config: dict[str, Any]) -> None:
    assert not controller_refuses(config), f"{name}: the controller refuses this config"
    manifests = render([], (*ONLY_TOKENS, "--set-json", f"config={json.dumps(config)}"))
    assert rendered_config(manifests)["org"] == config["org"]


@pytest.mark.parametrize(
    ("form", "policy", "expected"),
    [
        (
            "string",
            "apiVersion: agent-stack-policy/v1\nkind: Policy\nmetadata: {name: p}\nspec: {phase: build}\n",
            "policies.p.yaml, document 1: apiVersion must be policy.agent-stack.dev/v1,"
            ' got "agent-stack-policy/v1"',
        ),
        (
            "string",
            f"apiVersion: {API_VERSION}\nkind: Policy\nmetadata: {{name: ok}}\nspec: {{phase: build}}\n---\n"
            f"apiVersion: {API_VERSION}\nkind: Polcy\nmetadata: {{name: p}}\n",
            'policies.p.yaml, document 2: kind must be Policy, got "Polcy"',
        ),
        (
            "string",
            f"apiVersion: {API_VERSION}\nkind: Policy\nmetadata: {{name: Not_Valid}}\n",
            "policies.p.yaml, document 1: metadata.name must be lowercase",
        ),
        ("string", "# nothing but a comment\n", "policies.p.yaml: the file holds no policy document"),
        (
            "object",
            {"apiVersion": "v1", "kind": "Policy", "metadata": {"name": "p"}, "spec": {}},
            "at '/policies/p.yaml/apiVersion': value must be 'policy.agent-stack.dev/v1'",
        ),
        (
            "list",
            [{"apiVersion": API_VERSION, "kind": "Policy", "metadata": {"name": "x_y"}, "spec": {}}],
            "at '/policies/p.yaml/0/metadata/name'",
        ),
    ],
)
def test_inline_policies_need_the_policy_api_version_kind_and_a_valid_name(
    form: str, policy: Any, expected: str
) -> None:
    result = template_result(
        [], (*TOKENS, "--set", "config.org=o", "--set-json", f"policies={json.dumps({'p.yaml': policy})}")
    )
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr


def test_the_template_check_uses_the_engines_api_version_and_name_pattern() -> None:
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    assert f'$apiVersion := "{API_VERSION}"' in helpers
    assert f'$namePattern := "{NAME_PATTERN}"' in helpers


def test_the_generated_parts_of_the_schema_are_current() -> None:
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_chart_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stderr
