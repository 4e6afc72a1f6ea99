"""The contract the engine relies on: ``compile_fast`` and the programs it returns."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from engine.core.cel_fast import CelError, Unsupported, compile_fast
from tests.unit.cel_fast import FUNCTIONS, assert_agrees


def run(source: str, activation: Mapping[str, Any] | None = None, **functions: Any) -> Any:
    return compile_fast(source, {**FUNCTIONS, **functions})({} if activation is None else activation)


def test_a_program_evaluates_against_any_mapping() -> None:
    class Roots(Mapping[str, Any]):
        def __getitem__(self, name: str) -> Any:
            if name == "job":
                return {"uuid": "u-1"}
            raise KeyError(name)

        def __iter__(self) -> Iterator[str]:
            return iter(["job"])

        def __len__(self) -> int:
            return 1

    assert compile_fast("'buildkite-' + job.uuid", FUNCTIONS)(Roots()) == "buildkite-u-1"


def test_a_missing_root_is_an_undeclared_reference() -> None:
    with pytest.raises(CelError, match=r"^undeclared reference to '__v_podSpec'$"):
        run("__v_podSpec.containers", {"job": {}})


def test_a_missing_key_names_the_key() -> None:
    with pytest.raises(CelError, match="no such key: 'podSpec'"):
        run("plugin.podSpec", {"plugin": {}})


def test_a_failing_function_reports_its_name_and_first_line() -> None:
    def explode(value: Any) -> Any:
        raise ValueError(f"bad value {value}\nsecond line")

    with pytest.raises(CelError) as raised:
        run("explode(1)", explode=explode)
    assert str(raised.value) == "explode(): bad value 1"


def test_method_syntax_passes_the_receiver_first() -> None:
    assert run("'a'.pair('b')", pair=lambda x, y: [x, y]) == ["a", "b"]
    assert run("[1, 2].pair(3)", pair=lambda x, y: [x, y]) == [[1, 2], 3]


def test_dotted_names_call_namespaced_functions() -> None:
    def increment(value: int) -> int:
        return value + 1

    assert run("ns.f(1)", {"ns": {"f": 5}}, **{"ns.f": increment}) == 2
    assert run("ns.f", {"ns": {"f": 5}}) == 5
    assert run("ns.f(1)", {"ns": {"f": 5}}, f=lambda receiver, x: [receiver, x]) == [{"f": 5}, 1]


def test_function_results_become_cel_values() -> None:
    assert run("pairs()", pairs=lambda: (1, 2)) == [1, 2]
    assert run("huge()", huge=lambda: 10**30) == 1e30
    with pytest.raises(CelError, match="unsigned"):
        run("unsigned()", unsigned=lambda: 2**63)
    with pytest.raises(CelError, match="set"):
        run("things()", things=lambda: {1, 2})


def test_maps_built_by_an_expression_keep_insertion_order() -> None:
    assert list(run("{'b': 1, 'a': 2, 'c': 3}")) == ["b", "a", "c"]
    assert list(run("{k: 1, 'a': 2}", {"k": "z"})) == ["z", "a"]


def test_results_are_plain_python_values() -> None:
    result = run("{'n': 1, 'd': 1.0, 'b': true, 'z': null, 'l': [1], 's': 'x'}")
    assert [type(v) for v in result.values()] == [int, float, bool, type(None), list, str]


def test_the_activation_is_never_modified() -> None:
    activation = {
        "plugin": {"podSpec": {"containers": [{"name": "a", "env": [{"name": "X"}]}]}},
        "items": [3, 1, 2],
        "tags": {"queue": "q"},
    }
    before = copy.deepcopy(activation)
    for source in [
        "plugin.podSpec.containers + [{'name': 'b'}]",
        "items.map(i, i * 2)",
        "items.sort()",
        "items.reverse()",
        "merge(tags, {'queue': 'other'})",
        "[items, items].flatten()",
        "plugin.podSpec.containers.filter(c, has(c.env))",
        "items + {'k': 1}",
    ]:
        run(source, activation)
    assert activation == before


def test_a_program_is_safe_to_share_between_threads() -> None:
    program = compile_fast("xs.map(x, ys.map(y, x * 10 + y)).flatten()", FUNCTIONS)
    failures: list[str] = []

    def worker(offset: int) -> None:
        xs, ys = [offset, offset + 1], [1, 2, 3]
        expected = [x * 10 + y for x in xs for y in ys]
        for _ in range(2000):
            if program({"xs": xs, "ys": ys}) != expected:
                failures.append(f"thread {offset}")
                return

    threads = [threading.Thread(target=worker, args=(n * 100,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_comprehension_variables_shadow_roots_only_inside() -> None:
    activation = {"x": "root", "xs": [1, 2]}
    assert run("xs.map(x, x) + [x]", activation) == [1, 2, "root"]
    assert_agrees("xs.map(x, x) + [x]", activation)


def test_compile_errors_are_unsupported_not_crashes() -> None:
    for source in ["1 +", "'unterminated", "a.b(", "1u", "{{}}"]:
        with pytest.raises(Unsupported):
            compile_fast(source, FUNCTIONS)


def test_error_messages_are_one_line() -> None:
    for source in [
        "1 / 0",
        "m.z",
        "[1][5]",
        "1 + 'a'",
        "int('x')",
        "l.all(x, x)",
        "x",
        "false ? 1 : 1 / 0",
    ]:
        with pytest.raises(CelError) as raised:
            run(source, {"m": {}, "l": [1]})
        assert "\n" not in str(raised.value)


def test_values_outside_json_fail_as_cel_errors_not_crashes() -> None:
    with pytest.raises(CelError, match="OverflowError"):
        run("x == 1.0", {"x": 10**400})
