"""Loading a suite file into runnable cases, with every problem reported as ``FILE:LINE:COL: message``.

Everything that can be wrong with a suite is found before any case runs: the file's shape (against
:mod:`engine.suite.model`), the policies it names, each case's job (a pipeline step, a job file, an
inline job), config, regexes and JMESPath expressions. A suite with any problem does not run at all
(exit 2): a half-run suite would report passes for a suite that cannot be trusted.
"""

from __future__ import annotations

import re
import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jmespath
import jmespath.exceptions
import jmespath.parser
from pydantic import ValidationError

from engine.core.compiler import PolicyError, PolicySet
from engine.explain.paths import PathSyntaxError, Step, parse_path
from engine.inputs import InputError, load_job_file, read_config_yaml
from engine.model.config import ConfigError, ControllerConfig, parse_config
from engine.model.job import BuildkiteJob, JobInputError, parse_job
from engine.model.jsonvalue import JSON, JSONObject
from engine.model.jsonvalue import Path as JsonPath
from engine.model.profiles import DEFAULT_PROFILE
from engine.pipeline.job import BuildContext, PipelineJobError, job_from_step
from engine.pipeline.source import PipelineReadError, load_pipeline
from engine.pipeline.steps import StepError, choose_step, read_pipeline_document
from engine.policy.loader import load_policies, validation_problems
from engine.policy.yaml_source import SourceDocument, YamlSourceError, load_documents
from engine.suite.model import Assertion, BuildkiteFacts, Case, Expect, PolicySuite

SUITE_SUFFIXES = (".suite.yaml", ".suite.yml")


class SuiteError(ValueError):
    """A suite that cannot run; ``problems`` are ``FILE:LINE:COL: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class CompiledAssertion:
    assertion: Assertion
    expression: jmespath.parser.ParsedResult
    pattern: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class CompiledSetBy:
    path: str
    steps: tuple[Step, ...]
    policy: str
    rule: str | None


@dataclass(frozen=True, slots=True)
class CompiledExpect:
    expect: Expect
    denial: re.Pattern[str] | None
    warnings: tuple[re.Pattern[str], ...] | None
    assertions: tuple[CompiledAssertion, ...]
    set_by: tuple[CompiledSetBy, ...]


@dataclass(frozen=True, slots=True)
class LoadedCase:
    name: str
    where: str
    job: BuildkiteJob
    config: ControllerConfig
    expect: CompiledExpect


@dataclass(frozen=True, slots=True)
class LoadedSuite:
    file: Path
    name: str
    policies: PolicySet
    cases: tuple[LoadedCase, ...]
    case_data: tuple[Case, ...] = ()


def suite_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Suite files from ``--suite`` arguments: a file, or every ``*.suite.yaml`` in a directory (sorted)."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(SUITE_SUFFIXES))
            if not found:
                problems.append(f"{path}: no *.suite.yaml files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return files, problems


def load_suite(
    file: Path, *, policies_override: list[Path] | None = None, include_defaults: bool | None = None
) -> LoadedSuite:
    """Load one suite file; raise :class:`SuiteError` listing every problem.

    ``policies_override`` replaces the suite's own ``policies`` (``engine diff`` runs a suite's jobs
    against other policy sets); ``include_defaults`` then overrides ``defaultPolicies``.
    """
    document = _read(file)
    reader = _Reader(file, document)
    try:
        suite = PolicySuite.model_validate(document.value)
    except ValidationError as exc:
        raise SuiteError(reader.validation_problems(exc)) from None
    base = file.parent
    policy_paths = policies_override if policies_override is not None else [base / p for p in suite.policies]
    defaults = suite.default_policies if include_defaults is None else include_defaults
    suite_config = reader.config_data(suite.config, ("config",))
    profile = str(suite_config.get("profile") or DEFAULT_PROFILE)
    policies: PolicySet | None = None
    try:
        policies = load_policies(policy_paths, include_defaults=defaults, profile=profile)
    except PolicyError as exc:
        reader.problems.extend(f"{reader.where(('policies',))}: {problem}" for problem in exc.problems)
    cases: list[LoadedCase] = []
    for index, case in enumerate(suite.cases):
        loaded = reader.case(case, index, suite_config, suite.buildkite)
        if loaded is not None:
            cases.append(loaded)
    if reader.problems or policies is None:
        raise SuiteError(reader.problems)
    name = suite.metadata.name if suite.metadata and suite.metadata.name else str(file)
    return LoadedSuite(file, name, policies, tuple(cases), tuple(suite.cases))


def _read(file: Path) -> SourceDocument:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SuiteError([f"{file}: cannot read: {reason}"]) from None
    try:
        documents = load_documents(text, str(file))
    except YamlSourceError as exc:
        raise SuiteError([str(exc)]) from None
    if len(documents) != 1:
        raise SuiteError([f"{file}:1:1: a suite file holds exactly one document, found {len(documents)}"])
    return documents[0]


class _Reader:
    """Collects problems with their positions while turning the validated suite into cases."""

    def __init__(self, file: Path, document: SourceDocument) -> None:
        self.file = file
        self.document = document
        self.problems: list[str] = []

    def where(self, path: JsonPath) -> str:
        line, column = self.document.locate(path)
        return f"{self.file}:{line}:{column}"

    def problem(self, path: JsonPath, message: str) -> None:
        self.problems.append(f"{self.where(path)}: {message}")

    def validation_problems(self, error: ValidationError) -> list[str]:
        problems = validation_problems(error, self.document, _without_union_tags)
        return list(dict.fromkeys(problems))

    def config_data(self, value: str | Mapping[str, JSON] | None, path: JsonPath) -> dict[str, JSON]:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return dict(value)
        config_file = self.file.parent / value
        try:
            text = config_file.read_text(encoding="utf-8")
            return read_config_yaml(text, str(config_file)) or {}
        except InputError as exc:
            self.problems.extend(f"{self.where(path)}: {problem}" for problem in exc.problems)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problem(path, f"{config_file}: cannot read: {reason}")
        return {}

    def case(
        self, case: Case, index: int, suite_config: dict[str, JSON], facts: BuildkiteFacts | None
    ) -> LoadedCase | None:
        path: JsonPath = ("cases", index)
        before = len(self.problems)
        job = self._job(case, path, facts)
        overrides = self.config_data(case.config, (*path, "config"))
        config: ControllerConfig | None = None
        try:
            source = self.where((*path, "config") if case.config is not None else ("config",))
            config = parse_config(merge_config(suite_config, overrides), source)
        except ConfigError as exc:
            self.problems.extend(exc.problems)
        suite_profile = suite_config.get("profile") or DEFAULT_PROFILE
        if (overrides.get("profile") or suite_profile) != suite_profile:
            self.problem(
                (*path, "config"),
                "a case may not change the suite's profile: the suite loads one policy set (set profile "
                "in the suite's config)",
            )
        expect = self._expect(case.expect, (*path, "expect"))
        if len(self.problems) > before or job is None or config is None or expect is None:
            return None
        return LoadedCase(case.name, self.where(path), job, config, expect)

    def _job(self, case: Case, path: JsonPath, facts: BuildkiteFacts | None) -> BuildkiteJob | None:
        if case.job is not None:
            return self._job_document(case, path)
        context = build_context(facts, case.buildkite)
        where = (*path, "pipeline")
        try:
            if isinstance(case.pipeline, str):
                document = load_pipeline(self.file.parent / case.pipeline)
            else:
                document = case.pipeline
            pipeline = read_pipeline_document(document)
            step = choose_step(pipeline, case.step, case.step_index)
            return parse_job(job_from_step(pipeline, step, context))
        except PipelineReadError as exc:
            self.problem(where, str(exc))
        except (StepError, PipelineJobError, JobInputError) as exc:
            self.problem(where, str(exc))
        return None

    def _job_document(self, case: Case, path: JsonPath) -> BuildkiteJob | None:
        where = (*path, "job")
        if isinstance(case.job, str):
            try:
                return load_job_file(self.file.parent / case.job)
            except InputError as exc:
                self.problems.extend(f"{self.where(where)}: {problem}" for problem in exc.problems)
                return None
        data: JSONObject = dict(case.job or {})
        data.setdefault(
            "uuid", str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"agent-stack-policy:case:{case.name}"))
        )
        try:
            return parse_job(data)
        except JobInputError as exc:
            self.problems.extend(f"{self.where(where)}: {problem}" for problem in exc.problems)
            return None

    def _expect(self, expect: Expect, path: JsonPath) -> CompiledExpect | None:
        before = len(self.problems)
        denial = self._regex(expect.denial, (*path, "denial"))
        warnings = None
        if expect.warnings is not None:
            compiled = [self._regex(text, (*path, "warnings", i)) for i, text in enumerate(expect.warnings)]
            warnings = tuple(p for p in compiled if p is not None)
        assertions: list[CompiledAssertion] = []
        for i, assertion in enumerate(expect.assertions):
            where = (*path, "assertions", i)
            try:
                expression = jmespath.compile(assertion.jmespath)
            except jmespath.exceptions.JMESPathError as exc:
                self.problem((*where, "jmespath"), f"invalid JMESPath: {' '.join(str(exc).split())}")
                continue
            name, value = assertion.check
            pattern = self._regex(value, (*where, "matches")) if name == "matches" else None
            assertions.append(CompiledAssertion(assertion, expression, pattern))
        set_by: list[CompiledSetBy] = []
        for i, item in enumerate(expect.set_by):
            try:
                steps = parse_path(item.path)
            except PathSyntaxError as exc:
                self.problem((*path, "setBy", i, "path"), str(exc))
                continue
            set_by.append(CompiledSetBy(item.path, steps, item.policy, item.rule))
        if len(self.problems) > before:
            return None
        return CompiledExpect(expect, denial, warnings, tuple(assertions), tuple(set_by))

    def _regex(self, text: str | None, path: JsonPath) -> re.Pattern[str] | None:
        if text is None:
            return None
        try:
            return re.compile(text)
        except re.error as exc:
            self.problem(path, f"invalid regex {text!r}: {exc}")
            return None


def build_context(*layers: BuildkiteFacts | None) -> BuildContext:
    """The build facts of a case: the defaults, then the suite's, then the case's."""
    context = BuildContext()
    for facts in layers:
        if facts is None:
            continue
        context = context.with_overrides(
            org=facts.org,
            pipeline=facts.pipeline,
            pipeline_name=facts.pipeline_name,
            repository=facts.repository,
            branch=facts.branch,
            commit=facts.commit,
            message=facts.message,
            source=facts.source,
            tag=facts.tag,
            build_number=facts.build_number,
        )
    return context


def merge_config(base: Mapping[str, JSON], overrides: Mapping[str, JSON]) -> dict[str, JSON]:
    """``overrides`` over ``base``: maps merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_config(current, value)
        else:
            merged[key] = value
    return merged


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and part in ("str", "dict[str,any]", "list[any]", "int", "constrained-int")


def _without_union_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(part for part in loc if not _is_union_tag(part))
