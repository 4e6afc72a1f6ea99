"""What the chart renders for each kind of values: names, the config file, policies, the hardened pod.

Expectations are derived from the inputs (the chart's values.yaml, the values files under
``tests/chart/values``), not copied from a rendering, so a template change that alters behaviour fails.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from tests.chart import (
    AGENT_TOKEN,
    CHART_DIR,
    GRAPHQL_TOKEN,
    ORG,
    POLICIES_DIR,
    RELEASE,
    RELEASE_NAMESPACE,
    SCENARIOS,
    TOKENS,
    Manifest,
    Scenario,
    controller_container,
    fullname_of,
    objects_of_kind,
    one_of_kind,
    pod_spec,
    render,
    rendered_config,
    run_helm,
    template_error,
    value_args,
    values_file,
)

FULLNAME = f"{RELEASE}-agent-stack-k8s"
DEFAULT_KINDS = sorted(
    ["ServiceAccount", "Secret", "Secret", "ConfigMap", "ConfigMap", "Role", "RoleBinding", "Deployment"]
)

# A minimal valid policy, as --set-string gives it (commas would split a --set value, so none here).
A_POLICY = (
    "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: extra}\nspec: {phase: build}"
)


def chart_values() -> dict[str, Any]:
    """The chart's own values.yaml."""
    loaded = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def chart_metadata() -> dict[str, Any]:
    loaded = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def load_values(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load(values_file(name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def injected(secret: str, namespace: str = RELEASE_NAMESPACE, fullname: str = FULLNAME) -> dict[str, Any]:
    """The keys the chart adds to the user's config (like upstream, plus the controller id and the
    controller's identity, which build pods may not use)."""
    return {
        "agent-token-secret": secret,
        "namespace": namespace,
        "id": fullname,
        "controller-service-account": f"{fullname}-controller",
        "controller-secrets": [f"{fullname}-graphql-token"],
    }


def pod_annotations(manifests: list[Manifest]) -> Mapping[str, str]:
    return dict(one_of_kind(manifests, "Deployment")["spec"]["template"]["metadata"].get("annotations") or {})


def mounts_by_name(container: Manifest) -> dict[str, Manifest]:
    return {m["name"]: m for m in container["volumeMounts"]}


def volumes_by_name(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {v["name"]: v for v in pod_spec(manifests)["volumes"]}


def port_by_name(container: Manifest) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def arg_after(container: Manifest, flag: str) -> str:
    args: list[str] = container["args"]
    return args[args.index(flag) + 1]


# --- lint -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_helm_lint_is_clean(scenario: Scenario) -> None:
    result = run_helm(
        ["lint", str(CHART_DIR), "--strict", *value_args(scenario.values_files, scenario.set_args)]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# --- objects and names ----------------------------------------------------------------------------


def test_default_values_render_the_controller_objects_and_nothing_optional() -> None:
    manifests = render()
    assert sorted(m["kind"] for m in manifests) == DEFAULT_KINDS
    assert all(m["metadata"]["namespace"] == RELEASE_NAMESPACE for m in manifests)
    assert fullname_of(manifests) == FULLNAME


def test_release_named_like_the_chart_keeps_upstream_object_names() -> None:
    manifests = render(release="agent-stack-k8s")
    assert fullname_of(manifests) == "agent-stack-k8s"
    one_of_kind(manifests, "ConfigMap", "agent-stack-k8s-config")
    one_of_kind(manifests, "Secret", "agent-stack-k8s-secrets")
    one_of_kind(manifests, "ServiceAccount", "agent-stack-k8s-controller")


def test_fullname_override_names_every_object() -> None:
    manifests = render(set_args=(*TOKENS, "--set", "fullnameOverride=blue-stack"))
    assert {m["metadata"]["name"].startswith("blue-stack") for m in manifests} == {True}
    selector = one_of_kind(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {"app": "blue-stack"}


def test_image_defaults_to_the_placeholder_registry_at_the_app_version() -> None:
    app_version = chart_metadata()["appVersion"]
    assert controller_container(render())["image"] == f"ghcr.io/agent-stack-policy/controller:{app_version}"
    custom = "registry.example.com/ci/controller:1.2.3"
    assert controller_container(render(set_args=(*TOKENS, "--set", f"image={custom}")))["image"] == custom


# --- config file ----------------------------------------------------------------------------------


def test_config_file_is_the_injected_keys_plus_the_default_config() -> None:
    config = rendered_config(render())
    assert config == {**injected(f"{FULLNAME}-secrets"), **chart_values()["config"], "org": ORG}


def test_upstream_values_file_works_unchanged() -> None:
    upstream = load_values("upstream.yaml")
    manifests = render(["upstream.yaml"], ())

    # Helm merges the user's values over the chart's values.yaml (which turns metrics on by default).
    expected_config = {**injected(f"{FULLNAME}-secrets"), **chart_values()["config"], **upstream["config"]}
    assert rendered_config(manifests) == expected_config
    agent = one_of_kind(manifests, "Secret", f"{FULLNAME}-secrets")
    graphql = one_of_kind(manifests, "Secret", f"{FULLNAME}-graphql-token")
    assert base64.b64decode(agent["data"]["BUILDKITE_AGENT_TOKEN"]).decode() == upstream["agentToken"]
    assert base64.b64decode(graphql["data"]["BUILDKITE_TOKEN"]).decode() == upstream["graphqlToken"]
    for secret in (agent, graphql):
        for key, value in upstream["secretsMetadata"]["annotations"].items():
            assert secret["metadata"]["annotations"][key] == value

    spec = pod_spec(manifests)
    assert spec["nodeSelector"] == upstream["nodeSelector"]
    assert spec["tolerations"] == upstream["tolerations"]
    container = controller_container(manifests)
    assert container["resources"] == upstream["resources"]
    assert container["env"][1:] == upstream["controllerEnv"]
    template_metadata = one_of_kind(manifests, "Deployment")["spec"]["template"]["metadata"]
    assert upstream["labels"].items() <= template_metadata["labels"].items()
    assert upstream["annotations"].items() <= template_metadata["annotations"].items()

    irsa = upstream["serviceAccountMetadata"]["annotations"]
    assert irsa.items() <= one_of_kind(manifests, "ServiceAccount")["metadata"]["annotations"].items()
    assert irsa.items() <= one_of_kind(manifests, "Role")["metadata"]["annotations"].items()


def test_keys_the_user_sets_replace_the_injected_ones_without_duplicates() -> None:
    overrides = {"namespace": "buildkite-jobs", "id": "blue", "agent-token-secret": "my-token"}
    set_args = [*TOKENS]
    for key, value in overrides.items():
        set_args += ["--set", f"config.{key}={value}"]
    config = rendered_config(render(set_args=set_args))  # the loader refuses duplicate keys
    assert {key: config[key] for key in overrides} == overrides


def test_external_secret_replaces_the_chart_secret_everywhere() -> None:
    external = load_values("external-secret.yaml")
    manifests = render(["external-secret.yaml"], ())
    assert objects_of_kind(manifests, "Secret") == []
    container = controller_container(manifests)
    assert container["envFrom"] == [{"secretRef": {"name": external["agentStackSecret"]}}]
    assert rendered_config(manifests)["agent-token-secret"] == external["agentStackSecret"]
    # Builds need the existing Secret's agent token key; controller-identity refuses its other keys.
    assert rendered_config(manifests)["controller-secrets"] == []


def test_config_file_is_mounted_where_the_config_env_points() -> None:
    manifests = render()
    container = controller_container(manifests)
    config_env = {e["name"]: e.get("value") for e in container["env"]}["CONFIG"]
    mount = mounts_by_name(container)["config"]
    assert mount["mountPath"] == config_env
    assert mount["subPath"] == "config.yaml"
    assert volumes_by_name(manifests)["config"]["configMap"]["name"] == f"{FULLNAME}-config"


def test_each_token_has_a_secret_of_its_own_and_the_controller_loads_only_the_graphql_one() -> None:
    manifests = render()

    def decoded(name: str) -> dict[str, str]:
        secret = one_of_kind(manifests, "Secret", name)
        return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}

    assert decoded(f"{FULLNAME}-secrets") == {"BUILDKITE_AGENT_TOKEN": AGENT_TOKEN}
    assert decoded(f"{FULLNAME}-graphql-token") == {"BUILDKITE_TOKEN": GRAPHQL_TOKEN}
    assert controller_container(manifests)["envFrom"] == [
        {"secretRef": {"name": f"{FULLNAME}-graphql-token"}}
    ]
    config = rendered_config(manifests)
    assert config["agent-token-secret"] == f"{FULLNAME}-secrets"
    assert config["controller-secrets"] == [f"{FULLNAME}-graphql-token"]
    account = one_of_kind(manifests, "ServiceAccount")["metadata"]["name"]
    assert config["controller-service-account"] == account == pod_spec(manifests)["serviceAccountName"]


# --- policies -------------------------------------------------------------------------------------


def expected_policy_documents(value: Any) -> list[Any]:
    """The YAML documents a policy value stands for: a string's documents, a list's items, or the object."""
    if isinstance(value, str):
        return [doc for doc in yaml.safe_load_all(value) if doc is not None]
    if isinstance(value, list):
        return value
    return [value]


def test_inline_policies_become_one_configmap_file_each() -> None:
    policies = load_values("policies-inline.yaml")["policies"]
    manifests = render(["policies-inline.yaml"])
    data = one_of_kind(manifests, "ConfigMap", f"{FULLNAME}-policies")["data"]
    assert sorted(data) == sorted(policies)
    for file_name, value in policies.items():
        documents = [doc for doc in yaml.safe_load_all(data[file_name]) if doc is not None]
        assert documents == expected_policy_documents(value), file_name


def test_policies_are_mounted_read_only_as_a_directory_and_passed_to_the_controller() -> None:
    manifests = render(["policies-inline.yaml"])
    container = controller_container(manifests)
    mount = mounts_by_name(container)["policies"]
    assert mount == {
        "name": "policies",
        "mountPath": POLICIES_DIR,
        "readOnly": True,
    }  # no subPath: hot reload
    assert volumes_by_name(manifests)["policies"]["configMap"]["name"] == f"{FULLNAME}-policies"
    assert arg_after(container, "--policies") == POLICIES_DIR


def test_without_policies_the_directory_still_exists_empty() -> None:
    config_map = one_of_kind(render(), "ConfigMap", f"{FULLNAME}-policies")
    assert not config_map.get("data")


def test_existing_policies_configmap_is_mounted_instead() -> None:
    name = load_values("policies-configmap.yaml")["policiesConfigMap"]
    manifests = render(["policies-configmap.yaml"])
    assert [m["metadata"]["name"] for m in objects_of_kind(manifests, "ConfigMap")] == [f"{FULLNAME}-config"]
    assert volumes_by_name(manifests)["policies"]["configMap"]["name"] == name
    assert mounts_by_name(controller_container(manifests))["policies"]["mountPath"] == POLICIES_DIR


def test_policies_and_policies_configmap_together_are_refused() -> None:
    error = template_error(["policies-inline.yaml", "policies-configmap.yaml"])
    assert "either policies" in error
    assert "policiesConfigMap" in error


# --- rollouts -------------------------------------------------------------------------------------


def test_config_or_token_changes_roll_the_pod() -> None:
    base = pod_annotations(render())
    new_config = pod_annotations(render(set_args=(*TOKENS, "--set", "config.org=another-org")))
    new_token = pod_annotations(render(set_args=(*TOKENS, "--set", "agentToken=rotated")))
    assert new_config["checksum/config"] != base["checksum/config"]
    assert new_config["checksum/secrets"] == base["checksum/secrets"]
    assert new_token["checksum/secrets"] != base["checksum/secrets"]
    assert new_token["checksum/config"] == base["checksum/config"]


def test_policy_changes_hot_reload_without_touching_the_pod_template() -> None:
    def template(*extra: str) -> Manifest:
        return dict(one_of_kind(render(set_args=(*TOKENS, *extra)), "Deployment")["spec"]["template"])

    assert template() == template("--set-string", f"policies.extra\\.yaml={A_POLICY}")
    assert "checksum/policies" not in template()["metadata"]["annotations"]


def test_roll_on_policy_change_adds_a_policy_checksum_that_follows_the_policies() -> None:
    roll = ("--set", "rollOnPolicyChange=true")
    before = pod_annotations(render(set_args=(*TOKENS, *roll)))
    after = pod_annotations(
        render(set_args=(*TOKENS, *roll, "--set-string", f"policies.extra\\.yaml={A_POLICY}"))
    )
    assert before["checksum/policies"] != after["checksum/policies"]
    assert before["checksum/config"] == after["checksum/config"]


# --- the hardened pod -----------------------------------------------------------------------------


def test_controller_pod_is_hardened() -> None:
    manifests = render()
    deployment = one_of_kind(manifests, "Deployment")
    spec = pod_spec(manifests)
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == 65532
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = controller_container(manifests)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert mounts_by_name(container)["tmp"]["mountPath"] == "/tmp"
    assert volumes_by_name(manifests)["tmp"] == {"name": "tmp", "emptyDir": {}}
    assert all(m.get("readOnly") for name, m in mounts_by_name(container).items() if name != "tmp")
    assert spec["enableServiceLinks"] is False
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_run_as_user_is_configurable_but_stays_non_root() -> None:
    spec = pod_spec(render(set_args=(*TOKENS, "--set", "podSecurityContext.runAsUser=1000")))
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_runs_engine_run_with_the_documented_flags() -> None:
    container = controller_container(render(set_args=(*TOKENS, "--set", "logFormat=json")))
    assert container["args"][0] == "run"
    assert arg_after(container, "--log-format") == "json"
    assert "command" not in container  # the image's ENTRYPOINT ["engine"] stays in charge


def test_upstreams_config_log_format_is_not_overridden_by_the_flag() -> None:
    """An upstream values file sets ``config.log-format``; the chart's own ``logFormat`` flag would
    override the file, so it is left out then."""
    container = controller_container(render(set_args=(*TOKENS, "--set", "config.log-format=json")))
    assert "--log-format" not in container["args"]


@pytest.mark.parametrize("health_port", [None, 9000])
def test_probes_hit_healthz_and_readyz_on_the_health_port(health_port: int | None) -> None:
    extra = ("--set", f"healthPort={health_port}") if health_port else ()
    container = controller_container(render(set_args=(*TOKENS, *extra)))
    expected_port = health_port or chart_values()["healthPort"]
    assert port_by_name(container)["health"] == expected_port
    assert int(arg_after(container, "--health-port")) == expected_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_port_follows_the_prometheus_port_config() -> None:
    default_port = chart_values()["config"]["prometheus-port"]
    assert default_port > 0
    assert port_by_name(controller_container(render()))["metrics"] == default_port
    off = controller_container(render(set_args=(*TOKENS, "--set", "config.prometheus-port=0")))
    assert "metrics" not in port_by_name(off)


def test_metrics_service_targets_the_metrics_port() -> None:
    metrics = load_values("metrics.yaml")
    manifests = render(["metrics.yaml"])
    port = metrics["config"]["prometheus-port"]
    assert port_by_name(controller_container(manifests))["metrics"] == port
    service = one_of_kind(manifests, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = one_of_kind(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_pod_monitor_is_structurally_valid_and_selects_the_controller() -> None:
    """The PodMonitor CRD is not bundled with kubernetes-validate nor the test cluster: check its shape."""
    metrics = load_values("metrics.yaml")
    manifests = render(["metrics.yaml"])
    monitor = one_of_kind(manifests, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert monitor["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert metrics["metrics"]["podMonitor"]["labels"].items() <= monitor["metadata"]["labels"].items()
    spec = monitor["spec"]
    assert set(spec) <= {"jobLabel", "namespaceSelector", "selector", "podMetricsEndpoints"}
    assert spec["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    pod_labels = one_of_kind(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["jobLabel"] in pod_labels
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "interval": metrics["metrics"]["podMonitor"]["interval"],
    }
    assert "metrics" in port_by_name(controller_container(manifests))


def test_upstream_monitoring_keys_enable_the_pod_monitor() -> None:
    manifests = render(
        set_args=(
            *TOKENS,
            "--set",
            "monitoring.podMonitor.deploy=true",
            "--set",
            "monitoring.podMonitor.scrapeInterval=45s",
            "--set",
            "monitoring.namespace=monitoring",
        )
    )
    monitor = one_of_kind(manifests, "PodMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "45s"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}


@pytest.mark.parametrize("switch", ["metrics.service.enabled=true", "metrics.podMonitor.enabled=true"])
def test_metrics_objects_without_a_metrics_port_are_refused(switch: str) -> None:
    error = template_error(set_args=(*TOKENS, "--set", "config.prometheus-port=0", "--set", switch))
    assert "prometheus-port > 0" in error


# --- NOTES ----------------------------------------------------------------------------------------


def install_notes(*set_args: str) -> str:
    """The NOTES helm prints after an install (client-side dry run: no cluster needed)."""
    result = run_helm(
        ["install", RELEASE, str(CHART_DIR), "--dry-run=client", "--namespace", RELEASE_NAMESPACE, *set_args]
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_warn_about_a_jobs_namespace_without_rbac_until_it_is_listed() -> None:
    elsewhere = ("--set", "config.namespace=buildkite-jobs", "--set", "config.org=acme")
    warned = install_notes(*TOKENS, *elsewhere)
    assert "WARNING: config.namespace is buildkite-jobs" in warned
    listed = install_notes(*TOKENS, *elsewhere, "--set", "rbac.extraNamespaces={buildkite-jobs}")
    assert "WARNING: config.namespace" not in listed
    assert "-n buildkite-jobs" in listed


def test_notes_warn_about_the_placeholder_image() -> None:
    notes = install_notes(*TOKENS)
    assert "image is not set" in notes
    configured = install_notes(*TOKENS, "--set", "image=registry.example.com/c:1")
    assert "WARNING" not in configured
