"""The result of evaluating one job: data, never side effects.

Formatters (YAML/JSON output, the explain table, the Buildkite failure text) render a
:class:`Decision`; the controller acts on it. Keeping it immutable and free of behaviour is what lets a
dry run (``engine test``) and production share one code path and never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.model.jsonvalue import JSON, JSONObject, Path

DenialKind = Literal["deny", "error", "invalid"]

ENGINE_POLICY = "stack"
"""The reserved pseudo-policy name under which the engine's own steps appear in traces, warnings and
denials (``stack/finish``, ``stack/kubernetes-plugin``, ``stack/kubernetes-api``)."""


@dataclass(frozen=True, slots=True)
class Denial:
    """Why the job gets no Kubernetes Job: a policy refused it (``kind="deny"``), a rule could not be
    evaluated for it (``"error"``), or the Job built for it breaks the Kubernetes API (``"invalid"``;
    ``policy``/``rule`` name the rule that last wrote the offending field, or ``stack/kubernetes-api``).

    All fail the Buildkite job (:attr:`Decision.failure_message`); the kind tells an admin whether a
    rule decided, a rule broke, or a rule built something Kubernetes cannot take.
    """

    policy: str
    rule: str
    message: str
    kind: DenialKind = "deny"

    def render(self) -> str:
        return f"{self.policy}/{self.rule}: {self.message}"

    def log_line(self) -> str:
        """The line a failed Buildkite job's log shows: the message first (so upstream's wording still
        starts the line), then who decided. An ``error`` message already names its policy and rule."""
        if self.kind == "error":
            return self.message
        if self.kind == "invalid":
            if self.policy == ENGINE_POLICY:
                return f"{self.message} (no policy rule set this field)"
            return f"{self.message} (last set by policy {self.policy}, rule {self.rule})"
        return f"{self.message} (denied by policy {self.policy}, rule {self.rule})"


@dataclass(frozen=True, slots=True)
class PolicyWarning:
    """Something an admin should know that did not stop the job (a clamp, a skipped label, a conflict)."""

    policy: str
    rule: str
    message: str

    def render(self) -> str:
        return f"{self.policy}/{self.rule}: {self.message}"


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One change to the manifest: which rule made it, where, and the value before and after."""

    policy: str
    rule: str
    op: str
    path: str
    old: JSON
    new: JSON
    segments: Path
    """``path`` as its keys and list indices, so a reader can replay the trace without parsing the
    rendered path."""


@dataclass(frozen=True, slots=True)
class UnmatchedPolicy:
    """A policy whose ``match`` was false for this job, so none of its rules ran (shown by the explain
    view, because "why did my policy not apply?" is the first question after "who set this?")."""

    policy: str
    match: str
    where: str


@dataclass(frozen=True, slots=True)
class VariableValue:
    """The value a policy variable had for this job, in evaluation order.

    Rendered rule bodies splice these very objects, so the explain view can tell that an env entry a
    rule added came from, say, ``vars.sharedEnv`` of ``shared-env-and-mounts``.
    """

    policy: str
    name: str
    value: JSON


@dataclass(frozen=True, slots=True)
class Decision:
    """What the stack does with one Buildkite job.

    ``manifest`` is the batch/v1 Job built so far (complete when ``admitted``), with map keys sorted and
    lists in their meaningful order, so equal inputs give byte-identical output.
    """

    admitted: bool
    manifest: JSONObject
    denials: tuple[Denial, ...] = ()
    warnings: tuple[PolicyWarning, ...] = ()
    trace: tuple[TraceRecord, ...] = ()
    unmatched: tuple[UnmatchedPolicy, ...] = ()
    variables: tuple[VariableValue, ...] = ()

    @property
    def failure_message(self) -> str:
        """The text a denied Buildkite job is failed with: one :meth:`Denial.log_line` per denial."""
        return "\n".join(d.log_line() for d in self.denials)
