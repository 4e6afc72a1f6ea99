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
    fields += ["checkout", "commandParams", "sidecarParams"]
    assert sorted(schema["$defs"][k8s_types.ROOT]["properties"]) == sorted(fields)


@pytest.mark.parametrize(("path", "value"), VALID_CASES)
def test_the_schema_accepts_what_the_checker_accepts(path: str, value: Any) -> None:
    config = at(path, value)
    assert check_plugin(config) == []
    assert [e.message for e in plugin_validator().iter_errors(config)] == []


@pytest.mark.parametrize(("path", "value"), [(p, v) for p, v, _ in INVALID_CASES])
def test_the_schema_rejects_what_the_checker_rejects(path: str, value: Any) -> None:
    config = at(path, value)
    assert check_plugin(config) != []
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
