"""Rendering decisions for people and machines: manifest YAML/JSON and warnings (the explain view is
:mod:`engine.explain`).

Pure string building (no printing), shared by the CLI and the controller so a Job annotation, a
Buildkite failure log and ``engine test`` output show the same facts the same way.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from engine.model.decision import Decision
from engine.model.jsonvalue import JSON


class _BlockDumper(yaml.SafeDumper):
    """YAML that reads like a hand-written manifest: multi-line strings as ``|`` blocks, and no
    ``&anchors`` (the engine shares unchanged sub-trees between containers; a reader should not
    have to know that)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _represent_str)


def to_yaml(value: JSON) -> str:
    return yaml.dump(value, Dumper=_BlockDumper, sort_keys=True, default_flow_style=False, allow_unicode=True)


def to_json(value: JSON) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def render_warnings(decision: Decision) -> str:
    return "".join(f"warning: {w.render()}\n" for w in decision.warnings)
