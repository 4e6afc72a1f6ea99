"""The chart with the agent token alone: the Stacks API mode, job acquisition tokens, replicas, and the
way from a GraphQL install to one without a GraphQL token."""

from __future__ import annotations

from typing import Any

import pytest

from engine.model.config import parse_config
from tests.chart import (
    AGENT_TOKEN,
    TOKENS,
    controller_container,
    objects_of_kind,
    one_of_kind,
    render,
    rendered_config,
    template_error,
)

AGENT_TOKEN_ONLY = ("--set", f"agentToken={AGENT_TOKEN}")
FULLNAME = "ci-agent-stack-k8s"


def rules(manifests: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [
        (rule["resources"][0], tuple(rule["verbs"]), tuple(rule.get("resourceNames", ())))
        for rule in one_of_kind(manifests, "Role")["rules"]
    ]


def test_the_agent_token_alone_installs_the_stacks_api_mode() -> None:
    manifests = render(set_args=(*AGENT_TOKEN_ONLY, "--set", "config.queue=kubernetes"))
    [secret] = objects_of_kind(manifests, "Secret")
    assert set(secret["data"]) == {"BUILDKITE_AGENT_TOKEN"}
    assert "envFrom" not in controller_container(manifests)  # no GraphQL token to load
    config = rendered_config(manifests)
    assert config["job-acquisition-tokens"] is True
    assert config["controller-secrets"] == []
    assert "org" not in config
    controller = parse_config(dict(config), "rendered config")
    assert controller.mode().name == "stacks"
    assert controller.missing_required_for_controller() == []
    assert controller.stack_key() == FULLNAME
    assert ("jobs", ("get", "list", "watch", "create", "patch", "delete"), ()) in rules(manifests)
    assert ("secrets", ("create", "delete"), ()) in rules(manifests)
    assert ("secrets", ("get",), (f"{FULLNAME}-secrets",)) in rules(manifests)


def test_without_acquisition_tokens_the_controller_may_not_create_secrets() -> None:
    manifests = render(set_args=(*AGENT_TOKEN_ONLY, "--set", "config.job-acquisition-tokens=false"))
    assert rendered_config(manifests)["job-acquisition-tokens"] is False
    assert [rule for rule in rules(manifests) if rule[0] == "secrets"] == [
        ("secrets", ("get",), (f"{FULLNAME}-secrets",))
    ]


def test_replicas_may_be_more_than_one_in_the_stacks_api_mode_only() -> None:
    deployment = one_of_kind(render(set_args=(*AGENT_TOKEN_ONLY, "--set", "replicaCount=3")), "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    graphql = one_of_kind(render(), "Deployment")
    assert (graphql["spec"]["replicas"], graphql["spec"]["strategy"]["type"]) == (1, "Recreate")
    error = template_error(set_args=(*TOKENS, "--set", "replicaCount=2"))
    assert "replicaCount above 1 needs the Stacks API mode" in error


def test_a_graphql_install_keeps_its_two_secrets_and_one_replica() -> None:
    manifests = render()
    assert sorted(s["metadata"]["name"] for s in objects_of_kind(manifests, "Secret")) == [
        f"{FULLNAME}-graphql-token",
        f"{FULLNAME}-secrets",
    ]
    config = rendered_config(manifests)
    assert "job-acquisition-tokens" not in config
    assert parse_config(dict(config), "rendered config").mode().name == "graphql"
    assert not [rule for rule in rules(manifests) if "delete" in rule[1] and rule[0] != "pods"]


@pytest.mark.parametrize(
    ("set_args", "expected"),
    [
        ((*AGENT_TOKEN_ONLY, "--set", "config.org=o"), "graphqlToken"),  # org alone: the GraphQL mode
        ((*TOKENS, "--set", "config.buildkite-api=stacks"), "/config/buildkite-api"),
        (
            (*AGENT_TOKEN_ONLY, "--set", "config.buildkite-api=stacks", "--set", "config.cluster-uuid=c"),
            "cluster-uuid",
        ),
        ((*TOKENS, "--set", "config.queue=gpu"), "/config/queue"),
        ((*TOKENS, "--set", "config.job-acquisition-tokens=true"), "/config/job-acquisition-tokens"),
    ],
    ids=[
        "org-without-graphql-token",
        "graphql-token-with-stacks",
        "graphql-key-in-stacks",
        "stacks-key-in-graphql",
        "tokens-in-graphql",
    ],
)
def test_a_key_of_the_other_mode_is_refused(set_args: tuple[str, ...], expected: str) -> None:
    assert expected in template_error(set_args=set_args)


def test_moving_a_graphql_install_to_the_agent_token_alone() -> None:
    """What the chart README's migration section says: drop graphqlToken and config.org, name the queue."""
    before = rendered_config(render())
    after_manifests = render(set_args=(*AGENT_TOKEN_ONLY, "--set", "config.queue=kubernetes"))
    after = rendered_config(after_manifests)
    assert after["id"] == before["id"]  # the same controller id: it adopts the Jobs it created before
    assert after["agent-token-secret"] == before["agent-token-secret"]
    assert parse_config(dict(after), "after").effective_queue() == "kubernetes"
