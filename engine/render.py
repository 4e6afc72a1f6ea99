"""Rendering decisions for people and machines: manifest YAML/JSON, the explain table, denials.

Pure string building (no printing), shared by the CLI and the controller so a Job annotation, a
Buildkite failure log and ``engine test`` output show the same facts the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from engine.core.compiler import Replacement
from engine.model.decision import Decision, TraceRecord
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


def render_manifest(decision: Decision, output: str) -> str:
    return to_json(decision.manifest) if output == "json" else to_yaml(decision.manifest)


def render_denials(decision: Decision) -> str:
    return "".join(d.render() + "\n" for d in decision.denials)


def render_warnings(decision: Decision) -> str:
    return "".join(f"warning: {w.render()}\n" for w in decision.warnings)


def render_explain(decision: Decision, replacements: Sequence[Replacement] = (), width: int = 60) -> str:
    """A table of every change: which policy and rule set or changed which field, and to what."""
    rows = [("POLICY/RULE", "OP", "PATH", "VALUE")]
    rows.extend(_row(record, width) for record in decision.trace)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    for replacement in replacements:
        lines.append(f"policy {replacement.name} from {replacement.replaced} replaced by {replacement.by}")
    for warning in decision.warnings:
        lines.append(f"warning: {warning.render()}")
    for denial in decision.denials:
        lines.append(f"{'denied' if denial.kind == 'deny' else 'error'}: {denial.render()}")
    return "\n".join(lines) + "\n"


def _row(record: TraceRecord, width: int) -> tuple[str, str, str, str]:
    value = record.old if record.op == "remove" else record.new
    return (f"{record.policy}/{record.rule}", record.op, record.path, _short(value, width))


def _short(value: Any, width: int) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":")) if not isinstance(value, str) else value
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."
