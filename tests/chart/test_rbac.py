"""The chart's Role grants exactly ``controller_permissions``: nothing the controller lacks, nothing more."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from engine.kube.permissions import Permission, controller_permissions
from engine.model.config import parse_config
from tests.chart import (
    ORG,
    RELEASE_NAMESPACE,
    TOKENS,
    Manifest,
    objects_of_kind,
    one_of_kind,
    render,
    rendered_config,
)

Grant = tuple[str, str, str, str]
"""(api group, resource, verb, resource name or "*")."""


def grants_of_rules(rules: Iterable[Manifest]) -> list[Grant]:
    """Every (api group, resource, verb, name) a list of RBAC rules grants, duplicates kept."""
    grants: list[Grant] = []
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, f"unexpected fields: {rule}"
        names = rule.get("resourceNames") or ["*"]
        grants += [
            (g, r, v, n)
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
            for n in names
        ]
    return grants


def grants_of_permissions(permissions: Iterable[Permission]) -> list[Grant]:
    return [
        (p.api_group, p.resource, verb, name)
        for p in permissions
        for verb in p.verbs
        for name in (p.resource_names or ("*",))
    ]


def expected_grants(manifests: list[Manifest]) -> list[Grant]:
    config = parse_config(rendered_config(manifests), "rendered config")
    permissions = controller_permissions(
        config.agent_token_secret,
        stacks=config.mode().name == "stacks",
        acquisition_tokens=config.job_acquisition_tokens,
    )
    return sorted(grants_of_permissions(permissions))


def test_role_rules_equal_controller_permissions_exactly() -> None:
    manifests = render()
    role = one_of_kind(manifests, "Role")
    granted = grants_of_rules(role["rules"])
    assert len(granted) == len(set(granted)), "a grant is repeated"
    assert sorted(granted) == expected_grants(manifests)


@pytest.mark.parametrize(
    "set_args",
    [
        (*TOKENS, "--set", "config.agent-token-secret=my-token"),
        ("--set", "agentStackSecret=existing", "--set", f"config.org={ORG}"),
    ],
    ids=["agent-token-secret in config", "existing secret"],
)
def test_the_controller_may_get_exactly_the_secret_it_reads(set_args: tuple[str, ...]) -> None:
    manifests = render(set_args=set_args)
    secret_rules = [r for r in one_of_kind(manifests, "Role")["rules"] if r["resources"] == ["secrets"]]
    (rule,) = [r for r in secret_rules if "get" in r["verbs"]]
    assert rule["resourceNames"] == [rendered_config(manifests)["agent-token-secret"]]
    assert rule["verbs"] == ["get"]
    assert sorted(grants_of_rules(one_of_kind(manifests, "Role")["rules"])) == expected_grants(manifests)


def test_rules_hold_no_wildcards_and_only_namespaced_kinds() -> None:
    manifests = render()
    assert objects_of_kind(manifests, "ClusterRole") == []
    assert objects_of_kind(manifests, "ClusterRoleBinding") == []
    for group, resource, verb, _ in grants_of_rules(one_of_kind(manifests, "Role")["rules"]):
        assert "*" not in (group, resource, verb)


def test_role_is_bound_to_the_controller_service_account() -> None:
    manifests = render()
    role = one_of_kind(manifests, "Role")
    binding = one_of_kind(manifests, "RoleBinding")
    account = one_of_kind(manifests, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": RELEASE_NAMESPACE}
    ]
    pod = one_of_kind(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_extra_namespaces_get_the_same_role_bound_to_the_same_account() -> None:
    manifests = render(set_args=(*TOKENS, "--set", "rbac.extraNamespaces={jobs-a,jobs-b}"))
    roles = {r["metadata"]["namespace"]: r for r in objects_of_kind(manifests, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in objects_of_kind(manifests, "RoleBinding")}
    assert sorted(roles) == sorted(bindings) == sorted([RELEASE_NAMESPACE, "jobs-a", "jobs-b"])
    expected = expected_grants(manifests)
    for namespace, role in roles.items():
        assert sorted(grants_of_rules(role["rules"])) == expected, namespace
        assert bindings[namespace]["subjects"] == bindings[RELEASE_NAMESPACE]["subjects"]


def test_listing_the_release_namespace_again_renders_it_once() -> None:
    manifests = render(set_args=(*TOKENS, "--set", f"rbac.extraNamespaces={{{RELEASE_NAMESPACE}}}"))
    assert len(objects_of_kind(manifests, "Role")) == 1


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    manifests = render(set_args=(*TOKENS, "--set", "rbac.create=false"))
    assert objects_of_kind(manifests, "Role") == objects_of_kind(manifests, "RoleBinding") == []


def test_existing_service_account_is_used_not_created() -> None:
    manifests = render(
        set_args=(*TOKENS, "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=builder")
    )
    assert objects_of_kind(manifests, "ServiceAccount") == []
    assert one_of_kind(manifests, "RoleBinding")["subjects"][0]["name"] == "builder"
    assert one_of_kind(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "builder"
