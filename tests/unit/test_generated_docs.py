"""Generated files must match what their generators produce today."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_current() -> None:
    current = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert current == _script("gen_docs").render(), "docs/configuration.md is stale: run scripts/gen_docs.py"


def test_policy_schema_is_current() -> None:
    current = (ROOT / "schema" / "policy.schema.json").read_text(encoding="utf-8")
    assert current == _script("gen_policy_schema").render(), "run scripts/gen_policy_schema.py"


def test_policy_schema_accepts_the_shipped_policies() -> None:
    schema = json.loads((ROOT / "schema" / "policy.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    files = [*sorted((ROOT / "policies").glob("*.yaml")), *sorted(ROOT.glob("examples/policies/*.yaml"))]
    assert files
    for file in files:
        for document in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            errors = [e.message for e in validator.iter_errors(document)]
            assert errors == [], f"{file}: {errors}"


def test_policy_schema_rejects_an_unknown_rule_field() -> None:
    schema = json.loads((ROOT / "schema" / "policy.schema.json").read_text(encoding="utf-8"))
    document = {
        "apiVersion": "policy.agent-stack.dev/v1",
        "kind": "Policy",
        "metadata": {"name": "x"},
        "spec": {"phase": "build", "rules": [{"name": "r", "patch": {}, "bogus": 1}]},
    }
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document))


def test_suite_schema_is_current() -> None:
    current = (ROOT / "schema" / "suite.schema.json").read_text(encoding="utf-8")
    assert current == _script("gen_suite_schema").render(), "run scripts/gen_suite_schema.py"


def test_suite_schema_accepts_the_shipped_suites_and_rejects_a_misspelt_expectation() -> None:
    schema = json.loads((ROOT / "schema" / "suite.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    files = [
        *sorted(ROOT.glob("examples/policies/suites/*.suite.yaml")),
        *sorted(ROOT.glob("tests/suites/*.yaml")),
    ]
    assert len(files) >= 8
    for file in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(file.read_text(encoding="utf-8")))]
        assert errors == [], f"{file}: {errors}"
    bad = {
        "apiVersion": "policy.agent-stack.dev/v1",
        "kind": "PolicySuite",
        "cases": [{"name": "x", "job": "j.json", "expect": {"decison": "admit"}}],
    }
    assert list(validator.iter_errors(bad))
