"""The generated plugin type table and schemas are current, self-contained, strict where they should
be, and agree with each other and with the plugin checker."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model import k8s_types
from engine.model.plugin import check_plugin
from engine.resources import schema_path
from tests.unit.test_plugin_model import INVALID_CASES, PLUGIN_OWN_STRUCTS, VALID_CASES, at

REPO = pathlib.Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "gen_k8s_schemas.py"
GENERATED = [
    pathlib.Path("engine/model/k8s_types.py"),
    pathlib.Path("schema/kubernetes-plugin.schema.json"),
    pathlib.Path("schema/pipeline.schema.json"),
]
SCHEMAS = ["kubernetes-plugin.schema.json", "pipeline.schema.json"]
# Go rejects 80.0 for an int field (the literal has a fraction); JSON Schema calls 80.0 an integer.
SCHEMA_IS_MORE_LENIENT = {("podSpecPatch.containers[0].ports[0].containerPort", "80.0")}


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return schema


def plugin_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load("kubernetes-plugin.schema.json"))


def all_values_of(key: str, node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from all_values_of(key, v)
    elif isinstance(node, list):
        for v in node:
            yield from all_values_of(key, v)


def test_checked_in_files_match_the_generator(tmp_path: pathlib.Path) -> None:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate is not installed, so the generator cannot run")
    run = subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode == 2 and "does not ship" in run.stderr:
        pytest.skip(run.stderr.strip())
    assert run.returncode == 0, run.stderr
    stale = [str(path) for path in GENERATED if (tmp_path / path).read_bytes() != (REPO / path).read_bytes()]
    assert stale == [], f"{', '.join(stale)} out of date: run scripts/gen_k8s_schemas.py"


@pytest.mark.parametrize("name", SCHEMAS)
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(load(name))


@pytest.mark.parametrize("name", SCHEMAS)
def test_schemas_are_self_contained(name: str) -> None:
    schema = load(name)
    refs = list(all_values_of("$ref", schema))
    assert refs
    assert [ref for ref in refs if str(ref).startswith("http")] == []
    assert [ref for ref in refs if not str(ref).startswith("#/$defs/")] == []
    assert sorted({ref.removeprefix("#/$defs/") for ref in refs} - set(schema["$defs"])) == []


def test_plugin_and_kubernetes_objects_are_strict_and_described() -> None:
    defs = load("kubernetes-plugin.schema.json")["$defs"]
    structs = [name for name in defs if "properties" in defs[name]]
    assert sorted(structs) == sorted(k8s_types.STRUCTS)
    assert [name for name in structs if defs[name].get("additionalProperties") is not False] == []
    assert [name for name in defs if not defs[name].get("description")] == []
    plugin_fields = [
        (name, field, prop) for name in PLUGIN_OWN_STRUCTS for field, prop in defs[name]["properties"].items()
    ]
    assert [f"{name}.{field}" for name, field, prop in plugin_fields if not prop.get("description")] == []


def test_type_table_and_schema_have_the_same_fields() -> None:
    defs = load("kubernetes-plugin.schema.json")["$defs"]
    assert {name: sorted(fields) for name, fields in k8s_types.STRUCTS.items()} == {
        name: sorted(defs[name]["properties"]) for name in k8s_types.STRUCTS
    }


def test_the_plugin_schema_root_is_the_plugin_type() -> None:
    schema = load("kubernetes-plugin.schema.json")
    assert schema["$ref"] == f"#/$defs/{k8s_types.ROOT}"
    fields = ["podSpec", "podSpecPatch", "gitEnvFrom", "sidecars", "metadata", "extraVolumeMounts"]
    fields += ["checkout", "commandParams", "sidecarParams", "podTemplate", "jobActiveDeadlineSeconds"]
    assert sorted(schema["$defs"][k8s_types.ROOT]["properties"]) == sorted(fields)


@pytest.mark.parametrize(("path", "value"), VALID_CASES)
def test_the_schema_accepts_what_the_checker_accepts(path: str, value: Any) -> None:
    config = at(path, value)
    assert check_plugin(config, head=True) == []
    assert [e.message for e in plugin_validator().iter_errors(config)] == []


@pytest.mark.parametrize(("path", "value"), [(p, v) for p, v, _ in INVALID_CASES])
def test_the_schema_rejects_what_the_checker_rejects(path: str, value: Any) -> None:
    config = at(path, value)
    assert check_plugin(config, head=True) != []
    if (path, repr(value)) in SCHEMA_IS_MORE_LENIENT:
        return
    assert list(plugin_validator().iter_errors(config)) != []


@pytest.mark.parametrize(
    ("key", "is_kubernetes"),
    [
        ("kubernetes", True),
        ("kubernetes#v1.2.3", True),
        ("github.com/buildkite-plugins/kubernetes-buildkite-plugin", True),
        ("github.com/buildkite-plugins/kubernetes-buildkite-plugin#main", True),
        ("kubernetes-buildkite-plugin", False),
        ("kubernetesx", False),
        ("docker#v5", False),
        ("github.com/other/kubernetes", False),
    ],
)
def test_pipeline_schema_recognises_the_kubernetes_plugin_keys(key: str, is_kubernetes: bool) -> None:
    entry = load("pipeline.schema.json")["$defs"]["PipelinePluginEntry"]
    (pattern,) = entry["patternProperties"]
    assert bool(re.search(pattern, key)) is is_kubernetes


def example_paths() -> dict[str, str]:
    """A dotted path (for ``at``) from the plugin root to one instance of every struct type."""
    paths = {k8s_types.ROOT: ""}
    queue = [k8s_types.ROOT]
    while queue:
        struct = queue.pop(0)
        for field, expression in k8s_types.STRUCTS[struct].items():
            target = expression.strip("[]{}")
            if target in k8s_types.STRUCTS and target not in paths:
                step = field + (
                    "[0]" if expression.startswith("[") else ".key" if expression.startswith("{") else ""
                )
                paths[target] = f"{paths[struct]}.{step}".lstrip(".")
                queue.append(target)
    return paths


def without_strictness(node: Any) -> Any:
    """The schema with ``additionalProperties: false`` dropped: the plugin checker ignores unknown
    fields by design, so only this variant can agree with it on arbitrary objects."""
    if isinstance(node, dict):
        return {
            k: without_strictness(v)
            for k, v in node.items()
            if not (k == "additionalProperties" and v is False)
        }
    if isinstance(node, list):
        return [without_strictness(v) for v in node]
    return node


EXAMPLE_PATHS = example_paths()
LENIENT_PLUGIN_VALIDATOR = jsonschema.Draft202012Validator(
    without_strictness(load("kubernetes-plugin.schema.json"))
)
FIELDS = sorted(
    (struct, field)
    for struct, fields in k8s_types.STRUCTS.items()
    for field, expression in fields.items()
    if expression != "any"  # FieldsV1: raw JSON for Go, "an object" for the schema
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
    | st.text(max_size=6)
    | st.sampled_from(["500m", "1Gi", "2e3", "http", "vector", "2024-01-01T00:00:00Z", "1K"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def test_every_struct_is_reachable_from_the_plugin() -> None:
    assert sorted(EXAMPLE_PATHS) == sorted(k8s_types.STRUCTS)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_checker_and_schema_agree_on_any_value(field: tuple[str, str], value: Any) -> None:
    """Integral floats are left out: JSON Schema calls 3.0 an integer, Go's decoder does not."""
    struct, name = field
    prefix = EXAMPLE_PATHS[struct]
    config = at(f"{prefix}.{name}" if prefix else name, value)
    schema_accepts = not list(LENIENT_PLUGIN_VALIDATOR.iter_errors(config))
    assert (check_plugin(config, head=True) == []) is schema_accepts
