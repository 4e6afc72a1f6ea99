"""The policy language, as data: the pydantic models ``schema/policy.schema.json`` is generated from.

A policy file holds one or more YAML documents of this shape::

    apiVersion: policy.agent-stack.dev/v1
    kind: Policy
    metadata: {name: gpu-shape, description: "GPU steps get a GPU node"}
    spec:
      phase: customize              # build | customize | enforce
      match: tags.queue == "gpu"    # CEL; absent = every job
      variables:                    # named values later expressions read as vars.<name>
      - name: gpuCount
        value: ${{ int(job.env["GPUS"]) }}
      rules:
      - name: gpu-node
        patch: {spec: {template: {spec: {nodeSelector: {accelerator: nvidia}}}}}
      - name: gpu-limits
        target: $command
        defaults: {resources: {limits: {nvidia.com/gpu: ${{ string(vars.gpuCount) }}}}}
      - name: no-privileged
        deny:
          when: pod.containers.exists(c, has(c.securityContext) && c.securityContext.privileged)
          message: privileged containers are not allowed on ${{ tags.queue }}

These models only describe and validate the documents; compiling the expressions and evaluating them
is the engine's job (``engine.core``).
"""

from __future__ import annotations

import difflib
import json
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

API_VERSION = "policy.agent-stack.dev/v1"

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
IDENTIFIER_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
SYMBOLIC_TARGETS = (
    "$command", "$checkout", "$agent", "$sidecars", "$step", "$init", "$containers", "$ephemeral", "$all",
)  # fmt: skip
_SYMBOLIC = "command|checkout|agent|sidecars|step|init|containers|ephemeral|all"
TARGET_PATTERN = rf"^(\$({_SYMBOLIC})|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$"
RULE_KINDS = ("patch", "jsonPatch", "defaults", "deny", "warn", "append")
CONTAINER_ROLES = ("command", "sidecar", "agent", "checkout", "system")


class Phase(StrEnum):
    """When a policy runs. Phases run in this order; within a phase, in file then document order."""

    BUILD = "build"
    CUSTOMIZE = "customize"
    ENFORCE = "enforce"


PHASE_ORDER = (Phase.BUILD, Phase.CUSTOMIZE, Phase.ENFORCE)

CelExpression = Annotated[
    str,
    Field(min_length=1, description="A CEL expression over the job context (job, tags, pipeline, ...)."),
]


_TARGET = re.compile(TARGET_PATTERN)


def _valid_target(value: str) -> str:
    """A target is a symbolic one or a container name; a typo gets the list, not a regex."""
    if _TARGET.match(value):
        return value
    close = (
        difflib.get_close_matches(value, SYMBOLIC_TARGETS, n=1, cutoff=0.6) if value.startswith("$") else []
    )
    hint = f'did you mean "{close[0]}"? ' if close else ""
    raise ValueError(
        f"{json.dumps(value)} is not a target: {hint}use one of {', '.join(SYMBOLIC_TARGETS)}, or a "
        "container name (lowercase letters, digits and '-')"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(_Strict):
    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=253,
        description="Unique name. A later policy with the same name replaces an earlier one.",
    )
    description: str | None = Field(default=None, description="What the policy does and why.")


class Variable(_Strict):
    name: str = Field(pattern=IDENTIFIER_PATTERN, description="Read by later expressions as vars.<name>.")
    value: Any = Field(
        description=(
            "Any YAML value; strings of the form ${{ <CEL> }} are computed, "
            "'...${{ <CEL> }}' list items splice a list."
        )
    )


class RuleBase(_Strict):
    name: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Rule name; defaults to rule-<n>."
    )
    description: str | None = None
    when: CelExpression | None = Field(default=None, description="Apply the rule only when this CEL is true.")
    target: Annotated[str, AfterValidator(_valid_target)] | None = Field(
        default=None,
        json_schema_extra={"pattern": TARGET_PATTERN},
        description=(
            "Apply the rule to each targeted container instead of the Job: $command, $checkout, $agent, "
            "$sidecars, $step (every container the pipeline author controls), $init, $containers, "
            "$ephemeral, $all (every container of every kind), or a container name. `container` and "
            "`index` are then in scope."
        ),
    )
    warning: str | None = Field(
        default=None,
        description="A message template recorded as a warning whenever the rule changes something.",
    )


class PatchRule(RuleBase):
    patch: Any = Field(
        description="A Kubernetes strategic merge patch of the Job (or the targeted container)."
    )


class JsonPatchOperation(_Strict):
    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str
    value: Any = None
    from_: str | None = Field(default=None, alias="from")


class JsonPatchRule(RuleBase):
    json_patch: list[JsonPatchOperation] = Field(alias="jsonPatch", description="RFC 6902 operations.")


class DefaultsRule(RuleBase):
    defaults: Any = Field(description="Values set only where the Job (or targeted container) has none.")


class DenySpec(_Strict):
    when: CelExpression | None = Field(
        default=None, description="Deny when this CEL is true (absent = always)."
    )
    message: str = Field(
        min_length=1, description="The message the Buildkite job is failed with (a template)."
    )


class DenyRule(RuleBase):
    deny: DenySpec


class WarnSpec(_Strict):
    when: CelExpression | None = Field(
        default=None, description="Warn when this CEL is true (absent = always)."
    )
    message: str = Field(min_length=1, description="The warning text (a template).")


class WarnRule(RuleBase):
    warn: WarnSpec


class AppendSpec(_Strict):
    path: str = Field(pattern=r"^(/([^/~]|~[01])*)+$", description="JSON pointer of the list to append to.")
    items: Any = Field(description="A list (or a ${{ }} expression giving one) of items to append in order.")
    role: Literal["command", "sidecar", "agent", "checkout", "system"] | None = Field(
        default=None,
        description=(
            "For containers: the role symbolic targets select them by ($command, $sidecars, ...); "
            "system marks the stack's own helpers (init containers), which $step does not select."
        ),
    )


class AppendRule(RuleBase):
    append: AppendSpec


def _rule_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [kind for kind in RULE_KINDS if kind in value]
        return present[0] if len(present) == 1 else None
    if isinstance(value, RuleBase):
        for kind, cls in _RULE_CLASSES.items():
            if isinstance(value, cls):
                return kind
    return None


Rule = Annotated[
    Annotated[PatchRule, Tag("patch")]
    | Annotated[JsonPatchRule, Tag("jsonPatch")]
    | Annotated[DefaultsRule, Tag("defaults")]
    | Annotated[DenyRule, Tag("deny")]
    | Annotated[WarnRule, Tag("warn")]
    | Annotated[AppendRule, Tag("append")],
    Discriminator(
        _rule_kind,
        custom_error_type="rule_kind",
        custom_error_message="a rule needs exactly one of: patch, jsonPatch, defaults, deny, warn, append",
    ),
]

_RULE_CLASSES: dict[str, type[RuleBase]] = {
    "patch": PatchRule,
    "jsonPatch": JsonPatchRule,
    "defaults": DefaultsRule,
    "deny": DenyRule,
    "warn": WarnRule,
    "append": AppendRule,
}


class PolicySpec(_Strict):
    phase: Phase = Field(description="build | customize | enforce")
    match: CelExpression | None = Field(
        default=None, description="Evaluate the policy only for jobs where this is true."
    )
    variables: list[Variable] = Field(default_factory=list, description="Named values, computed in order.")
    rules: list[Rule] = Field(default_factory=list, description="Applied in order.")


class PolicyDocument(_Strict):
    """One policy document."""

    api_version: Literal["policy.agent-stack.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["Policy"]
    metadata: Metadata
    spec: PolicySpec


def rule_kind(rule: RuleBase) -> str:
    """The kind key of a parsed rule (``patch``, ``jsonPatch``, ...)."""
    kind = _rule_kind(rule)
    if kind is None:  # pragma: no cover - every parsed rule is one of the classes
        raise TypeError(f"not a rule: {rule!r}")
    return kind


def policy_json_schema() -> dict[str, Any]:
    """The JSON schema users' editors validate policy files against."""
    schema = PolicyDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://agent-stack.dev/schema/policy.schema.json"
    schema["title"] = "Agent stack policy"
    return schema
