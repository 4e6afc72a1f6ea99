"""``engine lint`` validates every kubernetes plugin block of a pipeline strictly and names each
problem by its path in the pipeline document."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from engine.lint import (
    LATER_FIELD,
    LintError,
    LintProblem,
    LintResult,
    kubernetes_plugin_blocks,
    lint_pipeline,
    lint_pipeline_document,
    load_pipeline,
)

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"
KUBERNETES_PLUGIN = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"


def pipeline_with(plugin_key: str, config: Any) -> dict[str, Any]:
    return {"steps": [{"command": "make", "plugins": [{plugin_key: config}]}]}


def test_a_valid_pipeline_has_no_problems() -> None:
    result = lint_pipeline(FIXTURES / "valid.yaml")
    assert result.problems == ()
    assert result.ok
    assert result.exit_code == 0
    assert result.plugin_blocks == 1
    assert result.render() == [f"{FIXTURES / 'valid.yaml'}: valid (1 kubernetes plugin block)"]


def test_unknown_fields_are_problems_with_a_suggestion() -> None:
    result = lint_pipeline(FIXTURES / "unknown-field.yaml")
    assert result.problems == (
        LintProblem(
            "steps[0].plugins[0].kubernetes.podSpec.containers[0].imagee",
            'unknown field (did you mean "image"?)',
        ),
        LintProblem("steps[0].plugins[0].kubernetes.podTemplate", LATER_FIELD),
    )
    assert result.exit_code == 1
    assert [p.path for p in lint_pipeline(FIXTURES / "unknown-field.yaml", head=True).problems] == [
        "steps[0].plugins[0].kubernetes.podSpec.containers[0].imagee"
    ]


def test_wrong_types_are_problems_in_the_plugin_checkers_words() -> None:
    plugin = "steps[1].plugins[0].kubernetes"
    assert lint_pipeline(FIXTURES / "wrong-type.yaml").problems == (
        LintProblem(f"{plugin}.checkout.skip", 'expected a boolean, got the string "yes"'),
        LintProblem(
            f"{plugin}.commandParams.interposer",
            'invalid command interposer "bash" (valid: "", "buildkite", "legacy", "vector")',
        ),
        LintProblem(f"{plugin}.podSpec.containers[0].env[0].value", "expected a string, got the number 3"),
        LintProblem(
            f"{plugin}.podSpec.containers[0].ports[0].containerPort",
            'expected an integer, got the string "http"',
        ),
        LintProblem(
            f"{plugin}.podSpec.containers[0].resources.limits.memory",
            'invalid quantity "lots" (expected a number or a string like "500m" or "1Gi")',
        ),
    )


def test_plugin_blocks_inside_group_steps_are_checked() -> None:
    result = lint_pipeline(FIXTURES / "group-step.yaml")
    assert result.plugin_blocks == 2
    assert result.problems == (
        LintProblem(
            "steps[0].steps[1].plugins[0].kubernetes.extraVolumeMounts[0].mountpath",
            'unknown field (did you mean "mountPath"?)',
        ),
    )


def test_map_form_plugins_and_the_canonical_key_with_a_ref_are_checked() -> None:
    result = lint_pipeline(FIXTURES / "map-form.yaml")
    assert result.plugin_blocks == 2
    assert result.problems == (
        LintProblem(
            f'steps[0].plugins["{KUBERNETES_PLUGIN}#v1.0.0"].metadata.labels.team',
            "expected a string, got the number 42",
        ),
    )


def test_a_plugin_config_must_be_an_object_and_an_entry_must_name_one_plugin() -> None:
    assert lint_pipeline(FIXTURES / "not-a-list.yaml").problems == (
        LintProblem("steps[0].plugins[0].kubernetes", "expected an object, got a list"),
        LintProblem("steps[0].plugins[1]", "a plugin entry must name exactly one plugin, got 2 keys"),
    )


def test_problems_render_one_line_each_with_file_and_path() -> None:
    result = LintResult(
        file=pathlib.Path("pipeline.yml"),
        problems=(
            LintProblem("steps[0].plugins", "expected a list or an object"),
            LintProblem("", "the pipeline is empty"),
        ),
        plugin_blocks=0,
    )
    assert result.render() == [
        "pipeline.yml: steps[0].plugins: expected a list or an object",
        "pipeline.yml: the pipeline is empty",
    ]


@pytest.mark.parametrize(
    "key", ["kubernetes", "kubernetes#v1", KUBERNETES_PLUGIN, f"{KUBERNETES_PLUGIN}#main"]
)
def test_every_kubernetes_plugin_key_is_validated(key: str) -> None:
    problems = lint_pipeline_document(pipeline_with(key, {"sidecar": []}))
    assert [p.message for p in problems] == ['unknown field (did you mean "sidecars"?)']
    assert problems[0].path.startswith("steps[0].plugins[0]")


@pytest.mark.parametrize(
    "key",
    [
        "docker#v5.0.0",
        "kubernetes-helper",
        "my-org/kubernetes",
        "github.com/buildkite-plugins/docker-buildkite-plugin",
    ],
)
def test_other_plugins_are_not_validated(key: str) -> None:
    document = pipeline_with(key, {"sidecar": [], "podSpec": "anything", "whatever": 1})
    assert lint_pipeline_document(document) == []
    assert kubernetes_plugin_blocks(document) == []


def test_a_top_level_list_of_steps_is_a_pipeline() -> None:
    document = [{"command": "make", "plugins": {"kubernetes": {"checkout": {"skip": 1}}}}, "wait"]
    assert lint_pipeline_document(document) == [
        LintProblem("[0].plugins.kubernetes.checkout.skip", "expected a boolean, got the number 1")
    ]


def test_plugin_blocks_are_found_in_document_order() -> None:
    document = {
        "steps": [
            {"plugins": [{"docker#v5": {}}, {"kubernetes": {"a": 1}}]},
            "wait",
            {"group": "g", "steps": [{"plugins": {KUBERNETES_PLUGIN: {"b": 2}}}]},
        ]
    }
    assert kubernetes_plugin_blocks(document) == [
        (("steps", 0, "plugins", 1, "kubernetes"), {"a": 1}),
        (("steps", 2, "steps", 0, "plugins", KUBERNETES_PLUGIN), {"b": 2}),
    ]


def test_a_null_plugin_config_is_valid() -> None:
    assert lint_pipeline_document(pipeline_with("kubernetes", None)) == []


def test_other_step_keys_are_permitted() -> None:
    document = {
        "agents": {"queue": "k8s"},
        "notify": [{"slack": "#ci"}],
        "steps": [{"command": "make", "retry": {"automatic": True}, "soft_fail": True, "concurrency": 1}],
    }
    assert lint_pipeline_document(document) == []


def test_problems_are_sorted_with_numeric_indexes() -> None:
    steps: list[Any] = [{"command": "x"} for _ in range(11)]
    steps[2] = {"plugins": [{"kubernetes": {"checkout": {"skip": "a"}}}]}
    steps[10] = {"plugins": [{"kubernetes": {"checkout": {"skip": "b"}}}]}
    paths = [p.path for p in lint_pipeline_document({"steps": steps})]
    assert paths == [
        "steps[2].plugins[0].kubernetes.checkout.skip",
        "steps[10].plugins[0].kubernetes.checkout.skip",
    ]


def test_an_empty_file_is_a_problem_not_an_error(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "pipeline.yml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    result = lint_pipeline(empty)
    assert result.problems == (LintProblem("", "the pipeline is empty"),)
    assert result.render() == [f"{empty}:1:1: the pipeline is empty"]


def test_yaml_is_read_like_buildkite_reads_it(tmp_path: pathlib.Path) -> None:
    """yes/on are strings and dates stay strings (YAML 1.2 core), true/false are booleans."""
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "steps:\n"
        "  - plugins:\n"
        "      - kubernetes:\n"
        "          checkout: {skip: true, noSubmodules: on}\n"
        "          podSpec:\n"
        "            containers:\n"
        "              - env: [{name: A, value: yes}, {name: B, value: 2024-01-01}]\n",
        encoding="utf-8",
    )
    assert load_pipeline(pipeline)["steps"][0]["plugins"][0]["kubernetes"]["podSpec"]["containers"][0][
        "env"
    ] == [
        {"name": "A", "value": "yes"},
        {"name": "B", "value": "2024-01-01"},
    ]
    assert lint_pipeline(pipeline).problems == (
        LintProblem(
            "steps[0].plugins[0].kubernetes.checkout.noSubmodules", 'expected a boolean, got the string "on"'
        ),
    )


def test_a_missing_file_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(LintError) as raised:
        lint_pipeline(missing)
    message = str(raised.value)
    assert message.startswith(f"{missing}: cannot read the file: ")
    assert "\n" not in message


def test_a_directory_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(LintError, match=r"cannot read the file") as raised:
        lint_pipeline(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path}: ")


def test_invalid_yaml_is_a_one_line_error_with_its_position(tmp_path: pathlib.Path) -> None:
    broken = tmp_path / "pipeline.yml"
    broken.write_text("steps:\n  - command: [unclosed\n  - wait\n", encoding="utf-8")
    with pytest.raises(LintError) as raised:
        lint_pipeline(broken)
    message = str(raised.value)
    assert message.startswith(f"{broken}: invalid YAML at line ")
    assert "\n" not in message


def test_several_yaml_documents_are_an_error(tmp_path: pathlib.Path) -> None:
    two = tmp_path / "pipeline.yml"
    two.write_text("steps: []\n---\nsteps: []\n", encoding="utf-8")
    with pytest.raises(LintError, match=r"invalid YAML"):
        lint_pipeline(two)


def test_a_binary_file_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    binary = tmp_path / "pipeline.yml"
    binary.write_bytes(b"\xff\xfe\x00steps")
    with pytest.raises(LintError, match=r"not a UTF-8 text file"):
        lint_pipeline(binary)


def test_non_string_yaml_keys_are_read_as_strings(tmp_path: pathlib.Path) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "steps:\n  - plugins:\n      1: x\n      true: y\n      kubernetes: {metadata: {labels: {2: z}}}\n",
        encoding="utf-8",
    )
    assert load_pipeline(pipeline)["steps"][0]["plugins"] == {
        "1": "x",
        "true": "y",
        "kubernetes": {"metadata": {"labels": {"2": "z"}}},
    }
    assert lint_pipeline(pipeline).ok


def test_anchors_and_merge_keys_are_resolved(tmp_path: pathlib.Path) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "x-sidecar: &sidecar {image: redis, imagee: typo}\n"
        "steps:\n"
        "  - plugins:\n"
        "      - kubernetes:\n"
        "          sidecars: [{<<: *sidecar, name: r}]\n",
        encoding="utf-8",
    )
    [problem] = lint_pipeline(pipeline).problems
    assert problem == LintProblem(
        "steps[0].plugins[0].kubernetes.sidecars[0].imagee", 'unknown field (did you mean "image"?)'
    )


def test_problems_name_their_line_and_column(tmp_path: pathlib.Path) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "steps:\n"
        "  - command: make\n"
        "    plugins:\n"
        "      - kubernetes:\n"
        "          comandParams: {interposer: vector}\n"
        "          checkout:\n"
        "            skip: maybe\n",
        encoding="utf-8",
    )
    assert lint_pipeline(pipeline).render() == [
        f"{pipeline}:7:13: steps[0].plugins[0].kubernetes.checkout.skip:"
        ' expected a boolean, got the string "maybe"',
        f"{pipeline}:5:11: steps[0].plugins[0].kubernetes.comandParams:"
        ' unknown field (did you mean "commandParams"?)',
    ]
