"""The Buildkite GraphQL schema subset that ships with the package (``schema.graphql``).

The client validates every document against it before sending (a typo fails fast, offline) and the
test fake executes requests against it, so both sides agree with the public schema on names and types.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from graphql import GraphQLSchema, build_schema

SCHEMA_FILE = "schema.graphql"


def schema_sdl() -> str:
    """The schema text, read from the installed package (works from a wheel or a source checkout)."""
    return resources.files(__package__ or "engine.buildkite").joinpath(SCHEMA_FILE).read_text("utf-8")


@cache
def subset_schema() -> GraphQLSchema:
    """The parsed schema; built once because parsing costs far more than validating a document."""
    return build_schema(schema_sdl())
