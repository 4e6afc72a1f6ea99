#!/usr/bin/env python3
"""Write the generated parts of charts/agent-stack-k8s/values.schema.json from the engine's models.

The chart must refuse what the controller refuses, or ``helm install`` succeeds and the pod
crash-loops. So ``config`` (rendered verbatim into the controller's config file) is validated with
the config model's own schema (``engine.model.config.config_json_schema``: every key, its type, no
unknown keys anywhere, the Kubernetes objects strictly), plus, per mode (``CONTROLLER_MODES``), the
keys that mode requires and the chart does not supply itself (the chart injects ``agent-token-secret``,
``namespace`` and ``id``, and in the GraphQL mode the Secret supplies ``buildkite-token`` as
BUILDKITE_TOKEN), the other mode's keys left out, and the mode's own checks. Inline
``policies`` documents must carry the policy apiVersion, kind and a valid ``metadata.name``.

Only these parts are generated; the rest of the file is written by hand. The script replaces
``properties.config``, ``definitions.policyDocument`` and every ``definitions`` entry named
``config.*`` (the config's own and the Kubernetes types it embeds), keeping everything else.
The result is self-contained (no remote ``$ref``) draft-07, as helm expects.

``--check`` exits 1 when the checked-in file differs from what this script would write.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.model import k8s_types
from engine.model.config import CONTROLLER_MODES, ControllerConfig, ControllerMode, config_json_schema
from engine.model.policy import API_VERSION, NAME_PATTERN

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "charts" / "agent-stack-k8s" / "values.schema.json"
KUBERNETES_SOURCE = ROOT / "schema" / "kubernetes-plugin.schema.json"
PREFIX = "config."
CHART_SUPPLIED = {
    "agent-token-secret": "the chart writes the name of its Secret (or agentStackSecret)",
    "namespace": "the chart writes the release namespace",
    "id": "the chart writes the release fullname",
    "buildkite-token": "the chart's Secret provides it as BUILDKITE_TOKEN (graphqlToken)",
}
"""Keys a mode may require that the chart provides itself, so a values file need not set them."""
DEFAULTED = {"image"}
"""Required keys whose default is non-empty, so leaving them out is fine."""

CONFIG_DESCRIPTION = (
    "The controller's config file, rendered verbatim (plus agent-token-secret, namespace and id unless "
    "set). Checked here with the controller's own rules (generated from its config model by "
    "scripts/gen_chart_schema.py): unknown keys, types and the keys the controller requires are refused "
    "before anything reaches the cluster."
)
BOOLEAN_STRINGS = ["true", "false", "True", "False", "TRUE", "FALSE"]
RE2_PATTERNS = {
    k8s_types.QUANTITY_PATTERN: (
        r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)" r"([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?\s*$"
    ),
}
"""Helm validates patterns with Go's RE2, which has no lookahead: the quantity pattern, spelt without
it (a sign or a suffix alone, which the lookahead version lets through, is refused here, as
Kubernetes refuses it)."""


def chart_config_schema(config_schema: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(properties.config, definitions to add)`` from the config model's schema."""
    definitions = {f"{PREFIX}{name}": _convert(value) for name, value in config_schema["$defs"].items()}
    config = _convert({key: value for key, value in config_schema.items() if not key.startswith("$")})
    config.pop("title", None)
    config["description"] = CONFIG_DESCRIPTION
    config["allOf"] = [_mode_requirements(mode) for mode in CONTROLLER_MODES]
    return config, definitions


def _mode_requirements(mode: ControllerMode) -> dict[str, Any]:
    """In this mode: its required keys set, the other mode's keys unset (or at their default), and
    the mode's own further checks."""
    needed = [key for key in mode.required if key not in CHART_SUPPLIED and key not in DEFAULTED]
    properties: dict[str, Any] = {key: {"minLength": 1} for key in needed}
    for key in mode.forbidden:
        properties[key] = {
            **_unset(key),
            "description": f"not read in the {mode.name} mode: leave it out (or set buildkite-api)",
        }
    properties.update(_convert(dict(mode.checks.get("properties", {}))))
    then: dict[str, Any] = {"required": needed, "properties": properties}
    return {"if": _convert(dict(mode.selected_by)) or True, "then": then}


def _unset(key: str) -> dict[str, Any]:
    """A key left at its default, in any spelling the controller reads as the default (a string key
    also empty), so a copied full config still passes, as the controller lets it pass."""
    field = next(f for f in ControllerConfig.model_fields.values() if f.alias == key)
    default = field.default
    if isinstance(default, str):
        return {"enum": sorted({default, ""})}
    if isinstance(default, bool):
        return {"enum": [default, str(default).lower()]}
    return {"enum": [default, str(default)]}


def _convert(node: Any) -> Any:
    """2020-12 ``$defs`` refs -> draft-07 ``definitions`` refs; a nullable ``anyOf`` -> its value (a
    null in helm values removes the key, which the controller also reads as unset); booleans and
    integers also as the strings the controller accepts (``"true"``, ``"25"``)."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"$ref"} or ("$ref" in node and node["$ref"].startswith("#/$defs/")):
        converted = {key: _convert(value) for key, value in node.items()}
        converted["$ref"] = "#/definitions/" + PREFIX + node["$ref"].removeprefix("#/$defs/")
        return converted
    node = {key: _convert(value) for key, value in node.items()}
    if isinstance(node.get("pattern"), str):
        node["pattern"] = RE2_PATTERNS.get(node["pattern"], node["pattern"])
    options = node.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(options):
            rest = {key: value for key, value in node.items() if key not in ("anyOf", "default")}
            return {**kept[0], **rest}
    if node.get("type") == "boolean":
        return _with_string_form(node, {"type": "string", "enum": BOOLEAN_STRINGS})
    if node.get("type") == "integer":
        return _with_string_form(node, {"type": "string", "pattern": r"^\s*[+-]?[0-9]+\s*$"})
    return node


def _with_string_form(node: dict[str, Any], string: dict[str, Any]) -> dict[str, Any]:
    typed = {key: value for key, value in node.items() if key not in ("description", "default")}
    typed = {key: value for key, value in typed.items() if not key.startswith("x-")}
    outer = {key: value for key, value in node.items() if key in ("description", "default")}
    return {"anyOf": [typed, string], **outer}


def policy_document_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            f"One policy document (apiVersion {API_VERSION}, kind Policy); `engine validate` checks the "
            "rest, see the chart README's pre-deploy check."
        ),
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": "Policy"},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 253}},
            },
            "spec": {"type": "object"},
        },
    }


def render(current: Mapping[str, Any]) -> str:
    kubernetes = json.loads(KUBERNETES_SOURCE.read_text(encoding="utf-8"))
    config, definitions = chart_config_schema(config_json_schema(kubernetes["$defs"]))
    schema = json.loads(json.dumps(current))
    kept = {name: value for name, value in schema["definitions"].items() if not name.startswith(PREFIX)}
    kept["policyDocument"] = policy_document_schema()
    schema["definitions"] = {**kept, **dict(sorted(definitions.items()))}
    schema["properties"]["config"] = config
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the file is current")
    args = parser.parse_args(argv)
    current_text = TARGET.read_text(encoding="utf-8")
    text = render(json.loads(current_text))
    if args.check:
        if current_text != text:
            print(f"{TARGET} is out of date: run scripts/gen_chart_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
