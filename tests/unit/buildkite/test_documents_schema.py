"""Every document the client sends is valid against the shipped subset and Buildkite's public schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    build_schema,
    parse,
    print_ast,
    validate,
)

from engine.buildkite.documents import ALL_DOCUMENTS, MAX_JOB_STATES_PER_REQUEST, get_command_job_states
from engine.buildkite.graphql import BuildkiteGraphQL
from engine.buildkite.schema import schema_sdl, subset_schema
from tests.fakes.buildkite import FakeBuildkite

PUBLIC_SCHEMA = Path("/work/shared/reference/buildkite-graphql-schema.graphql")


@pytest.fixture(scope="module")
def public_schema() -> GraphQLSchema:
    if not PUBLIC_SCHEMA.exists():
        pytest.skip(f"{PUBLIC_SCHEMA} is not available")
    return build_schema(PUBLIC_SCHEMA.read_text("utf-8"))


async def _documents_sent_by_the_client() -> dict[str, str]:
    """Drive every client operation against the fake and collect the documents that went out."""
    async with FakeBuildkite() as fake:
        uuid = fake.add_job()
        async with BuildkiteGraphQL(fake.graphql_url, fake.graphql_token) as client:
            await client.scheduled_jobs("test-org", "kubernetes")
            await client.scheduled_jobs(
                "test-org", "kubernetes", cluster_uuid="11111111-2222-3333-4444-555555555555"
            )
            await client.job_state(uuid)
            await client.job_states([uuid, "00000000-0000-4000-8000-000000000000"])
            await client.job_fixture(uuid)
            await client.cancel_job(uuid, "pod")
        return {str(r.operation_name): r.body["query"] for r in fake.graphql_requests()}


async def test_the_client_sends_exactly_the_known_documents() -> None:
    sent = await _documents_sent_by_the_client()
    assert sent == {name: print_ast(parse(text)) for name, text in ALL_DOCUMENTS.items()}


async def test_every_sent_document_is_valid_against_both_schemas() -> None:
    schemas = [subset_schema()]
    if PUBLIC_SCHEMA.exists():
        schemas.append(build_schema(PUBLIC_SCHEMA.read_text("utf-8")))
    sent = await _documents_sent_by_the_client()
    assert len(sent) == len(ALL_DOCUMENTS)
    for schema in schemas:
        assert {name: validate(schema, parse(text)) for name, text in sent.items()} == {
            name: [] for name in sent
        }


@pytest.mark.parametrize("name", sorted(ALL_DOCUMENTS))
def test_document_is_valid_against_the_shipped_subset(name: str) -> None:
    assert validate(subset_schema(), parse(ALL_DOCUMENTS[name])) == []


@pytest.mark.parametrize("name", sorted(ALL_DOCUMENTS))
def test_document_is_valid_against_the_public_schema(name: str, public_schema: GraphQLSchema) -> None:
    assert validate(public_schema, parse(ALL_DOCUMENTS[name])) == []


@pytest.mark.parametrize("count", [1, MAX_JOB_STATES_PER_REQUEST])
def test_every_size_of_the_job_states_document_is_valid(count: int) -> None:
    schemas = [subset_schema()]
    if PUBLIC_SCHEMA.exists():
        schemas.append(build_schema(PUBLIC_SCHEMA.read_text("utf-8")))
    for schema in schemas:
        assert validate(schema, parse(get_command_job_states(count))) == []


def test_the_subset_agrees_with_the_public_schema(public_schema: GraphQLSchema) -> None:
    """Each type, field, argument (with default) and enum value of the subset exists identically upstream."""
    problems: list[str] = []
    for name, ours in subset_schema().type_map.items():
        if name.startswith("__"):
            continue
        theirs = public_schema.type_map.get(name)
        if theirs is None or type(theirs) is not type(ours):
            problems.append(f"{name}: missing or of another kind upstream")
            continue
        if isinstance(ours, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            assert isinstance(theirs, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType)
            problems += _field_differences(name, ours, theirs)
        if isinstance(ours, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(theirs, GraphQLObjectType | GraphQLInterfaceType)
            missing = {i.name for i in ours.interfaces} - {i.name for i in theirs.interfaces}
            problems += [f"{name} implements {i} only here" for i in sorted(missing)]
        if isinstance(ours, GraphQLEnumType):
            assert isinstance(theirs, GraphQLEnumType)
            problems += [f"{name}.{v}: no such value upstream" for v in ours.values if v not in theirs.values]
        if isinstance(ours, GraphQLUnionType):
            assert isinstance(theirs, GraphQLUnionType)
            if {t.name for t in ours.types} != {t.name for t in theirs.types}:
                problems.append(f"{name}: members differ")
    assert problems == []


def _field_differences(
    type_name: str,
    ours: GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType,
    theirs: GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType,
) -> list[str]:
    problems: list[str] = []
    for field_name, field in ours.fields.items():
        upstream = theirs.fields.get(field_name)
        where = f"{type_name}.{field_name}"
        if upstream is None:
            problems.append(f"{where}: no such field upstream")
            continue
        if str(field.type) != str(upstream.type):
            problems.append(f"{where}: {field.type} here, {upstream.type} upstream")
        for arg_name, arg in getattr(field, "args", {}).items():
            upstream_arg = getattr(upstream, "args", {}).get(arg_name)
            if upstream_arg is None or str(arg.type) != str(upstream_arg.type):
                problems.append(f"{where}({arg_name}): differs upstream")
            elif arg.default_value != upstream_arg.default_value:
                problems.append(f"{where}({arg_name}): default differs upstream")
    return problems


def test_the_schema_ships_inside_the_package() -> None:
    text = schema_sdl()
    assert "type JobTypeCommand implements JobInterface & Node" in text
    assert subset_schema().query_type is not None
    assert subset_schema().mutation_type is not None
