"""values.schema.json: self-contained, and helm refuses bad values with a message naming the value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart import CHART_DIR, TOKENS, render, template_error

SCHEMA_PATH = CHART_DIR / "values.schema.json"


def load_schema() -> dict[str, Any]:
    loaded = json.loads(SCHEMA_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def references(node: Any) -> Iterator[str]:
    """Every ``$ref`` anywhere in a schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def test_schema_is_self_contained_and_well_formed() -> None:
    schema = load_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    remote = [ref for ref in references(schema) if not ref.startswith("#/")]
    assert remote == [], "helm must be able to validate offline"


def test_every_top_level_value_in_values_yaml_is_described() -> None:
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    described = set(load_schema()["properties"])
    assert set(defaults) <= described


def test_a_missing_agent_token_is_refused() -> None:
    error = template_error(set_args=())
    assert "/agentToken" in error
    assert "/graphqlToken" not in error  # the Stacks API mode needs no GraphQL token


def test_missing_tokens_of_the_graphql_mode_are_refused_naming_both() -> None:
    error = template_error(set_args=("--set", "config.org=o"))
    assert "/agentToken" in error
    assert "/graphqlToken" in error


def test_missing_graphql_token_alone_is_refused_in_the_graphql_mode() -> None:
    error = template_error(set_args=("--set", "agentToken=only-this", "--set", "config.org=o"))
    assert "/graphqlToken" in error
    assert "/agentToken" not in error


def test_an_existing_secret_makes_the_tokens_optional() -> None:
    assert render(set_args=("--set", "agentStackSecret=tokens", "--set", "config.org=o")) != []


def test_an_empty_existing_secret_name_does_not_count() -> None:
    error = template_error(set_args=("--set", "agentStackSecret="))
    assert "/agentToken" in error


@pytest.mark.parametrize(
    ("set_args", "path"),
    [
        (("--set", "replicaCount=-1"), "/replicaCount"),
        (("--set", "config=text"), "/config"),
        (("--set", "config.prometheus-port=metrics"), "/config/prometheus-port"),
        (("--set", "config.max-in-flight=-1"), "/config/max-in-flight"),
        (("--set", "healthPort=health"), "/healthPort"),
        (("--set", "logFormat=xml"), "/logFormat"),
        (("--set", "labels.app=mine"), "/labels"),
        (("--set", "rbac.extraNamespaces=jobs"), "/rbac/extraNamespaces"),
        (("--set", "rbac.extraNamespaces[0]=Not_A_Namespace"), "/rbac/extraNamespaces/0"),
        (("--set", "serviceAccount.create=maybe"), "/serviceAccount/create"),
        (("--set-json", 'policies={"no-suffix":"kind: Policy"}'), "no-suffix"),
        (("--set-json", 'policies={"p.yaml":42}'), "/policies/p.yaml"),
        (("--set", "secretsMetadata.name=other"), "propertyName 'name'"),
        (("--set", "nodeSelecter.disk=ssd"), "nodeSelecter"),
        (("--set-json", 'controllerEnv=[{"value":"no name"}]'), "/controllerEnv/0"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_wrong_values_are_refused_naming_the_value(set_args: tuple[str, ...], path: str) -> None:
    error = template_error(set_args=(*TOKENS, *set_args))
    assert "don't meet the specifications of the schema" in error
    assert path in error
