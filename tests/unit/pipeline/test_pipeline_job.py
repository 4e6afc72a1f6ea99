"""Pipeline steps → the job Buildkite would schedule: the upstream README's sample pipelines, group
steps, and each Buildkite serialisation rule (plugins, agents, env, commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.core.evaluate import evaluate
from engine.model.config import parse_config
from engine.model.job import job_facts, parse_job
from engine.pipeline.files import job_from_pipeline_file
from engine.pipeline.job import BuildContext, PipelineJobError, job_from_step
from engine.pipeline.plugins import canonical_plugins, full_source, plugins_env
from engine.pipeline.source import parse_pipeline
from engine.pipeline.steps import StepError, choose_step, read_pipeline_document
from engine.policy.loader import load_policies

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pipelines"
K8S = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"
GRADLE = {
    "podSpec": {
        "containers": [
            {"image": "gradle:latest", "command": ["gradle"], "args": ["jib", "--image=ttl.sh/example:1h"]}
        ]
    }
}


def env_of(node: dict[str, Any]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in node["env"])


def convert(text: str, key: str | None = None, index: int | None = None, **context: Any) -> dict[str, Any]:
    pipeline = read_pipeline_document(parse_pipeline(text, "pipeline.yml"))
    return job_from_step(pipeline, choose_step(pipeline, key, index), BuildContext(**context))


def test_upstream_readme_sample_becomes_the_job_buildkite_schedules() -> None:
    node = job_from_pipeline_file(FIXTURES / "upstream-readme-sample.yaml")
    env = env_of(node)
    assert node["command"] == ""
    assert node["agentQueryRules"] == ["queue=kubernetes"]
    assert node["label"] == "build image"
    assert json.loads(env["BUILDKITE_PLUGINS"]) == [{K8S: GRADLE}]
    assert env["BUILDKITE_PLUGINS"] == (
        '[{"' + K8S + '":{"podSpec":{"containers":[{"args":["jib","--image=ttl.sh/example:1h"],'
        '"command":["gradle"],"image":"gradle:latest"}]}}}]'
    )
    assert env["BUILDKITE_LABEL"] == "build image"
    assert env["BUILDKITE_JOB_ID"] == node["uuid"]
    facts = job_facts(parse_job(node))
    assert facts["plugin"] == GRADLE
    assert facts["tags"] == {"queue": "kubernetes"}


def test_upstream_readme_sample_through_the_default_policies() -> None:
    node = job_from_pipeline_file(FIXTURES / "upstream-readme-ssh-clone.yaml")
    decision = evaluate(load_policies([]), parse_job(node), parse_config({}, "test").expression_view())
    assert decision.admitted
    containers = decision.manifest["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["container-0", "agent", "checkout"]
    command = {e["name"]: e.get("value") for e in containers[0]["env"]}
    assert command["BUILDKITE_COMMAND"] == "gradle jib --image=ttl.sh/example:1h"
    assert {"secretRef": {"name": "agent-stack-k8s"}} in containers[2]["envFrom"]
    assert {"name": "BUILDKITE_PLUGINS"} not in [{"name": e["name"]} for e in containers[0]["env"]]


def test_the_node_carries_the_trusted_pipeline_build_and_step_facts() -> None:
    node = convert(
        "steps:\n- {key: build, label: Build, command: make}\n",
        org="acme",
        pipeline="web",
        branch="feature/x",
        commit="abc123",
        repository="git@github.com:acme/web.git",
    )
    assert node["pipeline"] == {
        "slug": "web",
        "name": "web",
        "repository": {"url": "git@github.com:acme/web.git"},
    }
    assert node["build"] == {
        "number": 1,
        "branch": "feature/x",
        "commit": "abc123",
        "message": "Dry run",
        "source": {"name": "ui"},
    }
    assert node["step"] == {"key": "build"}
    env = env_of(node)
    assert env["BUILDKITE_ORGANIZATION_SLUG"] == "acme"
    assert env["BUILDKITE_PIPELINE_SLUG"] == "web"
    assert env["BUILDKITE_BRANCH"] == "feature/x"
    assert env["BUILDKITE_COMMIT"] == "abc123"
    assert env["BUILDKITE_REPO"] == "git@github.com:acme/web.git"
    assert env["BUILDKITE_BUILD_URL"] == "https://buildkite.com/acme/web/builds/1"
    assert env["BUILDKITE_STEP_KEY"] == "build"
    assert convert("steps:\n- {key: build, command: make}\n", org="acme") == convert(
        "steps:\n- {key: build, command: make}\n", org="acme"
    ), "the same inputs give the same job"


def test_group_steps_are_opened_in_place() -> None:
    text = (FIXTURES / "group-step.yaml").read_text(encoding="utf-8")
    pipeline = read_pipeline_document(parse_pipeline(text, "group-step.yaml"))
    assert [(s.index, s.kind) for s in pipeline.steps] == [(0, "command"), (1, "command"), (2, "wait")]
    node = convert(text, index=1)
    assert node["command"] == "make integration"
    assert json.loads(env_of(node)["BUILDKITE_PLUGINS"]) == [
        {K8S: {"extraVolumeMounts": [{"name": "cache", "mountpath": "/cache"}]}}
    ]
    with pytest.raises(StepError, match="the pipeline has 2 command steps: choose one"):
        convert(text)


def test_an_agents_list_giving_a_tag_twice_keeps_both_and_the_job_is_refused() -> None:
    """Buildkite's agent query rules keep a repeated tag; the dry run must not pick one for the author."""
    text = """
agents: [os=linux, queue=kubernetes, arch=arm64]
steps:
  - command: make
    agents: [queue=small, arch=amd64, queue=large]
"""
    node = convert(text)
    assert node["agentQueryRules"] == ["os=linux", "queue=small", "queue=large", "arch=amd64"]
    decision = evaluate(
        load_policies([]), parse_job(node), parse_config({"tags": ["queue=small"]}, "test").expression_view()
    )
    assert not decision.admitted
    assert (
        "the agent query rules give queue more than once (queue=small, queue=large)"
        in decision.denials[0].message
    )


def test_pipeline_and_step_env_and_agents_merge_with_the_step_winning() -> None:
    text = """
env: {LOG_LEVEL: info, SHARED: pipeline}
agents: {queue: kubernetes, os: linux}
steps:
  - command: [make deps, make test]
    env: {SHARED: step, RETRIES: 3, DEBUG: true}
    agents: [queue=gpu]
    artifact_paths: [dist/*, logs/*.txt]
    timeout_in_minutes: 30
    parallelism: 4
    priority: 5
"""
    node = convert(text)
    env = env_of(node)
    assert node["command"] == "make deps\nmake test"
    assert env["BUILDKITE_COMMAND"] == "make deps\nmake test"
    assert node["agentQueryRules"] == ["queue=gpu", "os=linux"]
    assert (env["LOG_LEVEL"], env["SHARED"], env["RETRIES"], env["DEBUG"]) == ("info", "step", "3", "true")
    assert env["BUILDKITE_ARTIFACT_PATHS"] == "dist/*;logs/*.txt"
    assert env["BUILDKITE_TIMEOUT"] == "30"
    assert (env["BUILDKITE_PARALLEL_JOB"], env["BUILDKITE_PARALLEL_JOB_COUNT"]) == ("0", "4")
    assert node["priority"] == {"number": 5}
    assert "BUILDKITE_PLUGINS" not in env
    names = [entry.split("=", 1)[0] for entry in node["env"]]
    assert names.index("BUILDKITE_COMMAND") < names.index("LOG_LEVEL") < names.index("RETRIES")


@pytest.mark.parametrize(
    ("source", "full"),
    [
        ("kubernetes", K8S),
        ("docker#v5.0.0", "github.com/buildkite-plugins/docker-buildkite-plugin#v5.0.0"),
        ("my-org/cache#v1.2", "github.com/my-org/cache-buildkite-plugin#v1.2"),
        ("github.com/my-org/cache-buildkite-plugin#v1", "github.com/my-org/cache-buildkite-plugin#v1"),
        ("ssh://git@github.com/fake-org/fake-plugin.git", "ssh://git@github.com/fake-org/fake-plugin.git"),
        ("https://example.com/p.git#main", "https://example.com/p.git#main"),
        ("git@github.com:org/thing.git", "git@github.com:org/thing.git"),
        ("./local-plugin", "./local-plugin"),
        ("/abs/plugin", "/abs/plugin"),
    ],
)
def test_plugin_sources_expand_as_buildkite_does(source: str, full: str) -> None:
    assert full_source(source) == full


def test_plugin_forms_and_serialisation() -> None:
    listed = canonical_plugins(["docker-login#v3.0.0", {"docker#v5": {"image": "a", "env": []}}, {"x": {}}])
    assert listed == [
        {"github.com/buildkite-plugins/docker-login-buildkite-plugin#v3.0.0": None},
        {"github.com/buildkite-plugins/docker-buildkite-plugin#v5": {"image": "a", "env": []}},
        {"github.com/buildkite-plugins/x-buildkite-plugin": None},
    ]
    mapped = canonical_plugins({"kubernetes": {"b": 1, "a": "<&>"}, "artifacts#v1.9.0": {"download": "x"}})
    assert plugins_env(mapped) == (
        '[{"' + K8S + '":{"a":"\\u003c\\u0026\\u003e","b":1}},'
        '{"github.com/buildkite-plugins/artifacts-buildkite-plugin#v1.9.0":{"download":"x"}}]'
    )
    assert json.loads(plugins_env(mapped))[0][K8S]["a"] == "<&>"


@pytest.mark.parametrize(
    ("text", "selector", "message"),
    [
        (
            "steps: [wait, {command: x}]\n",
            {"index": 0},
            "step 0 at steps[0] is a wait step, not a command step",
        ),
        ("steps: [{block: Deploy, key: ok}]\n", {"key": "ok"}, "is a block step"),
        ("steps: [{input: Name}]\n", {"index": 0}, "is an input step"),
        ("steps: [{trigger: other}]\n", {"index": 0}, "is a trigger step"),
        ("steps: [{command: x, matrix: [a, b]}]\n", {}, "has a matrix"),
        ("steps: [{command: x}]\n", {"index": 3}, "step index 3 is out of range"),
        ("steps: [{command: x}]\n", {"key": "nope"}, "no step has key 'nope'"),
        ("{env: {}}\n", {}, "the pipeline has no 'steps' list"),
        ("steps: [wait]\n", {}, "the pipeline has 0 command steps"),
    ],
)
def test_steps_that_are_not_jobs_are_clear_errors(text: str, selector: dict[str, Any], message: str) -> None:
    with pytest.raises(StepError, match=message.replace("[", r"\[").replace("?", r"\?")):
        convert(text, **selector)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps: [{command: x, plugins: [{a: 1, b: 2}]}]\n",
            r"steps\[0\].plugins\[0\]: a plugin entry must be",
        ),
        ("steps: [{command: x, env: [NOEQUALS]}]\n", r"steps\[0\].env\[0\]: expected a NAME=VALUE string"),
        (
            "steps: [{command: x, env: {A: {b: 1}}}]\n",
            r"steps\[0\].env.A: expected a string, a number or a boolean",
        ),
        ("steps: [{command: [1, 2]}]\n", r"steps\[0\].command: expected a string or a list of strings"),
        ("steps: [{command: x, parallelism: 0}]\n", r"steps\[0\].parallelism: expected a positive integer"),
    ],
)
def test_malformed_steps_name_the_field(text: str, message: str) -> None:
    with pytest.raises(PipelineJobError, match=message):
        convert(text)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.yml"
    bad.write_text("steps: [\n", encoding="utf-8")
    with pytest.raises(PipelineJobError, match=f"^{bad}: invalid YAML"):
        job_from_pipeline_file(bad)
    bad.write_text("steps: [wait]\n", encoding="utf-8")
    with pytest.raises(PipelineJobError, match=f"^{bad}: the pipeline has 0 command steps"):
        job_from_pipeline_file(bad)


def test_the_image_attribute_becomes_buildkite_image_and_a_step_overrides_the_pipeline() -> None:
    text = "image: ruby:alpine\nsteps:\n- {key: a, command: ruby -v}\n"
    text += "- {key: b, command: yarn -v, image: node:22-alpine}\n"
    assert env_of(convert(text, key="a"))["BUILDKITE_IMAGE"] == "ruby:alpine"
    assert env_of(convert(text, key="b"))["BUILDKITE_IMAGE"] == "node:22-alpine"
    assert "BUILDKITE_IMAGE" not in env_of(convert("steps:\n- {command: make}\n"))
    with pytest.raises(PipelineJobError, match=r"image: expected an image name, got 3"):
        convert("steps:\n- {command: make, image: 3}\n")
