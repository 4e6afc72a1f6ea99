"""``engine test`` on jobs: read them (files, a directory, stdin, a pipeline step), evaluate each through
the same ``evaluate`` the controller calls, and render what a person or a script asked for.

One job prints as before (the Job on stdout, denials and warnings on stderr). Several jobs print every
admitted Job (YAML documents separated by ``---``, or a JSON list), one ``SOURCE: admitted|denied``
line each on stderr and a summary line. A job that cannot be read is reported and the others are
still evaluated; the exit status is the worst outcome: 2 unusable input, 1 denied, 0 all admitted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.inputs import InputError, load_job_file
from engine.model.config import DEFAULT_QUEUE, ControllerConfig
from engine.model.decision import Decision
from engine.model.job import BuildkiteJob, JobInputError, parse_job
from engine.model.jsonvalue import JSON
from engine.model.tags import WILDCARD, job_accepted_by_controller, parse_tags
from engine.render import render_warnings, to_json, to_yaml

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_INVALID = 2
STDIN = "-"


@dataclass(frozen=True, slots=True)
class DryRunJob:
    """A job to evaluate and the name it is reported under (a file, ``-``, a pipeline step)."""

    source: str
    job: BuildkiteJob


@dataclass(frozen=True, slots=True)
class DryRunOutput:
    stdout: str
    stderr: str
    exit_code: int


def read_jobs(arguments: Sequence[str], stdin: TextIO | None = None) -> tuple[list[DryRunJob], list[str]]:
    """Jobs from ``--job`` arguments: files, directories (their ``*.json``, in name order) and ``-``."""
    jobs: list[DryRunJob] = []
    problems: list[str] = []
    for argument in arguments:
        if argument == STDIN:
            text = (stdin or sys.stdin).read()
            try:
                jobs.append(DryRunJob("-", parse_job(json.loads(text))))
            except ValueError as exc:
                detail = "; ".join(exc.problems) if isinstance(exc, JobInputError) else f"not JSON: {exc}"
                problems.append(f"-: {detail}")
            continue
        path = Path(argument)
        files = [path]
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
        if path.is_dir() and not files:
            problems.append(f"{path}: no *.json job files in this directory")
        for file in files:
            try:
                jobs.append(DryRunJob(str(file), load_job_file(file)))
            except InputError as exc:
                problems.extend(exc.problems)
    return jobs, problems


def read_pod_templates(arguments: Sequence[str]) -> tuple[dict[str, JSON], list[str]]:
    """``NAME=FILE`` arguments -> the ``podTemplates`` input: each file is a PodTemplate as ``kubectl get
    podtemplate NAME -o yaml`` prints it (its ``template`` is used), or just its ``template``."""
    templates: dict[str, JSON] = {}
    problems: list[str] = []
    for argument in arguments:
        name, sep, file = argument.partition("=")
        if not sep or not name or not file:
            problems.append(f"--pod-template {argument}: expected NAME=FILE")
            continue
        try:
            document = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{file}: cannot read the PodTemplate: {' '.join(str(exc).split())}")
            continue
        template = document.get("template", document) if isinstance(document, dict) else None
        if not isinstance(template, dict) or not isinstance(template.get("spec", {}), dict):
            problems.append(f"{file}: expected a PodTemplate (kind: PodTemplate, with template.spec)")
            continue
        templates[name] = template
    return templates, problems


def tag_warning(job: BuildkiteJob, config: ControllerConfig) -> str | None:
    """Why a controller with this config would never be handed this job, or ``None`` when it would be.

    The controller asks Buildkite only for jobs on its ``queue``, then keeps a job when every tag it
    asks for is one the controller has (or ``*``); a dry run with a config that fails this shows a Job
    no controller with that config would create.
    """
    controller_tags, _ = parse_tags(config.tags)
    job_tags, _ = parse_tags(job.agent_query_rules)
    asked = job_tags.get("queue")
    for ignored in config.unmatched_job_tags():  # as the monitor matches them
        job_tags.pop(ignored, None)
        controller_tags.pop(ignored, None)
    reasons: list[str] = []
    stacks = config.mode().name == "stacks"
    if stacks:  # the controller lists its one queue's jobs
        queue: str | None = config.effective_queue()
        if asked is None and queue != DEFAULT_QUEUE:
            reasons.append("it names no queue, so Buildkite offers it to the default queue")
        elif asked is not None and asked not in (queue, WILDCARD):
            reasons.append(f"it is on queue {asked}, the controller's queue is {queue}")
    else:
        queue = controller_tags.get("queue")
        if "queue" not in job_tags and queue not in (None, "default"):
            reasons.append("it names no queue, so Buildkite offers it to the default queue")
    if not job_accepted_by_controller(job_tags, controller_tags):
        wanted = ",".join(
            f"{k}={v}" for k, v in job_tags.items() if v != WILDCARD and controller_tags.get(k) != v
        )
        reasons.append(f"it asks for {wanted}")
    if not reasons:
        return None
    if stacks:
        others = ",".join(f"{k}={v}" for k, v in controller_tags.items())
        return (
            f"a controller on queue {queue}{f' with tags {others}' if others else ''} would never take "
            f"this job: {'; '.join(reasons)}"
        )
    tags = ",".join(config.tags) or "none"
    return f"a controller with tags {tags} would never take this job: {'; '.join(reasons)}"


def run_dry_run(
    policies: PolicySet,
    config: ControllerConfig,
    jobs: Sequence[DryRunJob],
    *,
    output: str = "yaml",
    explain: str | None = None,
    unreadable: int = 0,
    pod_templates: Mapping[str, JSON] | None = None,
) -> DryRunOutput:
    """Evaluate every job and render the results (see the module docstring). ``pod_templates`` stands
    for the PodTemplates in the controller's namespace (``--pod-template NAME=FILE``)."""
    if explain is not None:
        from engine.explain.data import explain_data  # noqa: PLC0415 - only --explain needs these
        from engine.explain.view import render_blame  # noqa: PLC0415
    view = config.expression_view()
    outcomes = [(item, evaluate(policies, item.job, view, pod_templates=pod_templates)) for item in jobs]
    single = len(outcomes) == 1 and unreadable == 0
    out: list[str] = []
    err: list[str] = [f"warning: config: {notice}\n" for notice in config.notices()]
    documents: list[JSON] = []
    for item, decision in outcomes:
        warning = tag_warning(item.job, config)
        prefix = "" if single else f"{item.source}: "
        if warning is not None:
            err.append(f"{prefix}warning: {warning}\n")
        if explain is not None:
            if output == "json":
                documents.append(explain_data(decision, policies.replacements))
            else:
                documents.append(render_blame(decision, policies.replacements, full=explain == "full"))
        elif decision.admitted:
            documents.append(decision.manifest)
        if single:
            if not decision.admitted:
                err.append(decision.failure_message + "\n")  # exactly what the Buildkite job's log shows
            if explain is None and decision.warnings:
                err.append(render_warnings(decision))
        else:
            err.append(_summary_line(item.source, decision))
    out.append(_documents(documents, output, explain is not None and output != "json", single))
    if not single:
        admitted = sum(1 for _, d in outcomes if d.admitted)
        denied = len(outcomes) - admitted
        tail = f", {unreadable} unreadable" if unreadable else ""
        err.append(f"{len(outcomes) + unreadable} jobs: {admitted} admitted, {denied} denied{tail}\n")
    if unreadable:
        code = EXIT_INVALID
    elif any(not d.admitted for _, d in outcomes):
        code = EXIT_DENIED
    else:
        code = EXIT_OK
    return DryRunOutput("".join(out), "".join(err), code)


def _summary_line(source: str, decision: Decision) -> str:
    if decision.admitted:
        count = len(decision.warnings)
        noted = f" ({count} warning{'s' * (count != 1)})" if count else ""
        return f"{source}: admitted{noted}\n"
    return "".join(f"{source}: denied: {d.render()}\n" for d in decision.denials)


def _documents(documents: Iterable[JSON], output: str, texts: bool, single: bool) -> str:
    items = list(documents)
    if not items:
        return ""
    if texts:
        return "---\n".join(str(item) for item in items)
    if output == "json":
        return to_json(items[0]) if single else to_json(items)
    if single:
        return to_yaml(items[0])
    return "---\n".join(to_yaml(item) for item in items)
