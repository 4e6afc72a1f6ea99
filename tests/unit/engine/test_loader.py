"""Loading policy files: ordering, replacement, and every error path with FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.compiler import PolicyError
from engine.model.policy import Phase
from engine.policy.loader import compile_source, load_policies
from engine.resources import default_policies_dir

from .policy_text import policy

RULE = "rules:\n- name: r\n  patch: {metadata: {labels: {a: b}}}\n"


def problems_of(text: str, file: str = "p.yaml") -> list[str]:
    with pytest.raises(PolicyError) as caught:
        compile_source(text, file)
    return caught.value.problems


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_policies_are_ordered_by_phase_then_file_then_document(tmp_path: Path) -> None:
    write(
        tmp_path, "b.yaml", policy("b-build", "build", RULE) + "---\n" + policy("b-enforce", "enforce", RULE)
    )
    write(
        tmp_path,
        "a.yaml",
        policy("a-customize", "customize", RULE) + "---\n" + policy("a-build", "build", RULE),
    )
    loaded = load_policies([tmp_path], include_defaults=False)
    assert [p.name for p in loaded.policies] == ["a-build", "b-build", "a-customize", "b-enforce"]
    assert [p.phase for p in loaded.policies] == [Phase.BUILD, Phase.BUILD, Phase.CUSTOMIZE, Phase.ENFORCE]


def test_hidden_entries_and_other_suffixes_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", policy("one", "build", RULE))
    write(tmp_path, ".hidden.yaml", "not: [valid")
    write(tmp_path, "notes.txt", "ignored")
    (tmp_path / "..data").mkdir()
    assert [p.name for p in load_policies([tmp_path], include_defaults=False).policies] == ["one"]


def test_same_name_replaces_in_the_earlier_slot(tmp_path: Path) -> None:
    first = write(tmp_path, "1.yaml", policy("x", "build", RULE) + "---\n" + policy("y", "build", RULE))
    second = write(
        tmp_path, "2.yaml", policy("x", "build", "rules:\n- name: replaced\n  patch: {kind: Job}\n")
    )
    loaded = load_policies([first, second], include_defaults=False)
    assert [p.name for p in loaded.policies] == ["x", "y"]
    assert loaded.policies[0].rules[0].name == "replaced"
    assert loaded.replacements[0].name == "x"
    assert loaded.replacements[0].replaced.startswith(str(first))
    assert loaded.replacements[0].by.startswith(str(second))


def test_default_policies_load_and_reloading_them_is_idempotent() -> None:
    defaults = load_policies([], include_defaults=True)
    again = load_policies([default_policies_dir()], include_defaults=True)
    assert [p.name for p in again.policies] == [p.name for p in defaults.policies]
    assert len(defaults) > 5


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policies([tmp_path / "nope"], include_defaults=False)
    assert caught.value.problems == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_yaml_syntax_error_has_position() -> None:
    [problem] = problems_of("metadata: {name: x\nspec: [")
    assert problem.startswith("p.yaml:2:")
    assert "expected" in problem


def test_duplicate_keys_are_an_error() -> None:
    text = policy("x", "build", RULE) + "kind: Policy\n"
    [problem] = problems_of(text)
    assert problem.startswith("p.yaml:")
    assert "duplicate key 'kind'" in problem


def test_unknown_field_points_at_the_key() -> None:
    text = policy("x", "build", "rules:\n- name: r\n  pacth: {}\n  patch: {kind: Job}\n")
    [problem] = problems_of(text)
    assert problem == "p.yaml:8:5: spec.rules[0].pacth: unknown field 'pacth'"


def test_missing_field_and_bad_phase() -> None:
    text = "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec:\n  phase: later\n"
    [problem] = problems_of(text)
    assert problem.startswith("p.yaml:5:10: spec.phase: Input should be 'build', 'customize' or 'enforce'")


def test_rule_needs_exactly_one_kind() -> None:
    text = policy("x", "build", "rules:\n- name: r\n  patch: {}\n  defaults: {}\n")
    [problem] = problems_of(text)
    assert "a rule needs exactly one of: patch, jsonPatch, defaults, deny, warn, append" in problem
    assert problem.startswith("p.yaml:7:")


def test_bad_target_and_bad_name() -> None:
    text = policy("Bad_Name", "build", "rules:\n- target: $everything\n  patch: {}\n")
    found = problems_of(text)
    assert any("metadata.name" in p for p in found)
    assert any("spec.rules[0].target" in p for p in found)


def test_cel_syntax_error_points_into_the_file() -> None:
    text = policy("x", "build", "rules:\n- name: r\n  when: 'tags.queue == '\n  patch: {}\n")
    [problem] = problems_of(text)
    assert problem.startswith("p.yaml:8:")
    assert "Syntax error" in problem


def test_unknown_variable_in_a_template() -> None:
    text = policy("x", "build", "rules:\n- name: r\n  patch: {metadata: {name: '${{ jb.uuid }}'}}\n")
    [problem] = problems_of(text)
    assert problem.startswith("p.yaml:8:")
    assert "unknown variable 'jb'" in problem


def test_undefined_vars_reference_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        policy("x", "build", "rules:\n- name: r\n  patch: {metadata: {name: '${{ vars.later }}'}}\n")
        + "---\n"
        + policy("y", "build", "variables:\n- name: later\n  value: 1\n"),
    )
    with pytest.raises(PolicyError) as caught:
        load_policies([path], include_defaults=False)
    [problem] = caught.value.problems
    assert "vars.later is not defined by any policy before 'x'" in problem


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "kind: [")
    write(tmp_path, "b.yaml", policy("b", "build", "rules:\n- name: r\n  when: '1 +'\n  patch: {}\n"))
    with pytest.raises(PolicyError) as caught:
        load_policies([tmp_path], include_defaults=False)
    files = [p.split(":", 1)[0] for p in caught.value.problems]
    assert files == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]


def test_not_a_policy_document() -> None:
    found = problems_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {phase: build}\n")
    assert any("apiVersion" in p for p in found)
    assert any("kind" in p for p in found)


def test_unknown_kubernetes_fields_in_what_a_rule_spells_out_are_load_errors(tmp_path: Path) -> None:
    file = tmp_path / "typos.yaml"
    file.write_text(
        """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: typos}
spec:
  phase: customize
  rules:
  - name: node
    patch:
      spec:
        template:
          spec:
            nodeSelectr: {pool: a}
            nodeSelector: {any.key/is: fine}
            tolerations: '${{ vars.computed }}'
  - name: limits
    target: $command
    defaults: {resourcs: {limits: {cpu: "1"}}}
  - name: pointer
    jsonPatch:
    - {op: add, path: /spec/bakoffLimit, value: 1}
    - {op: add, path: /spec/template/spec/tolerations/-, value: {key: a, efect: NoSchedule}}
  - name: add
    append: {path: /spec/template/spec/volumes, items: [{name: v, emptyDir: {mediumm: Memory}}]}
""",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as raised:
        load_policies([file], include_defaults=False)
    assert raised.value.problems == [
        f'{file}:12:13: unknown field "nodeSelectr" in PodSpec (did you mean "nodeSelector"?)',
        f'{file}:17:16: unknown field "resourcs" in Container (did you mean "resources"?)',
        f'{file}:20:17: /spec/bakoffLimit: unknown field "bakoffLimit" in JobSpec'
        ' (did you mean "backoffLimit"?)',
        f'{file}:21:74: unknown field "efect" in Toleration (did you mean "effect"?)',
        f'{file}:23:78: unknown field "mediumm" in EmptyDirVolumeSource (did you mean "medium"?)',
    ]


def test_a_file_without_documents_or_with_a_list_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# all commented out\n---\n", encoding="utf-8")
    listed = tmp_path / "listed.yaml"
    listed.write_text("- apiVersion: policy.agent-stack.dev/v1\n  kind: Policy\n", encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policies([empty, listed], include_defaults=False)
    assert raised.value.problems == [
        f"{empty}: the file holds no policy document (only comments or nothing); remove it or write a policy",
        f"{listed}:1:1: a policy document must be a map (apiVersion, kind, metadata, spec), got a list;"
        " put each policy in its own document, separated by lines of ---",
    ]


def test_a_target_typo_lists_the_valid_targets(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as raised:
        compile_source(
            policy("t", "customize", "rules:\n- {name: r, target: $comand, patch: {image: x}}\n"), "t.yaml"
        )
    [problem] = raised.value.problems
    assert problem == (
        't.yaml:7:23: spec.rules[0].target: "$comand" is not a target: did you mean "$command"? use one of '
        "$command, $checkout, $agent, $sidecars, $step, $init, $containers, $ephemeral, $all, or a container "
        "name (lowercase letters, digits and '-')"
    )
