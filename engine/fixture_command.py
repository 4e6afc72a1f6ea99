"""``engine fixture UUID``: the command, loaded only when used (it imports the GraphQL client)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from engine.fixture import FixtureError, fixture_text, graphql_access
from engine.inputs import InputError, read_config_yaml
from engine.model.config import GRAPHQL_ONLY_KEYS, ConfigError, env_var_name, resolve_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

fixture_app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@fixture_app.command("fixture")
def fixture_command(
    uuid: Annotated[str, typer.Argument(help="The Buildkite job's UUID.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The controller config (token, endpoint; env as for engine run).",
            show_default=False,
        ),
    ] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Keep env values the redaction patterns would hide.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the fixture here instead of stdout.", show_default=False),
    ] = None,
) -> None:
    """Fetch a job from Buildkite and write it as a fixture for engine test --job and suites."""
    source = str(config) if config is not None else "defaults"
    try:
        data = read_config_yaml(config.read_text(encoding="utf-8"), source) if config is not None else None
        controller_config = resolve_config(data, _without_graphql_access(os.environ), {}, source)
    except OSError as exc:
        typer.echo(f"{config}: cannot read: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except (InputError, ConfigError) as exc:
        for line in exc.problems:
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        access = graphql_access(controller_config, os.environ)
        text = fixture_text(controller_config, access, uuid, raw=raw)
    except FixtureError as exc:
        typer.echo(f"engine fixture: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _without_graphql_access(env: Mapping[str, str]) -> dict[str, str]:
    """The environment the config is resolved with: a GraphQL token or endpoint (or organization)
    given for the fixture must not turn a Stacks API config into a GraphQL one;
    ``engine.fixture.graphql_access`` reads them itself."""
    hidden = {env_var_name(key) for key in GRAPHQL_ONLY_KEYS}
    return {name: value for name, value in env.items() if name not in hidden}
