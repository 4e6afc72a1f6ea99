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
        "priority: expected a 64-bit integer, got a string",
    ]


def test_graphql_edge_and_nested_priority_are_accepted() -> None:
    parsed = parse_job({"node": job(priority={"number": 5})})
    assert parsed.uuid == "u-1"
    assert parsed.priority == 5


TRUSTED = {
    "pipeline": {"slug": "web", "name": "Web", "repository": {"url": "git@github.com:org/web.git"}},
    "build": {
        "number": 42,
        "branch": "main",
        "commit": "abc123",
        "source": {"name": "webhook"},
        "message": "Fix",
    },
    "step": {"key": "test"},
}


def test_trusted_roots_come_from_buildkites_fields() -> None:
    facts = job_facts(parse_job(job(agentQueryRules=["queue=k", "os=linux", "broken"], **TRUSTED)))
    assert facts["tags"] == {"queue": "k", "os": "linux"}
    assert facts["pipeline"] == {"slug": "web", "name": "Web", "repository": "git@github.com:org/web.git"}
    assert facts["build"] == {
        "number": 42, "branch": "main", "commit": "abc123", "source": "webhook", "message": "Fix"
    }  # fmt: skip
    assert facts["step"] == {"key": "test"}
    assert facts["plugin"] is None
    assert facts["job"]["hasKubernetesPlugin"] is False
    assert "pluginsError" not in facts["job"]


def test_the_env_cannot_change_who_a_job_belongs_to() -> None:
    """Appending BUILDKITE_* variables (the last duplicate wins in env_map) changes only job.env."""
    spoof = [
        "BUILDKITE_PIPELINE_SLUG=payments-api",
        "BUILDKITE_BRANCH=main",
        "BUILDKITE_BUILD_NUMBER=1",
        "BUILDKITE_STEP_KEY=deploy",
        "BUILDKITE_REPO=https://github.com/org/payments.git",
        "BUILDKITE_SOURCE=ui",
        "BUILDKITE_PIPELINE_SLUG=payments-web",
    ]
    facts = job_facts(parse_job(job(env=spoof, **TRUSTED)))
    assert facts["pipeline"]["slug"] == "web"
    assert facts["build"]["branch"] == "main"
    assert facts["build"]["number"] == 42
    assert facts["step"] == {"key": "test"}
    assert facts["job"]["env"]["BUILDKITE_PIPELINE_SLUG"] == "payments-web"


def test_without_buildkites_fields_the_roots_are_empty_whatever_the_env_says() -> None:
    env = ["BUILDKITE_PIPELINE_SLUG=web", "BUILDKITE_BRANCH=main", "BUILDKITE_BUILD_URL=https://bk/b/42"]
    facts = job_facts(parse_job(job(env=env, step=None)))
    assert (facts["pipeline"], facts["build"], facts["step"]) == ({}, {}, {})


def test_null_members_are_absent_and_a_plain_source_string_is_accepted() -> None:
    parsed = parse_job(
        job(
            pipeline={"slug": "web", "name": None, "repository": None},
            build={"number": 7, "branch": "dev", "commit": "c", "message": None, "source": "api"},
            step={"key": None},
        )
    )
    assert parsed.pipeline == {"slug": "web"}
    assert parsed.build == {"number": 7, "branch": "dev", "commit": "c", "source": "api"}
    assert parsed.step == {}


def test_wrongly_typed_trusted_fields_are_input_errors() -> None:
    with pytest.raises(JobInputError) as caught:
        parse_job(
            job(
                pipeline={"slug": 1, "repository": "https://x"},
                build={"number": "42", "branch": ["main"], "source": {"name": 3}},
                step="deploy",
            )
        )
    assert caught.value.problems == [
        "pipeline.slug: expected a string, got the number 1",
        "pipeline.repository: expected an object, got a string",
        "build.number: expected a 64-bit integer, got a string",
        "build.branch: expected a string, got a list",
        "build.source.name: expected a string, got the number 3",
        "step: expected an object, got a string",
    ]


def test_build_numbers_beyond_64_bits_are_refused() -> None:
    with pytest.raises(JobInputError) as caught:
        parse_job(job(build={"number": 2**63}))
    assert caught.value.problems == [
        "build.number: expected a 64-bit integer, got the number 9223372036854775808"
    ]


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
