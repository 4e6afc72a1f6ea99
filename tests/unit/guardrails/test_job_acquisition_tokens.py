"""With job acquisition tokens, only the agent container gets a credential: this job's token, from the
Secret the controller creates. No input an author can produce moves it elsewhere or reaches the
cluster agent token or another job's token."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.functions.secrets import secret_references
from engine.model.acquisition_token import SECRET_PREFIX, acquisition_token_secret_name
from engine.model.config import ConfigError
from tests.unit.guardrails import ROOT, UUID, decide, job

TOKEN = "agent-stack-secrets"
CONFIG = {"job-acquisition-tokens": True, "agent-token-secret": TOKEN}
OTHER_JOB = "0193b000-0000-4000-8000-0000000000bb"


def pod_of(plugin: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    decision = decide(job(plugin=plugin), config=CONFIG if config is None else config)
    assert decision.admitted, [d.render() for d in decision.denials]
    pod: dict[str, Any] = decision.manifest["spec"]["template"]["spec"]
    return pod


def denied_rules(plugin: dict[str, Any]) -> list[str]:
    return [d.rule for d in decide(job(plugin=plugin), config=CONFIG).denials]


def test_the_agent_reads_this_jobs_token_and_nothing_else_has_a_credential() -> None:
    references = [(r["secret"], r["where"], r["keys"]) for r in secret_references(pod_of())]
    assert references == [
        (
            acquisition_token_secret_name(UUID),
            "containers[agent].env[BUILDKITE_AGENT_TOKEN]",
            ["BUILDKITE_AGENT_TOKEN"],
        )
    ]


def test_without_acquisition_tokens_the_pod_is_unchanged() -> None:
    references = {r["secret"] for r in secret_references(pod_of(config={"agent-token-secret": TOKEN}))}
    assert references == {TOKEN}


ATTACKS: dict[str, tuple[dict[str, Any], str]] = {
    "the cluster token in a step's env": (
        {
            "podSpec": {
                "containers": [
                    {
                        "image": "alpine",
                        "env": [
                            {
                                "name": "T",
                                "valueFrom": {
                                    "secretKeyRef": {"name": TOKEN, "key": "BUILDKITE_AGENT_TOKEN"}
                                },
                            }
                        ],
                    }
                ]
            }
        },
        "no-cluster-token",
    ),
    "the cluster token as a sidecar volume": (
        {
            "sidecars": [{"image": "alpine"}],
            "podSpecPatch": {"volumes": [{"name": "t", "secret": {"secretName": TOKEN}}]},
        },
        "no-cluster-token",
    ),
    "another job's token": (
        {
            "podSpec": {
                "containers": [
                    {
                        "image": "alpine",
                        "envFrom": [{"secretRef": {"name": acquisition_token_secret_name(OTHER_JOB)}}],
                    }
                ]
            }
        },
        "only-this-jobs-token-in-the-agent",
    ),
    "this job's token in a command container": (
        {
            "podSpec": {
                "containers": [
                    {
                        "image": "alpine",
                        "env": [
                            {
                                "name": "X",
                                "valueFrom": {
                                    "secretKeyRef": {
                                        "name": acquisition_token_secret_name(UUID),
                                        "key": "BUILDKITE_AGENT_TOKEN",
                                    }
                                },
                            }
                        ],
                    }
                ]
            }
        },
        "only-this-jobs-token-in-the-agent",
    ),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_other_credential_reaches_the_pod(attack: str) -> None:
    plugin, rule = ATTACKS[attack]
    assert rule in denied_rules(plugin)


def test_a_step_patch_cannot_give_the_token_back_to_a_command_container() -> None:
    plugin = {
        "podSpecPatch": {
            "containers": [
                {"name": "container-0", "env": [{"name": "BUILDKITE_AGENT_TOKEN", "value": "mine"}]},
            ]
        }
    }
    pod = pod_of(plugin)
    for container in pod["containers"]:
        names = [e["name"] for e in container.get("env", [])]
        assert ("BUILDKITE_AGENT_TOKEN" in names) == (container["name"] == "agent")


def test_the_mode_key_is_refused_outside_the_stacks_api_mode() -> None:
    with pytest.raises(ConfigError, match="job-acquisition-tokens: only the Stacks API mode reads this key"):
        decide(job(), config={**CONFIG, "org": "o"})


def test_the_policy_knows_the_secrets_names_as_the_controller_does() -> None:
    policy = (ROOT / "policies" / "66-job-acquisition-tokens.yaml").read_text()
    assert f'startsWith("{SECRET_PREFIX}")' in policy
    assert acquisition_token_secret_name(UUID) == SECRET_PREFIX + UUID
