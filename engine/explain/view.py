"""The blame view: the final Job as YAML with, beside each field, the rule that set it.

It is valid YAML that loads to exactly the Job ``engine test`` prints (the attributions are comments),
so it can be read, diffed and even applied. A comment belongs to the field on its line and to
everything below it that carries no comment of its own; values are printed whole (multi-line strings
as ``|`` blocks). ``full`` adds the earlier writers of each field, newest first. After the Job come,
as comments too, the policies that did not match the job (with their ``match``), the policies that
replaced others, the fields rules removed, the warnings and the denials.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from engine.core.compiler import Replacement
from engine.explain.blame import Blame, Node, Writer, blame
from engine.model.decision import Decision
from engine.model.jsonvalue import JSON

_COMMENT_COLUMN = 56


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    note: str = ""


def render_blame(decision: Decision, replacements: Sequence[Replacement] = (), *, full: bool = False) -> str:
    """The annotated Job and the notes after it (see the module docstring)."""
    state = blame(decision)
    lines: list[_Line] = []
    root = state.root
    if root.mapping:
        _map_lines(root, 0, _label(root, full), full, lines)
    else:
        lines.append(_Line("{}"))
    out = _align(lines)
    out.extend(_notes(decision, state, replacements))
    return "\n".join(out) + "\n"


def _label(node: Node, full: bool) -> str:
    if not node.writers:
        return ""
    last = node.writers[-1].render()
    if not full or len(node.writers) == 1:
        return last
    earlier = ", ".join(w.render() for w in reversed(node.writers[:-1]))
    return f"{last}; before: {earlier}"


def _map_lines(node: Node, indent: int, inherited: str, full: bool, lines: list[_Line]) -> None:
    assert node.mapping is not None
    for key, child in node.mapping.items():
        _entry(f"{' ' * indent}{_key(key)}:", child, indent, inherited, full, lines)


def _entry(head: str, child: Node, indent: int, inherited: str, full: bool, lines: list[_Line]) -> None:
    label = _label(child, full)
    note = label if label != inherited else ""
    if child.mapping:
        lines.append(_Line(head, note))
        _map_lines(child, indent + 2, label, full, lines)
    elif child.items:
        lines.append(_Line(head, note))
        _list_lines(child, indent, label, full, lines)
    else:
        _scalar_lines(head, child, indent + 2, note, lines)


def _list_lines(node: Node, indent: int, inherited: str, full: bool, lines: list[_Line]) -> None:
    assert node.items is not None
    for item in node.items:
        label = _label(item, full)
        note = label if label != inherited else ""
        dash = f"{' ' * indent}-"
        if item.mapping:
            first_key, first = next(iter(item.mapping.items()))
            first_label = _label(first, full)
            if first_label != label or first.mapping or first.items:
                lines.append(_Line(dash, note))
                _map_lines(item, indent + 2, label, full, lines)
                continue
            rest = Node(writers=item.writers, mapping=dict(list(item.mapping.items())[1:]))
            _scalar_lines(f"{dash} {_key(first_key)}:", first, indent + 4, note, lines)
            if rest.mapping:
                _map_lines(rest, indent + 2, label, full, lines)
        elif item.items:
            lines.append(_Line(dash, note))
            _list_lines(item, indent + 2, label, full, lines)
        else:
            _scalar_lines(dash, item, indent + 2, note, lines)


def _scalar_lines(head: str, node: Node, block_indent: int, note: str, lines: list[_Line]) -> None:
    value = node.to_json()
    if isinstance(value, str) and "\n" in value and _block_safe(value):
        chomp = (
            ""
            if value.endswith("\n") and not value.endswith("\n\n")
            else ("+" if value.endswith("\n") else "-")
        )
        indicator = str(2) if value[:1] == " " else ""
        lines.append(_Line(f"{head} |{indicator}{chomp}", note))
        body = value[:-1] if value.endswith("\n") else value
        step = " " * block_indent
        for part in body.split("\n"):
            lines.append(_Line(step + part if part else ""))
        return
    lines.append(_Line(f"{head} {_scalar(value)}", note))


def _block_safe(value: str) -> bool:
    """A literal block keeps a string exactly unless it has characters YAML would not keep verbatim."""
    return all(c in "\n\t" or (c.isprintable() and c not in "\ufeff\u2028\u2029") for c in value)


def _scalar(value: JSON) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=2**31 - 1)
    text = text.removesuffix("\n").removesuffix("\n...").removesuffix("...")
    return text.rstrip("\n")


def _key(key: str) -> str:
    return _scalar(key)


def _align(lines: list[_Line]) -> list[str]:
    width = max(
        (len(line.text) for line in lines if line.note and len(line.text) <= _COMMENT_COLUMN), default=0
    )
    out: list[str] = []
    for line in lines:
        if not line.note:
            out.append(line.text)
        else:
            out.append(f"{line.text.ljust(width)}  # {line.note}")
    return out


def _notes(decision: Decision, state: Blame, replacements: Sequence[Replacement]) -> list[str]:
    out: list[str] = []
    if decision.unmatched:
        out.append("# policies that did not match this job:")
        out.extend(f"#   {p.policy} ({p.where}): match: {_one_line(p.match)}" for p in decision.unmatched)
    if replacements:
        out.append("# replaced policies:")
        out.extend(f"#   {r.name} from {r.replaced}, replaced by {r.by}" for r in replacements)
    if state.removed:
        out.append("# removed fields:")
        out.extend(
            f"#   {r.path} (set by {_writers(r.writers)}), removed by {r.removed_by.render()}"
            for r in state.removed
        )
    for warning in decision.warnings:
        out.append(f"# warning: {_one_line(warning.render())}")
    for denial in decision.denials:
        kind = "denied" if denial.kind == "deny" else "error"
        out.append(f"# {kind}: {_one_line(denial.render())}")
    return out


def _writers(writers: Sequence[Writer]) -> str:
    return ", ".join(w.render() for w in reversed(writers)) or "nobody"


def _one_line(text: str) -> str:
    return text if "\n" not in text else json.dumps(text)
