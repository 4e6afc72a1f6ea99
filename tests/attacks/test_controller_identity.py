"""The controller's identity is out of reach: its service account and its Secrets.

Build pods run in the controller's namespace. With the default policies and a config naming the
controller's service account and Secrets, property: a pod that runs as that service account, that
references a ``controller-secrets`` Secret in any way, or that references the agent-token Secret other
than through its ``BUILDKITE_AGENT_TOKEN`` key, is **denied**. The stack's own use of the agent token
is the control: ordinary jobs are still admitted.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.attacks.harness import (
    AGENT_TOKEN_SECRET,
    ALLOWED_IMAGE,
    Job,
    pod,
    policies,
    require_admitted,
    require_denied,
    run,
    step_container,
)
from tests.attacks.oracle import references_to, service_account
from tests.attacks.secret_routes import secret_routes

SERVICE_ACCOUNT = "agent-stack-controller"
CONTROLLER_SECRETS = ("agent-stack-graphql", "agent-stack-webhook")
CONFIG = {
    "agent-token-secret": AGENT_TOKEN_SECRET,
    "controller-service-account": SERVICE_ACCOUNT,
    "controller-secrets": list(CONTROLLER_SECRETS),
}


def assert_denied(plugin: dict[str, Any]) -> None:
    decision = run(policies(), Job(plugin=plugin), CONFIG)
    spec = pod(decision)
    found = [
        (r.name, r.where) for s in (*CONTROLLER_SECRETS, AGENT_TOKEN_SECRET) for r in references_to(spec, s)
    ]
    require_denied(decision, f"admitted as {service_account(spec)!r} with references {found}")


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(
            {"podSpec": {"serviceAccountName": SERVICE_ACCOUNT, "containers": [step_container()]}},
            id="podSpec-serviceAccountName",
        ),
        pytest.param(
            {"podSpecPatch": {"serviceAccountName": SERVICE_ACCOUNT}}, id="podSpecPatch-serviceAccountName"
        ),
        pytest.param(
            {"podSpec": {"serviceAccount": SERVICE_ACCOUNT, "containers": [step_container()]}},
            id="podSpec-deprecated-serviceAccount",
        ),
        pytest.param(
            {"podSpecPatch": {"serviceAccount": SERVICE_ACCOUNT}}, id="podSpecPatch-deprecated-serviceAccount"
        ),
        pytest.param(
            {
                "podSpec": {"serviceAccountName": "ci", "containers": [step_container()]},
                "podSpecPatch": {"serviceAccountName": SERVICE_ACCOUNT},
            },
            id="podSpec-harmless-then-patch",
        ),
        pytest.param(
            {
                "podSpec": {
                    "serviceAccountName": "",
                    "serviceAccount": SERVICE_ACCOUNT,
                    "containers": [step_container()],
                }
            },
            id="empty-name-with-deprecated-alias",
        ),
    ],
)
def test_the_controller_service_account_is_refused(plugin: dict[str, Any]) -> None:
    assert_denied(plugin)


def controller_secret_attacks() -> list[Any]:
    cases = []
    for secret in CONTROLLER_SECRETS:
        for name, plugin in secret_routes(secret).items():
            cases.append(pytest.param(plugin, id=f"{secret}-via-{name}"))
    return cases


@pytest.mark.parametrize("plugin", controller_secret_attacks())
def test_controller_secrets_are_refused(plugin: dict[str, Any]) -> None:
    assert_denied(plugin)


REKEYED = {
    "podSpecPatch": {
        "containers": [
            {
                "name": "agent",
                "env": [
                    {
                        "name": "BUILDKITE_AGENT_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": AGENT_TOKEN_SECRET, "key": "BUILDKITE_TOKEN"}},
                    }
                ],
            }
        ]
    }
}


def agent_token_attacks() -> list[Any]:
    """Routes that expose keys of the agent-token Secret other than ``BUILDKITE_AGENT_TOKEN``."""
    other_key = secret_routes(AGENT_TOKEN_SECRET, key="BUILDKITE_TOKEN")
    chosen = [
        "podSpec-env-valueFrom",
        "podSpec-envFrom",
        "podSpec-envFrom-with-prefix",
        "podSpec-secret-volume",
        "podSpec-projected-volume",
        "sidecar-envFrom",
        "sidecar-env-valueFrom",
        "podSpecPatch-volume",
        "podSpecPatch-agent-envFrom",
        "gitEnvFrom",
        "checkout-envFrom",
        "checkout-gitCredentialsSecret",
        "commandParams-envFrom",
        "sidecarParams-envFrom",
        "podSpec-imagePullSecrets",
    ]
    cases = [pytest.param(other_key[name], id=f"agent-token-secret-via-{name}") for name in chosen]
    items_other_key = {
        "podSpec": {
            "containers": [step_container()],
            "volumes": [
                {
                    "name": "t",
                    "secret": {
                        "secretName": AGENT_TOKEN_SECRET,
                        "items": [
                            {"key": "BUILDKITE_AGENT_TOKEN", "path": "a"},
                            {"key": "BUILDKITE_TOKEN", "path": "b"},
                        ],
                    },
                }
            ],
        }
    }
    cases.append(pytest.param(items_other_key, id="agent-token-volume-items-include-another-key"))
    return cases


@pytest.mark.parametrize("plugin", agent_token_attacks())
def test_the_agent_token_secret_is_reachable_only_through_its_token_key(plugin: dict[str, Any]) -> None:
    assert_denied(plugin)


def test_rekeying_the_agents_token_variable_by_patch_is_undone() -> None:
    """Correction: this attempt was first in the list above, as a denial. A patch of a protected
    variable (BUILDKITE_AGENT_TOKEN in the agent container) is neutralised instead: the stack's entry
    is put back, with a warning. Either answer keeps the Secret out of reach; what must hold is that
    the admitted pod reads no other key of it."""
    decision = run(policies(), Job(plugin=REKEYED), CONFIG)
    require_admitted(decision)
    found = references_to(pod(decision), AGENT_TOKEN_SECRET)
    assert found
    assert all(r.keys == frozenset({"BUILDKITE_AGENT_TOKEN"}) for r in found), found
    assert any("BUILDKITE_AGENT_TOKEN" in w.message for w in decision.warnings)


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(None, id="hello-world"),
        pytest.param(
            {"podSpec": {"serviceAccountName": "ci-builder", "containers": [step_container()]}},
            id="another-service-account",
        ),
        pytest.param(
            {
                "podSpec": {
                    "containers": [step_container(envFrom=[{"secretRef": {"name": "npm-token"}}])],
                    "volumes": [{"name": "c", "secret": {"secretName": "ci-cache-credentials"}}],
                },
                "sidecars": [{"name": "db", "image": ALLOWED_IMAGE}],
                "gitEnvFrom": [{"secretRef": {"name": "git-ssh-key"}}],
            },
            id="other-secrets",
        ),
    ],
)
def test_ordinary_jobs_are_admitted(plugin: dict[str, Any] | None) -> None:
    decision = run(policies(), Job(plugin=plugin), CONFIG)
    require_admitted(decision)
    spec = pod(decision)
    account = service_account(spec)
    assert account != SERVICE_ACCOUNT
    for secret in CONTROLLER_SECRETS:
        found = references_to(spec, secret)
        assert found == []
    token_refs = references_to(spec, AGENT_TOKEN_SECRET)
    assert token_refs, "the stack's own containers reference the agent token"
    assert all(r.keys == frozenset({"BUILDKITE_AGENT_TOKEN"}) for r in token_refs)
