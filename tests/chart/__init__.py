"""Helpers for the Helm chart tests: locate helm/kubectl, render the chart, pick objects out of it.

The binaries come from ``scripts/install-helm.sh`` (cached outside the repo). Without them the tests
skip, except under ``REQUIRE_KUBE=1`` (CI), where a missing binary fails the run instead of silently
testing less.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "agent-stack-k8s"
VALUES_DIR = Path(__file__).resolve().parent / "values"
# The kube-apiserver the tests dry-run against is v1.20; rendering for it keeps Capabilities honest.
KUBE_VERSION = "1.20.2"
RELEASE = "ci"
RELEASE_NAMESPACE = "buildkite"
POLICIES_DIR = "/etc/agent-stack/policies"
AGENT_TOKEN = "agent-token-value"
GRAPHQL_TOKEN = "graphql-token-value"
ORG = "test-org"
TOKENS = (
    "--set",
    f"agentToken={AGENT_TOKEN}",
    "--set",
    f"graphqlToken={GRAPHQL_TOKEN}",
    "--set",
    f"config.org={ORG}",
)
"""The values every install needs: both tokens and the Buildkite organization (``config.org``)."""
HELM_TIMEOUT_SECONDS = 60

Manifest = dict[str, Any]


def tool_cache_dir() -> Path:
    """Where ``scripts/install-helm.sh`` puts helm and kubectl."""
    root = os.environ.get("AGENT_STACK_CACHE") or str(Path.home() / ".cache" / "agent-stack-policy")
    return Path(root) / "bin"


def tool_or_skip(name: str) -> Path:
    """The cached binary ``name``; skips the test if it is missing, or fails it under REQUIRE_KUBE=1."""
    path = tool_cache_dir() / name
    if os.access(path, os.X_OK):
        return path
    message = f"{path} is missing; run scripts/install-helm.sh"
    if os.environ.get("REQUIRE_KUBE", "") == "1":
        pytest.fail(f"REQUIRE_KUBE=1 but {message}", pytrace=False)
    pytest.skip(message)


def values_file(name: str) -> Path:
    """A values file from ``tests/chart/values``."""
    return VALUES_DIR / name


@dataclass(frozen=True)
class HelmResult:
    """What one helm invocation printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


def run_helm(args: Sequence[str]) -> HelmResult:
    """Run helm with ``args``; never raises on a non-zero exit (callers assert on it)."""
    helm = tool_or_skip("helm")
    completed = subprocess.run(
        [str(helm), *args],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_SECONDS,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/helm-cache", "HELM_CONFIG_HOME": "/tmp/helm-config"},
    )
    return HelmResult(completed.returncode, completed.stdout, completed.stderr)


def value_args(values_files: Iterable[str] = (), set_args: Sequence[str] = TOKENS) -> list[str]:
    """``-f`` arguments for files in ``tests/chart/values`` followed by ``set_args``."""
    args: list[str] = []
    for name in values_files:
        args += ["-f", str(values_file(name))]
    return [*args, *set_args]


def template_result(
    values_files: Iterable[str] = (),
    set_args: Sequence[str] = TOKENS,
    *,
    namespace: str = RELEASE_NAMESPACE,
    release: str = RELEASE,
) -> HelmResult:
    """``helm template`` of the chart, rendered for the test cluster's Kubernetes version."""
    return run_helm(
        [
            "template",
            release,
            str(CHART_DIR),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            *value_args(values_files, set_args),
        ]
    )


def render(
    values_files: Iterable[str] = (),
    set_args: Sequence[str] = TOKENS,
    *,
    namespace: str = RELEASE_NAMESPACE,
    release: str = RELEASE,
) -> list[Manifest]:
    """The chart's objects for these values; fails the test with helm's message if rendering fails."""
    result = template_result(values_files, set_args, namespace=namespace, release=release)
    if result.returncode != 0:
        pytest.fail(f"helm template failed:\n{result.stderr}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def template_error(values_files: Iterable[str] = (), set_args: Sequence[str] = TOKENS) -> str:
    """Helm's error output for values it must refuse; fails the test if helm renders them."""
    result = template_result(values_files, set_args)
    if result.returncode == 0:
        pytest.fail("helm template accepted values it should have refused", pytrace=False)
    return result.stderr


def objects_of_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    """Every rendered object of ``kind``."""
    return [m for m in manifests if m.get("kind") == kind]


def one_of_kind(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single rendered object of ``kind`` (named ``name`` if given); fails if there is not exactly one."""
    found = [m for m in objects_of_kind(manifests, kind) if name is None or m["metadata"]["name"] == name]
    if len(found) != 1:
        names = [m["metadata"]["name"] for m in objects_of_kind(manifests, kind)]
        pytest.fail(f"expected one {kind} named {name or '*'}, found {names}", pytrace=False)
    return found[0]


def controller_container(manifests: Iterable[Manifest]) -> Manifest:
    """The Deployment's ``controller`` container."""
    containers = one_of_kind(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    (container,) = (c for c in containers if c["name"] == "controller")
    return dict(container)


def pod_spec(manifests: Iterable[Manifest]) -> Manifest:
    """The Deployment's pod spec."""
    return dict(one_of_kind(manifests, "Deployment")["spec"]["template"]["spec"])


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return dict(loader.construct_mapping(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def load_unique_yaml(text: str) -> Any:
    """Parse one YAML document, failing on a duplicate key (as strict YAML parsers do)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def rendered_config(manifests: Iterable[Manifest]) -> Mapping[str, Any]:
    """The controller config file the chart renders (``config.yaml`` of the config ConfigMap)."""
    config_map = one_of_kind(manifests, "ConfigMap", f"{fullname_of(manifests)}-config")
    parsed = load_unique_yaml(config_map["data"]["config.yaml"])
    assert isinstance(parsed, dict), f"config.yaml is not a mapping: {parsed!r}"
    return parsed


def fullname_of(manifests: Iterable[Manifest]) -> str:
    """The release fullname, read from the Deployment's name."""
    return str(one_of_kind(manifests, "Deployment")["metadata"]["name"])


@dataclass(frozen=True)
class Scenario:
    """A named set of values the chart must render: files from ``tests/chart/values`` plus ``--set`` args."""

    name: str
    values_files: tuple[str, ...] = ()
    set_args: tuple[str, ...] = TOKENS

    def render(self, namespace: str = RELEASE_NAMESPACE) -> list[Manifest]:
        """The chart's objects for this scenario."""
        return render(self.values_files, self.set_args, namespace=namespace)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("defaults"),
    Scenario("upstream-values", ("upstream.yaml",), ()),
    Scenario("inline-policies", ("policies-inline.yaml",)),
    Scenario("policies-configmap", ("policies-configmap.yaml",)),
    Scenario("external-secret", ("external-secret.yaml",), ()),
    Scenario("metrics", ("metrics.yaml",)),
    Scenario(
        "stacks-api-agent-token-only",
        (),
        ("--set", f"agentToken={AGENT_TOKEN}", "--set", "config.queue=kubernetes", "--set", "replicaCount=2"),
    ),
    Scenario(
        "existing-service-account-roll-on-policy-change",
        ("policies-inline.yaml",),
        (
            *TOKENS,
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.name=builder",
            "--set",
            "rollOnPolicyChange=true",
            "--set",
            "config.prometheus-port=0",
        ),
    ),
)
