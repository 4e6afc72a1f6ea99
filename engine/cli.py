"""The ``engine`` command line: dry runs, suites, diffs, validation, linting, fixtures and the controller.

Exit codes are part of the interface: 0 = admitted/valid/passed, 1 = denied/problems found/failed/
changed, 2 = unusable input (a file that is not a job, a policy or config that does not load, a bad
suite). Errors are one line each on stderr; a traceback never reaches the user.

Start-up is kept short because ``engine test`` runs in editors and CI loops: the command functions here
are thin, their logic lives in modules imported when the command runs, and ``run`` and ``fixture`` are
loaded only when invoked, so a dry run never imports the controller, the GraphQL client or the
Kubernetes client (``bench/cli_import.py`` measures it; a test enforces it).
"""

from __future__ import annotations

import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from engine import __version__

if TYPE_CHECKING:
    from engine.core.compiler import PolicySet
    from engine.model.config import ControllerConfig

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_INVALID = 2

PROG = "engine"
COMPLETE_VAR = "_ENGINE_COMPLETE"


class OutputFormat(StrEnum):
    yaml = "yaml"
    json = "json"


class ExplainMode(StrEnum):
    last = "last"
    full = "full"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


class _Command(TyperCommand):
    """Two spellings click cannot parse on its own: ``--explain=full`` (``--explain`` alone stays a
    flag, so ``--explain my-policies/`` keeps the path) and ``--against A B …`` (several values)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _normalise_arguments(args))


def _normalise_arguments(args: list[str]) -> list[str]:
    out: list[str] = []
    against = False
    for arg in args:
        if arg.startswith("--explain="):
            out.extend(["--explain", "--explain-mode", arg.split("=", 1)[1]])
            against = False
        elif arg == "--against":
            against = True
        elif against and not arg.startswith("-"):
            out.extend(["--against", arg])
        else:
            against = False
            out.append(arg)
    return out


_LAZY_COMMANDS = {
    "fixture": ("engine.fixture_command", "fixture_app"),
    "run": ("engine.controller.command", "run_app"),
}


class _Group(TyperGroup):
    """Adds commands whose modules are imported only when they are used (or listed in help)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_LAZY_COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in _LAZY_COMMANDS:
            import importlib

            module_name, attribute = _LAZY_COMMANDS[cmd_name]
            sub_app = getattr(importlib.import_module(module_name), attribute)
            return typer.main.get_command(sub_app)
        return super().get_command(ctx, cmd_name)


CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": 120,
    # the terminal's width, or 120 columns when help is piped (click would assume 80 and cut lines)
    "terminal_width": shutil.get_terminal_size((120, 24)).columns,
}

app = typer.Typer(
    cls=_Group,
    add_completion=True,
    no_args_is_help=True,
    help="A policy-driven Buildkite agent stack for Kubernetes.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
)


def _fail(lines: list[str]) -> typer.Exit:
    for line in lines:
        typer.echo(line, err=True)
    return typer.Exit(EXIT_INVALID)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """A policy-driven Buildkite agent stack for Kubernetes."""


def _load_inputs(
    paths: list[Path],
    config: Path | None,
    no_default_policies: bool,
    problems: list[str],
    profile: str | None = None,
) -> tuple[PolicySet | None, ControllerConfig | None]:
    """The policies and config of a dry run. ``profile`` (``--profile``) overrides the config's
    ``profile`` key; the profile chosen decides which profile policies load after the defaults."""
    from engine.core.compiler import PolicyError
    from engine.inputs import InputError, load_config_file
    from engine.model.profiles import DEFAULT_PROFILE
    from engine.policy.loader import load_policies

    policies = controller_config = None
    try:
        controller_config = load_config_file(config, overrides={"profile": profile} if profile else None)
    except InputError as exc:
        problems.extend(exc.problems)
    chosen = profile or (controller_config.profile if controller_config is not None else DEFAULT_PROFILE)
    try:
        policies = load_policies(paths, include_defaults=not no_default_policies, profile=chosen)
    except PolicyError as exc:
        problems.extend(exc.problems)
    return policies, controller_config


@app.command("test", cls=_Command, context_settings=CONTEXT_SETTINGS)
def dry_run_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Policy files or directories, loaded after the defaults.")
    ] = None,
    job: Annotated[
        list[str] | None,
        typer.Option(
            "--job",
            "-j",
            help="A Buildkite job in its GraphQL wire shape (JSON); a directory of them; - reads stdin. "
            "Repeatable.",
            show_default=False,
        ),
    ] = None,
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline", "-p", help="A pipeline.yml: dry-run one of its command steps.", show_default=False
        ),
    ] = None,
    step: Annotated[
        str | None, typer.Option("--step", help="With --pipeline: the step's key.", show_default=False)
    ] = None,
    step_index: Annotated[
        int | None,
        typer.Option(
            "--step-index", help="With --pipeline: the step's number (0-based, group steps opened).", min=0
        ),
    ] = None,
    suite: Annotated[
        list[Path] | None,
        typer.Option(
            "--suite",
            "-s",
            help="Run a PolicySuite file, or every *.suite.yaml in a directory.",
            show_default=False,
        ),
    ] = None,
    case: Annotated[
        str | None, typer.Option("--case", help="With --suite: run only cases whose name matches this regex.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="The controller config file (YAML).", show_default=False),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Output format.")
    ] = OutputFormat.yaml,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Print the Job with the policy/rule that set each field (--explain=full: and earlier ones).",
        ),
    ] = False,
    explain_mode: Annotated[ExplainMode, typer.Option("--explain-mode", hidden=True)] = ExplainMode.last,
    no_default_policies: Annotated[
        bool, typer.Option("--no-default-policies", help="Do not load the shipped default policy set first.")
    ] = False,
    org: Annotated[str | None, typer.Option("--org", help="With --pipeline: the organization slug.")] = None,
    pipeline_slug: Annotated[
        str | None, typer.Option("--pipeline-slug", help="With --pipeline: the pipeline slug.")
    ] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", help="With --pipeline: the build's branch.")
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--commit", help="With --pipeline: the build's commit.")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="The policy profile (config key profile): default or upstream-v0.47.",
            show_default=False,
        ),
    ] = None,
    pod_template: Annotated[
        list[str] | None,
        typer.Option(
            "--pod-template",
            help="NAME=FILE: a PodTemplate the controller's namespace would hold (a step's podTemplate); "
            "repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the Kubernetes Job a Buildkite job would get, and why (a dry run); or run policy suites."""
    if suite:
        from engine.suite.command import run_suites_command

        clashes = [
            flag
            for flag, given in (
                ("--job", job),
                ("--pipeline", pipeline),
                ("policy paths", paths),
                ("--config", config),
                ("--profile", profile),
                ("--pod-template", pod_template),
            )
            if given
        ]
        if clashes:
            raise _fail(
                [f"engine test: a suite names its own jobs, policies and config; drop {', '.join(clashes)}"]
            )
        code, text, errors = run_suites_command(suite, case=case, output=output.value)
        sys.stdout.write(text)
        sys.stderr.write(errors)
        raise typer.Exit(code)
    if not job and pipeline is None:
        raise _fail(["engine test: give --job FILE, --pipeline FILE or --suite FILE"])
    if (step is not None or step_index is not None) and pipeline is None:
        raise _fail(["engine test: --step and --step-index choose a step of --pipeline FILE"])

    from engine.dry_run import DryRunJob, read_jobs, read_pod_templates, run_dry_run

    problems: list[str] = []
    policies, controller_config = _load_inputs(paths or [], config, no_default_policies, problems, profile)
    templates, template_problems = read_pod_templates(pod_template or [])
    problems.extend(template_problems)
    jobs, unreadable = read_jobs(job or [])
    if pipeline is not None:
        from engine.model.job import JobInputError, parse_job
        from engine.pipeline.files import job_from_pipeline_file
        from engine.pipeline.job import BuildContext, PipelineJobError

        context = BuildContext().with_overrides(org=org, pipeline=pipeline_slug, branch=branch, commit=commit)
        try:
            node = job_from_pipeline_file(pipeline, key=step, index=step_index, context=context)
            chosen = step if step is not None else step_index
            jobs.append(
                DryRunJob(f"{pipeline}" + (f" step {chosen}" if chosen is not None else ""), parse_job(node))
            )
        except (PipelineJobError, JobInputError) as exc:
            problems.append(str(exc))
    if problems or policies is None or controller_config is None or (unreadable and not jobs):
        raise _fail(problems + unreadable)
    for line in unreadable:
        typer.echo(line, err=True)
    result = run_dry_run(
        policies,
        controller_config,
        jobs,
        output=output.value,
        explain=explain_mode.value if explain else None,
        unreadable=len(unreadable),
        pod_templates=templates,
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    raise typer.Exit(result.exit_code)


@app.command("diff", cls=_Command, context_settings=CONTEXT_SETTINGS)
def diff_command(
    old: Annotated[
        list[Path] | None,
        typer.Argument(help="The policy files or directories in use today (none: the default set alone)."),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against", help="The proposed policy files or directories (one or more).", show_default=False
        ),
    ] = None,
    suite: Annotated[
        Path | None,
        typer.Option("--suite", "-s", help="Compare on the jobs of this suite's cases.", show_default=False),
    ] = None,
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline", "-p", help="Compare on every command step of this pipeline.", show_default=False
        ),
    ] = None,
    job: Annotated[
        list[str] | None,
        typer.Option(
            "--job", "-j", help="Compare on these jobs (files, directories, - for stdin).", show_default=False
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="The controller config file (YAML).", show_default=False),
    ] = None,
    no_default_policies: Annotated[
        bool,
        typer.Option("--no-default-policies", help="Compare the given sets without the default set first."),
    ] = False,
) -> None:
    """Show, job by job, how the Job and the decision change between two policy sets (exit 1 if any does)."""
    from engine.policy_diff import run_diff_command

    if not against:
        raise _fail(["engine diff: --against NEW_PATHS... is required (the proposed policies)"])

    code, text, errors = run_diff_command(
        old or [],
        against,
        suite=suite,
        pipeline=pipeline,
        jobs=job or [],
        config=config,
        include_defaults=not no_default_policies,
    )
    sys.stdout.write(text)
    sys.stderr.write(errors)
    raise typer.Exit(code)


@app.command("validate", context_settings=CONTEXT_SETTINGS)
def validate_command(
    paths: Annotated[list[Path] | None, typer.Argument(help="Policy files or directories.")] = None,
    no_default_policies: Annotated[
        bool,
        typer.Option("--no-default-policies", help="Check the files on their own, without the defaults."),
    ] = False,
    from_manifests: Annotated[
        str | None,
        typer.Option(
            "--from-manifests",
            help="Check the controller config and policies in rendered manifests (a file, or - for stdin), "
            "e.g. helm template ... | engine validate --from-manifests -",
        ),
    ] = None,
    list_policies: Annotated[
        bool,
        typer.Option(
            "--list", help="List each policy: name, digest (as in the changed-by annotation), file."
        ),
    ] = False,
    profile: Annotated[
        str,
        typer.Option(
            "--profile", help="Load this profile's policies after the defaults (default, upstream-v0.47)."
        ),
    ] = "default",
) -> None:
    """Load and check policies (or a rendered chart's config and policies) without evaluating any job."""
    if from_manifests is not None:
        _validate_manifests(from_manifests)
        return
    if not paths and no_default_policies:
        raise _fail(["engine validate: give policy files or directories, or --from-manifests"])
    from engine.core.compiler import PolicyError
    from engine.model.profiles import PROFILES
    from engine.policy.loader import load_policies

    if profile not in PROFILES:
        raise _fail([f"--profile: unknown profile {profile!r} (known: {', '.join(PROFILES)})"])
    try:
        policies = load_policies(paths or [], include_defaults=not no_default_policies, profile=profile)
    except PolicyError as exc:
        raise _fail(exc.problems) from None
    if list_policies:
        for policy in policies.policies:
            typer.echo(f"{policy.name}@{policy.digest}  {policy.phase.value:<9}  {policy.where}")
    typer.echo(f"{len(policies)} policies OK")


def _validate_manifests(source: str) -> None:
    from engine.predeploy import check_manifests

    if source == "-":
        text, label = sys.stdin.read(), "<stdin>"
    else:
        try:
            text, label = Path(source).read_text(encoding="utf-8"), source
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail([f"{source}: cannot read: {exc}"]) from None
    report = check_manifests(text, label)
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    if not report.ok:
        raise _fail(report.problems)
    for line in report.checked:
        typer.echo(f"OK: {line}")


@app.command("lint", context_settings=CONTEXT_SETTINGS)
def lint_command(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file whose kubernetes plugins to check.")],
    profile: Annotated[
        str,
        typer.Option(
            "--profile", help="The profile whose plugin fields are known (default, upstream-v0.47)."
        ),
    ] = "default",
) -> None:
    """Check a pipeline's kubernetes plugin blocks against schema/pipeline.schema.json (exit 0/1/2)."""
    from engine.lint import LintError, lint_pipeline
    from engine.model.profiles import PROFILES

    if profile not in PROFILES:
        raise _fail([f"--profile: unknown profile {profile!r} (known: {', '.join(PROFILES)})"])
    try:
        result = lint_pipeline(file, head=PROFILES[profile].head_plugin_fields)
    except LintError as exc:
        raise _fail([str(exc)]) from None
    stream = sys.stdout if result.ok else sys.stderr
    for line in result.render():
        stream.write(line + "\n")
    raise typer.Exit(result.exit_code)


@app.command("version", context_settings=CONTEXT_SETTINGS)
def version_command() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command("completion", context_settings=CONTEXT_SETTINGS)
def completion_command(
    shell: Annotated[Shell, typer.Argument(help="The shell to print a completion script for.")],
) -> None:
    """Print the shell completion script, for the shell's start-up file: eval "$(engine completion bash)"."""
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell.value))


def main() -> None:
    """Console entry point: run the app and turn any unexpected error into one line, exit 70."""
    try:
        app(prog_name=PROG)
    except SystemExit:
        raise
    except Exception as exc:
        typer.echo(f"engine: internal error: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(70) from None
