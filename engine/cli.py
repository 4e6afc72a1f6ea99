"""The ``engine`` command line: dry runs, validation, linting and the controller.

Exit codes are part of the interface: 0 = admitted/valid, 1 = denied/problems found, 2 = unusable
input (a file that is not a job, a policy or config that does not load). Errors are one line each on
stderr; a traceback never reaches the user.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from engine import __version__
from engine.controller.command import run_command
from engine.core.compiler import PolicyError
from engine.core.evaluate import evaluate
from engine.inputs import InputError, load_config_file, load_job_file
from engine.lint import LintError, lint_pipeline
from engine.policy.loader import load_policies
from engine.render import render_explain, render_manifest, render_warnings

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_INVALID = 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A policy-driven Buildkite agent stack for Kubernetes.",
    pretty_exceptions_enable=False,
)


def _fail(lines: list[str]) -> typer.Exit:
    for line in lines:
        typer.echo(line, err=True)
    return typer.Exit(EXIT_INVALID)


@app.command("test")
def dry_run_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Policy files or directories, after the defaults.")
    ] = None,
    job: Annotated[
        Path, typer.Option("--job", "-j", help="A Buildkite job in its GraphQL wire shape (JSON).")
    ] = Path(),
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The controller config file (YAML).")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json.")] = "yaml",
    explain: Annotated[
        bool, typer.Option("--explain", help="Show which policy set or changed each field.")
    ] = False,
    no_default_policies: Annotated[
        bool, typer.Option("--no-default-policies", help="Do not load the shipped default policy set first.")
    ] = False,
) -> None:
    """Print the Kubernetes Job a Buildkite job would get, and why (a dry run)."""
    if job == Path():
        raise _fail(["engine test: --job FILE is required"])
    if output not in ("yaml", "json"):
        raise _fail([f"engine test: --output must be yaml or json, not {output!r}"])
    problems: list[str] = []
    policies = None
    try:
        policies = load_policies(paths or [], include_defaults=not no_default_policies)
    except PolicyError as exc:
        problems.extend(exc.problems)
    try:
        controller_config = load_config_file(config)
    except InputError as exc:
        problems.extend(exc.problems)
    try:
        buildkite_job = load_job_file(job)
    except InputError as exc:
        problems.extend(exc.problems)
    if problems or policies is None:
        raise _fail(problems)
    decision = evaluate(policies, buildkite_job, controller_config.expression_view())
    if decision.admitted:
        sys.stdout.write(render_manifest(decision, output))
    else:
        sys.stderr.write(decision.failure_message + "\n")  # exactly what the Buildkite job's log shows
    if explain:
        sys.stderr.write(render_explain(decision, policies.replacements))
    elif decision.warnings:
        sys.stderr.write(render_warnings(decision))
    raise typer.Exit(EXIT_OK if decision.admitted else EXIT_DENIED)


@app.command("validate")
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
) -> None:
    """Load and check policies (or a rendered chart's config and policies) without evaluating any job."""
    if from_manifests is not None:
        _validate_manifests(from_manifests)
        return
    if not paths and no_default_policies:
        raise _fail(["engine validate: give policy files or directories, or --from-manifests"])
    try:
        policies = load_policies(paths or [], include_defaults=not no_default_policies)
    except PolicyError as exc:
        raise _fail(exc.problems) from None
    if list_policies:
        for policy in policies.policies:
            typer.echo(f"{policy.name}@{policy.digest}  {policy.phase.value:<9}  {policy.where}")
    typer.echo(f"{len(policies)} policies OK")


def _validate_manifests(source: str) -> None:
    from engine.predeploy import check_manifests  # noqa: PLC0415 - only this option needs it

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


@app.command("lint")
def lint_command(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file whose kubernetes plugins to check.")],
) -> None:
    """Check a pipeline's kubernetes plugin blocks against schema/pipeline.schema.json (exit 0/1/2)."""
    try:
        result = lint_pipeline(file)
    except LintError as exc:
        raise _fail([str(exc)]) from None
    stream = sys.stdout if result.ok else sys.stderr
    for line in result.render():
        stream.write(line + "\n")
    raise typer.Exit(result.exit_code)


app.command("run", help="Run the controller: Buildkite jobs become Kubernetes Jobs through the policies.")(
    run_command
)


@app.command("version")
def version_command() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console entry point: run the app and turn any unexpected error into one line, exit 70."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:
        typer.echo(f"engine: internal error: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(70) from None
