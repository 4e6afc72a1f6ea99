"""``${{ }}`` values, interpolation, splicing and computed nulls."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.expressions import Activation, EvaluationError, HelperRegistry, compile_expression, var_root
from engine.core.templates import TemplateCompileError, compile_template, to_text

REGISTRY = HelperRegistry({})


def render(value: Any, **values: Any) -> Any:
    template = compile_template(value, lambda src: compile_expression(src, REGISTRY))
    return template.render(Activation({var_root(k): v for k, v in values.items()}, REGISTRY))


def test_whole_string_expression_keeps_its_type() -> None:
    assert render("${{ vars.n + 1 }}", n=1) == 2
    assert render("${{ vars.items }}", items=[1, 2]) == [1, 2]


def test_interpolation_renders_text() -> None:
    assert render("buildkite-${{ vars.id }}-${{ vars.n }}", id="abc", n=3) == "buildkite-abc-3"
    assert render("flag=${{ vars.on }}", on=True) == "flag=true"


def test_braces_inside_the_expression() -> None:
    assert render('${{ {"a": {"b": 1}}.a.b }}') == 1
    assert render('x${{ "}}" }}y') == "x}}y"


def test_escaped_opening_is_literal() -> None:
    assert render("$${{ not an expression }}") == "${{ not an expression }}"


def test_static_values_are_returned_unchanged() -> None:
    value = {"a": [1, {"b": "c"}]}
    template = compile_template(value, lambda src: compile_expression(src, REGISTRY))
    assert template.static
    assert template.render(Activation({}, REGISTRY)) is value


def test_splice_inserts_list_items() -> None:
    value = [{"name": "A"}, "...${{ vars.more }}", {"name": "Z"}]
    assert render(value, more=[{"name": "B"}, {"name": "C"}]) == [
        {"name": "A"},
        {"name": "B"},
        {"name": "C"},
        {"name": "Z"},
    ]


def test_splice_of_null_adds_nothing_and_of_a_scalar_fails() -> None:
    assert render(["a", "...${{ vars.none }}"], none=None) == ["a"]
    with pytest.raises(EvaluationError, match="must give a list"):
        render(["...${{ vars.n }}"], n=1)


def test_computed_null_omits_the_key_but_literal_null_stays() -> None:
    assert render({"a": "${{ vars.x }}", "b": None, "c": 1}, x=None) == {"b": None, "c": 1}


def test_compile_error_carries_the_path_inside_the_value() -> None:
    with pytest.raises(TemplateCompileError) as caught:
        compile_template(
            {"spec": {"x": ["ok", "${{ nope( }}"]}}, lambda src: compile_expression(src, REGISTRY)
        )
    assert caught.value.path == ("spec", "x", 1)


def test_unclosed_expression_is_an_error() -> None:
    with pytest.raises(TemplateCompileError, match="without a matching"):
        compile_template("${{ 1 + 1", lambda src: compile_expression(src, REGISTRY))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (600.0, "600"),
        (1.5, "1.5"),
        ([1, "a"], '[1,"a"]'),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text
