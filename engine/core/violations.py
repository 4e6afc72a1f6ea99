"""Turning Kubernetes API violations of a built Job into denials that name who wrote the field.

A violation is found on the finished Job, but the person who has to fix it needs the policy and rule
that put the bad value there. The trace knows: the last change whose path is the violation's path, an
ancestor of it (a rule that added the whole container) or a descendant (a rule that set a field inside
an object that is now missing a required one) is the writer. When no rule touched the place (the step's
own podSpec, copied in whole, is traced as the copy), the denial says the stack checked it.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.core.kube_validation import Violation
from engine.model.decision import ENGINE_POLICY, Denial, TraceRecord
from engine.model.jsonvalue import Path, render_path

VALIDATION_POLICY = ENGINE_POLICY
VALIDATION_RULE = "kubernetes-api"
MESSAGE_PREFIX = "Kubernetes would refuse this Job: "


def violation_denials(violations: Sequence[Violation], trace: Sequence[TraceRecord]) -> list[Denial]:
    """One ``invalid`` denial per violation, attributed to the last rule that wrote there."""
    denials: list[Denial] = []
    for violation in violations:
        writer = last_writer(violation.path, trace)
        where = render_path(violation.path) or "the Job"
        message = f"{MESSAGE_PREFIX}{where}: {violation.message}"
        if writer is None:
            denials.append(Denial(VALIDATION_POLICY, VALIDATION_RULE, message, kind="invalid"))
        else:
            denials.append(Denial(writer.policy, writer.rule, message, kind="invalid"))
    return denials


def last_writer(path: Path, trace: Sequence[TraceRecord]) -> TraceRecord | None:
    """The last trace record that changed ``path``, something containing it, or something inside it."""
    for record in reversed(trace):
        changed = record.segments
        shorter = min(len(changed), len(path))
        if changed[:shorter] == path[:shorter]:
            return record
    return None
