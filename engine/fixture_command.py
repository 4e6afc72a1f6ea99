"""placeholder"""

import typer

fixture_app = typer.Typer()


@fixture_app.command("fixture")
def f() -> None:
    """Write a Buildkite job as a fixture."""
