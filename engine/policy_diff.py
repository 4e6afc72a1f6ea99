"""``engine diff OLD… --against NEW… (--suite | --pipeline | --job …)``: what a policy change does.

Every job is evaluated through both policy sets (the default set first in both, unless told
otherwise) with the same config, exactly as the controller would. For each job the report shows
whether the decision changed (admit/deny, the denials, the warnings) and a unified diff of the Job
manifests, so a reviewer sees the effect of a rollout on real pipelines rather than reading policy
YAML. The last line is ``N jobs: C changed, U unchanged``. Exit 1 when anything changed (CI can then
require a reviewed diff), 0 when nothing did, 2 on unusable input.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from engine.core.compiler import PolicyError, PolicySet
from engine.core.evaluate import evaluate
from engine.dry_run import read_jobs
from engine.inputs import InputError, load_config_file
from engine.model.config import ControllerConfig
from engine.model.decision import Decision
from engine.model.job import BuildkiteJob, JobInputError, parse_job
from engine.model.profiles import DEFAULT_PROFILE
from engine.pipeline.job import PipelineJobError, job_from_step
from engine.pipeline.source import PipelineReadError, load_pipeline
from engine.pipeline.steps import StepError, read_pipeline_document
from engine.policy.loader import load_policies
from engine.render import to_yaml
from engine.suite.load import SuiteError, load_suite

EXIT_SAME = 0
EXIT_CHANGED = 1
EXIT_INVALID = 2


@dataclass(frozen=True, slots=True)
class DiffJob:
    source: str
    job: BuildkiteJob
    config: ControllerConfig


@dataclass(frozen=True, slots=True)
class JobDiff:
    source: str
    before: Decision
    after: Decision

    @property
    def changed(self) -> bool:
        return (
            _decision_facts(self.before) != _decision_facts(self.after)
            or self.before.manifest != self.after.manifest
        )


def run_diff_command(
    old: list[Path],
    new: list[Path],
    *,
    suite: Path | None = None,
    pipeline: Path | None = None,
    jobs: list[str] | None = None,
    config: Path | None = None,
    include_defaults: bool = True,
) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of comparing ``old`` with ``new`` on the given jobs."""
    problems: list[str] = []
    sources = sum(1 for given in (suite, pipeline, jobs) if given)
    if sources != 1:
        return (
            EXIT_INVALID,
            "",
            "engine diff: give exactly one of --suite FILE, --pipeline FILE or --job FILE\n",
        )
    if suite is not None and config is not None:
        problems.append("engine diff: a suite names its own config; drop --config")
    controller_config = None
    try:
        controller_config = load_config_file(config)
    except InputError as exc:
        problems.extend(exc.problems)
    diff_jobs: list[DiffJob] = []
    profile = controller_config.profile if controller_config is not None else DEFAULT_PROFILE
    suite_problems: list[str] = []
    suite_jobs = _suite_jobs(suite, suite_problems) if suite is not None else []
    if suite is not None:
        profiles = {job.config.profile for job in suite_jobs}
        profile = profiles.pop() if len(profiles) == 1 else profile
    before = _policies(old, include_defaults, problems, profile)
    after = _policies(new, include_defaults, problems, profile)
    if controller_config is not None:
        if suite is not None:
            diff_jobs = suite_jobs
            problems.extend(suite_problems)
        elif pipeline is not None:
            diff_jobs = _pipeline_jobs(pipeline, controller_config, problems)
        else:
            read, unreadable = read_jobs(jobs or [])
            problems.extend(unreadable)
            diff_jobs = [DiffJob(item.source, item.job, controller_config) for item in read]
    if problems or before is None or after is None:
        return EXIT_INVALID, "", "".join(line + "\n" for line in problems)
    diffs = [_diff(before, after, item) for item in diff_jobs]
    changed = sum(1 for d in diffs if d.changed)
    text = "".join(render_job_diff(d) for d in diffs)
    text += f"{len(diffs)} jobs: {changed} changed, {len(diffs) - changed} unchanged\n"
    return (EXIT_CHANGED if changed else EXIT_SAME), text, ""


def render_job_diff(diff: JobDiff) -> str:
    if not diff.changed:
        return f"= {diff.source}: unchanged\n"
    lines = [f"~ {diff.source}: changed"]
    before, after = diff.before, diff.after
    if before.admitted != after.admitted:
        lines.append(f"  decision: {_verdict(before)} -> {_verdict(after)}")
    for label, old, new in (
        ("denial", [d.render() for d in before.denials], [d.render() for d in after.denials]),
        ("warning", [w.render() for w in before.warnings], [w.render() for w in after.warnings]),
    ):
        lines.extend(f"  - {label}: {text}" for text in old if text not in new)
        lines.extend(f"  + {label}: {text}" for text in new if text not in old)
    if before.manifest != after.manifest:
        old_text = to_yaml(before.manifest).splitlines()
        new_text = to_yaml(after.manifest).splitlines()
        lines.extend(
            "  " + line.rstrip("\n")
            for line in difflib.unified_diff(old_text, new_text, "before", "after", lineterm="", n=2)
        )
    return "\n".join(lines) + "\n"


def _verdict(decision: Decision) -> str:
    return "admit" if decision.admitted else "deny"


def _decision_facts(decision: Decision) -> tuple[object, ...]:
    return (
        decision.admitted,
        tuple(d.render() for d in decision.denials),
        tuple(w.render() for w in decision.warnings),
    )


def _policies(
    paths: list[Path], include_defaults: bool, problems: list[str], profile: str = DEFAULT_PROFILE
) -> PolicySet | None:
    """The policies of one side; both sides load the config's profile after the defaults."""
    try:
        return load_policies(paths, include_defaults=include_defaults, profile=profile)
    except PolicyError as exc:
        problems.extend(exc.problems)
        return None


def _diff(before: PolicySet, after: PolicySet, item: DiffJob) -> JobDiff:
    view = item.config.expression_view()
    return JobDiff(item.source, evaluate(before, item.job, view), evaluate(after, item.job, view))


def _suite_jobs(suite: Path, problems: list[str]) -> list[DiffJob]:
    try:
        loaded = load_suite(suite, policies_override=[], include_defaults=False)
    except SuiteError as exc:
        problems.extend(exc.problems)
        return []
    return [DiffJob(f"{suite}: {case.name}", case.job, case.config) for case in loaded.cases]


def _pipeline_jobs(path: Path, config: ControllerConfig, problems: list[str]) -> list[DiffJob]:
    try:
        pipeline = read_pipeline_document(load_pipeline(path))
    except PipelineReadError as exc:
        problems.append(str(exc))
        return []
    except StepError as exc:
        problems.append(f"{path}: {exc}")
        return []
    out: list[DiffJob] = []
    for step in pipeline.steps:
        if step.kind != "command":
            continue
        try:
            node = job_from_step(pipeline, step, None)
            name = step.key if step.key is not None else str(step.index)
            out.append(DiffJob(f"{path} step {name}", parse_job(node), config))
        except (PipelineJobError, JobInputError) as exc:
            problems.append(f"{path}: {exc}")
    if not out and not problems:
        problems.append(f"{path}: the pipeline has no command steps")
    return out
