"""The explain view as data (``engine test --explain -o json``): every field's path → its writers.

``fields`` maps each path of the final Job (as :func:`engine.model.jsonvalue.render_path` prints it)
to the rules that wrote it, oldest first, so the last entry is the rule that set the value the Job
has. The rest mirrors the annotated view: policies that did not match, replacements, removed fields,
warnings and denials.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.core.compiler import Replacement
from engine.explain.blame import Blame, Writer, blame
from engine.model.decision import Decision
from engine.model.jsonvalue import JSON, render_path


def explain_data(
    decision: Decision, replacements: Sequence[Replacement] = (), state: Blame | None = None
) -> dict[str, JSON]:
    state = state if state is not None else blame(decision)
    return {
        "admitted": decision.admitted,
        "manifest": decision.manifest,
        "fields": {
            render_path(path): [_writer(w) for w in node.writers] for path, node in state.fields() if path
        },
        "unmatched": [{"policy": p.policy, "match": p.match, "where": p.where} for p in decision.unmatched],
        "replaced": [{"policy": r.name, "replaced": r.replaced, "by": r.by} for r in replacements],
        "removed": [
            {"path": r.path, "writers": [_writer(w) for w in r.writers], "removedBy": _writer(r.removed_by)}
            for r in state.removed
        ],
        "warnings": [{"policy": w.policy, "rule": w.rule, "message": w.message} for w in decision.warnings],
        "denials": [
            {"policy": d.policy, "rule": d.rule, "message": d.message, "kind": d.kind}
            for d in decision.denials
        ],
    }


def _writer(writer: Writer) -> dict[str, JSON]:
    out: dict[str, JSON] = {"policy": writer.policy, "rule": writer.rule, "op": writer.op}
    if writer.via is not None:
        out["via"] = {"policy": writer.via.policy, "variable": writer.via.variable}
    return out
