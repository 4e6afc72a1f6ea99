"""The CEL binding: compile-time checks, evaluation, variables, helper failures."""

from __future__ import annotations

import pytest

from engine.core.expressions import (
    Activation,
    EvaluationError,
    ExpressionError,
    HelperRegistry,
    compile_expression,
    referenced_variables,
    var_root,
)

REGISTRY = HelperRegistry({"shout": lambda s: s.upper() + "!", "explode": lambda: 1 / 0})


def compile_(source: str):  # type: ignore[no-untyped-def]
    return compile_expression(source, REGISTRY)


def test_evaluates_against_context_roots() -> None:
    activation = Activation({"tags": {"queue": "gpu"}, "pipeline": {"slug": "ml-train"}}, REGISTRY)
    expression = compile_('tags.queue == "gpu" && pipeline.slug.startsWith("ml-")')
    assert activation.evaluate(expression) is True
    activation.set("tags", {"queue": "cpu"})
    assert activation.evaluate(expression) is False


def test_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_("job.uuid ==\n  )")
    assert caught.value.line == 2
    assert caught.value.column == 3
    assert "Syntax error" in caught.value.message


def test_unknown_variable_is_a_compile_error_with_position() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_('tags.queue == "a" || piepline.slug == "x"')
    assert "unknown variable 'piepline'" in caught.value.message
    assert caught.value.column == 22


def test_unknown_function_is_a_compile_error() -> None:
    with pytest.raises(ExpressionError, match="unknown function 'whisper'"):
        compile_('whisper("a")')


def test_comprehension_variables_are_not_unknown() -> None:
    expression = compile_("tags.all(k, k.startsWith('q')) && [1, 2].exists(n, n > 1)")
    assert Activation({"tags": {"queue": "x"}}, REGISTRY).evaluate(expression) is True


def test_stdlib_and_registered_helpers_are_callable() -> None:
    expression = compile_('shout(["a", "b"].join("-"))')
    assert Activation({}, REGISTRY).evaluate(expression) == "A-B!"


def test_vars_are_rewritten_to_their_own_roots() -> None:
    expression = compile_("vars.count + 1 == 3 && vars.name == 'x'")
    assert sorted(referenced_variables(expression)) == ["count", "name"]
    activation = Activation({var_root("count"): 2, var_root("name"): "x"}, REGISTRY)
    assert activation.evaluate(expression) is True


def test_vars_inside_string_literals_are_left_alone() -> None:
    expression = compile_('"vars.x" + string(vars.y)')
    assert referenced_variables(expression) == ("y",)
    assert Activation({var_root("y"): 1}, REGISTRY).evaluate(expression) == "vars.x1"


def test_bare_vars_is_rejected() -> None:
    with pytest.raises(ExpressionError, match=r"vars\.<name>"):
        compile_("size(vars) > 0")


def test_member_chain_fast_path_returns_the_same_object() -> None:
    shared = [{"name": "A", "value": "1"}]
    activation = Activation({var_root("env"): shared, "job": {"env": {"X": "1"}}}, REGISTRY)
    assert activation.evaluate(compile_("vars.env")) is shared
    assert activation.evaluate(compile_("job.env.X")) == "1"


def test_member_chain_missing_key_is_an_evaluation_error() -> None:
    activation = Activation({"plugin": {"podSpec": {}}}, REGISTRY)
    with pytest.raises(EvaluationError, match="no such key: 'checkout' in plugin"):
        activation.evaluate(compile_("plugin.checkout"))


def test_member_chain_through_null_is_an_evaluation_error() -> None:
    activation = Activation({"plugin": None}, REGISTRY)
    with pytest.raises(EvaluationError, match="plugin is null"):
        activation.evaluate(compile_("plugin.podSpec"))


def test_undefined_variable_at_runtime() -> None:
    with pytest.raises(EvaluationError, match=r"vars\.missing is not defined"):
        Activation({}, REGISTRY).evaluate(compile_("vars.missing + 1"))


def test_runtime_type_error_is_one_clean_line() -> None:
    with pytest.raises(EvaluationError) as caught:
        Activation({}, REGISTRY).evaluate(compile_('1 + "a"'))
    assert "\n" not in str(caught.value)
    assert "Check " not in str(caught.value)


def test_failing_helper_reports_its_own_message(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EvaluationError, match=r"explode\(\): division by zero"):
        Activation({}, REGISTRY).evaluate(compile_("explode()"))
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_maps_from_the_cel_library_come_back_with_sorted_keys() -> None:
    slow = HelperRegistry({}, fast=False)
    expression = compile_expression('{"b": 1, "a": {"d": 2, "c": 3}}', slow)
    assert expression.fast is None
    result = Activation({}, slow).evaluate(expression)
    assert list(result) == ["a", "b"]
    assert list(result["a"]) == ["c", "d"]


def test_fast_path_keeps_map_literal_order() -> None:
    expression = compile_("{'b': 1, 'a': 2}")
    assert expression.fast is not None
    assert list(Activation({}, REGISTRY).evaluate(expression)) == ["b", "a"]


def test_fast_and_library_paths_agree_on_errors_being_errors() -> None:
    slow = HelperRegistry({"explode": lambda: 1 / 0}, fast=False)
    for registry in (REGISTRY, slow):
        with pytest.raises(EvaluationError, match=r"explode\(\): division by zero"):
            Activation({}, registry).evaluate(compile_expression("explode()", registry))
