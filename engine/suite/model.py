"""The ``PolicySuite`` file format, as data: the pydantic models ``schema/suite.schema.json`` is
generated from (``scripts/gen_suite_schema.py``).

A suite names the policies under test and lists cases; each case is a job (a pipeline step, a job
file or an inline job), optional config overrides and what must be true of the decision. Paths are
relative to the suite file. Unknown fields are errors, so a misspelt expectation cannot silently
pass.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.model.jsonvalue import JSON

API_VERSION = "policy.agent-stack.dev/v1"
KIND = "PolicySuite"
ASSERTION_CHECKS = ("equals", "notEquals", "matches", "exists", "contains", "length")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SuiteMetadata(_Strict):
    name: str | None = Field(default=None, description="A name for reports.")
    description: str | None = None


class BuildkiteFacts(_Strict):
    """What Buildkite knows about the build, for jobs made from a pipeline step."""

    org: str | None = Field(default=None, description="Organization slug (BUILDKITE_ORGANIZATION_SLUG).")
    pipeline: str | None = Field(default=None, description="Pipeline slug (BUILDKITE_PIPELINE_SLUG).")
    pipeline_name: str | None = Field(default=None, alias="pipelineName")
    repository: str | None = Field(default=None, description="Repository URL (BUILDKITE_REPO).")
    branch: str | None = None
    commit: str | None = None
    message: str | None = None
    source: str | None = Field(default=None, description="ui, api, webhook, schedule or trigger_job.")
    tag: str | None = None
    build_number: Annotated[int, Field(ge=1)] | None = Field(default=None, alias="buildNumber")


class Assertion(_Strict):
    """A JMESPath expression over the Job and exactly one check of what it selects."""

    jmespath: str = Field(
        description="Evaluated on the Job (the manifest), e.g. spec.template.spec.nodeSelector."
    )
    equals: JSON = Field(default=None, description="The result equals this value (null: nothing selected).")
    not_equals: JSON = Field(
        default=None, alias="notEquals", description="The result differs from this value."
    )
    matches: str | None = Field(
        default=None, description="The result is a string this regex matches (search)."
    )
    exists: bool | None = Field(default=None, description="true: the result is not null; false: it is null.")
    contains: JSON = Field(
        default=None, description="A list result has this item, or a string has this text."
    )
    length: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="A list, map or string result has this length."
    )

    @model_validator(mode="after")
    def _one_check(self) -> Assertion:
        given = [name for name in ASSERTION_CHECKS if _alias(name) in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"an assertion needs exactly one of: {', '.join(ASSERTION_CHECKS)}")
        return self

    @property
    def check(self) -> tuple[str, Any]:
        """The check's name and expected value."""
        for name in ASSERTION_CHECKS:
            if _alias(name) in self.model_fields_set:
                return name, getattr(self, _alias(name))
        raise AssertionError("validated to have one check")


def _alias(check: str) -> str:
    return "not_equals" if check == "notEquals" else check


class SetBy(_Strict):
    """The field at ``path`` was set last by ``policy`` (and ``rule``, when given)."""

    path: str = Field(
        description="As --explain -o json prints it; a list item may be picked by a field: "
        "spec.template.spec.containers[name=agent].image"
    )
    policy: str
    rule: str | None = None


class Expect(_Strict):
    decision: Literal["admit", "deny"] | None = Field(default=None, description="admit or deny.")
    denial: str | None = Field(default=None, description="With deny: a regex one denial message must match.")
    warnings: list[str] | None = Field(
        default=None, description="Regexes each matching some warning; [] means no warnings at all."
    )
    manifest: dict[str, JSON] | None = Field(
        default=None,
        description="A partial Job: maps match key by key, lists item by item in order (other items may "
        "sit between), null means the field is absent.",
    )
    assertions: list[Assertion] = Field(default_factory=list)
    set_by: list[SetBy] = Field(default_factory=list, alias="setBy")

    @model_validator(mode="after")
    def _denial_needs_deny(self) -> Expect:
        if self.denial is not None and self.decision == "admit":
            raise ValueError("'denial' expects a denied job, but 'decision' is admit")
        return self


class Case(_Strict):
    name: str = Field(min_length=1)
    pipeline: str | dict[str, JSON] | list[JSON] | None = Field(
        default=None,
        description="A pipeline file, or an inline pipeline (a map with steps, or a list of steps).",
    )
    step: str | None = Field(default=None, description="With pipeline: the step's key.")
    step_index: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        alias="stepIndex",
        description="With pipeline: the step's number (0-based, groups opened).",
    )
    buildkite: BuildkiteFacts | None = Field(
        default=None, description="Overrides the suite's buildkite facts."
    )
    job: str | dict[str, JSON] | None = Field(
        default=None, description="A job file (GraphQL wire shape JSON) or an inline job."
    )
    config: str | dict[str, JSON] | None = Field(
        default=None, description="Config overrides: a file or a map, merged over the suite's config."
    )
    expect: Expect

    @model_validator(mode="after")
    def _one_job(self) -> Case:
        if (self.pipeline is None) == (self.job is None):
            raise ValueError("a case needs exactly one of 'pipeline' or 'job'")
        if self.job is not None and (self.step is not None or self.step_index is not None):
            raise ValueError("'step' and 'stepIndex' choose a step of 'pipeline'")
        if self.step is not None and self.step_index is not None:
            raise ValueError("give 'step' or 'stepIndex', not both")
        return self


class PolicySuite(_Strict):
    """A policy test suite."""

    api_version: Literal["policy.agent-stack.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["PolicySuite"]
    metadata: SuiteMetadata | None = None
    policies: list[str] = Field(
        default_factory=list,
        description="Policy files or directories, relative to the suite, after the defaults.",
    )
    default_policies: bool = Field(
        default=True, alias="defaultPolicies", description="Load the shipped default policy set first."
    )
    config: str | dict[str, JSON] | None = Field(
        default=None, description="The controller config: a file or a map."
    )
    buildkite: BuildkiteFacts | None = Field(default=None, description="Build facts for pipeline cases.")
    cases: list[Case] = Field(min_length=1)


def suite_json_schema() -> dict[str, Any]:
    """The JSON schema users' editors validate suite files against."""
    schema = PolicySuite.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://agent-stack.dev/schema/suite.schema.json"
    schema["title"] = "Agent stack policy suite"
    return schema
