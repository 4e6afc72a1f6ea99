"""The Buildkite job wire shape, its validation, and the facts policies read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.model.job import JobInputError, job_facts, parse_job, split_plugins

K8S = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"


def job(**fields: Any) -> dict[str, Any]:
    return {"uuid": "u-1", "command": "make", "env": [], "agentQueryRules": ["queue=k"], **fields}


def test_env_splits_at_the_first_equals_and_keeps_order() -> None:
    parsed = parse_job(job(env=["B=1", "A=x=y", "EMPTY="]))
    assert parsed.env == (("B", "1"), ("A", "x=y"), ("EMPTY", ""))
    assert job_facts(parsed)["job"]["envList"] == [
        {"name": "B", "value": "1"},
        {"name": "A", "value": "x=y"},
        {"name": "EMPTY", "value": ""},
    ]


def test_every_problem_is_reported() -> None:
    with pytest.raises(JobInputError) as caught:
        parse_job({"command": 3, "env": ["OK=1", "NOPE", 4], "agentQueryRules": [1], "priority": "high"})
    assert caught.value.problems == [
        "uuid: is required",
        "command: expected a string, got the number 3",
        'env[1]: entry "NOPE" is not of the form NAME=VALUE',
        "env[2]: expected a K=V string, got the number 4",
        "agentQueryRules[0]: expected a string, got the number 1",
        "priority: expected an integer, got a string",
    ]


def test_graphql_edge_and_nested_priority_are_accepted() -> None:
    parsed = parse_job({"node": job(priority={"number": 5})})
    assert parsed.uuid == "u-1"
    assert parsed.priority == 5


def test_facts_from_env_and_tags() -> None:
    env = [
        "BUILDKITE_PIPELINE_SLUG=web",
        "BUILDKITE_BRANCH=main",
        "BUILDKITE_BUILD_NUMBER=42",
        "BUILDKITE_BUILD_URL=https://bk/b/42",
        "BUILDKITE_STEP_KEY=test",
        "BUILDKITE_LABEL=Test",
        "BUILDKITE_SOURCE=webhook",
    ]
    facts = job_facts(parse_job(job(env=env, agentQueryRules=["queue=k", "os=linux", "broken"])))
    assert facts["tags"] == {"queue": "k", "os": "linux"}
    assert facts["pipeline"] == {"slug": "web"}
    assert facts["build"] == {"branch": "main", "number": 42, "url": "https://bk/b/42", "source": "webhook"}
    assert facts["step"] == {"key": "test", "label": "Test"}
    assert facts["plugin"] is None
    assert facts["job"]["hasKubernetesPlugin"] is False
    assert "pluginsError" not in facts["job"]


def test_kubernetes_plugin_is_split_from_the_others() -> None:
    plugins = [{"docker#v5": {"image": "x", "b": 1}}, {K8S: {"podSpec": {"containers": []}}}, {"cache": None}]
    facts = split_plugins(json.dumps(plugins))
    assert facts.kubernetes == {"podSpec": {"containers": []}}
    assert facts.has_kubernetes
    assert facts.others_json == '[{"docker#v5":{"b":1,"image":"x"}},{"cache":null}]'


def test_short_kubernetes_key_and_repeated_entries_merge() -> None:
    facts = split_plugins(json.dumps([{"kubernetes": {"sidecars": []}}, {K8S: {"metadata": {"labels": {}}}}]))
    assert facts.kubernetes == {"sidecars": [], "metadata": {"labels": {}}}
    assert facts.others_json == ""


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{not json", "failed parsing plugins: Expecting property name enclosed in double quotes"),
        ('{"a": 1}', "failed parsing plugins: expected a JSON array, got an object"),
        ('[{"a": 1, "b": 2}]', 'found invalid plugin: {"a":1,"b":2}'),
        ("[[1]]", "found invalid plugin: [1]"),
    ],
)
def test_unusable_plugins_are_facts_not_exceptions(raw: str, error: str) -> None:
    facts = split_plugins(raw)
    assert facts.plugins_error is not None
    assert facts.plugins_error.startswith(error)


def test_undecodable_kubernetes_plugin_names_the_field() -> None:
    raw = json.dumps(
        [{K8S: {"podSpec": {"containers": [{"name": "a", "env": [{"name": "X", "value": 0}]}]}}}]
    )
    facts = split_plugins(raw)
    assert facts.kubernetes is None
    assert facts.has_kubernetes
    assert facts.kubernetes_error == (
        "failed parsing Kubernetes plugin: "
        "podSpec.containers[0].env[0].value: expected a string, got the number 0"
    )
