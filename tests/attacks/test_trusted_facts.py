"""Trusted facts: ``pipeline``, ``build`` and ``step`` come from Buildkite's fields, never the env.

A policy of our own (``fixtures/policies/trusted-facts.yaml``) writes what it sees for each trusted
root into annotations. Property: whatever the author appends to the job's env, each root reads
exactly the value of Buildkite's own field on the job node (and is absent when the node has none);
the env itself stays readable as ``job.env``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from engine.model.decision import Decision
from tests.attacks.harness import (
    DEFAULT_FACTS,
    PAYMENTS_MAIN,
    Facts,
    Job,
    fixture_policy,
    policies,
    require_admitted,
    run,
    run_or_refuse,
)

PREFIX = "facts.attack.test/"
FORGED = Facts(
    pipeline_slug="payments-api",
    pipeline_name="Payments API",
    repository="git@github.com:example/payments.git",
    build_number=7,
    branch="main",
    commit="ffffffffffffffffffffffffffffffffffffffff",
    source="schedule",
    message="Deploy",
    step_key="deploy",
)

Reading = Callable[[Facts], list[Any]]
"""The acceptable JSON readings of one root for some facts (scalar, or the GraphQL object)."""

ROOTS: dict[str, tuple[str, Reading]] = {
    "pipeline.slug": ("BUILDKITE_PIPELINE_SLUG", lambda f: [f.pipeline_slug]),
    "pipeline.name": ("BUILDKITE_PIPELINE_NAME", lambda f: [f.pipeline_name]),
    "pipeline.repository": ("BUILDKITE_REPO", lambda f: [f.repository, {"url": f.repository}]),
    "build.branch": ("BUILDKITE_BRANCH", lambda f: [f.branch]),
    "build.number": ("BUILDKITE_BUILD_NUMBER", lambda f: [f.build_number, str(f.build_number)]),
    "build.commit": ("BUILDKITE_COMMIT", lambda f: [f.commit]),
    "build.source": ("BUILDKITE_SOURCE", lambda f: [f.source, {"name": f.source}]),
    "build.message": ("BUILDKITE_MESSAGE", lambda f: [f.message]),
    "step.key": ("BUILDKITE_STEP_KEY", lambda f: [f.step_key]),
}


def forged_value(root: str) -> str:
    values = {
        "pipeline.slug": FORGED.pipeline_slug,
        "pipeline.name": FORGED.pipeline_name,
        "pipeline.repository": FORGED.repository,
        "build.branch": FORGED.branch,
        "build.number": str(FORGED.build_number),
        "build.commit": FORGED.commit,
        "build.source": FORGED.source,
        "build.message": FORGED.message,
        "step.key": FORGED.step_key,
    }
    return values[root]


def recorded(decision: Decision, root: str) -> Any:
    require_admitted(decision)
    text = decision.manifest["metadata"]["annotations"][PREFIX + root]
    return "absent" if text == "absent" else json.loads(text)


def evaluate(job: Job) -> Decision:
    return run(policies(fixture_policy("trusted-facts.yaml")), job)


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_an_appended_env_entry_does_not_change_a_trusted_root(root: str) -> None:
    variable, reading = ROOTS[root]
    decision = evaluate(Job(env=(f"{variable}={forged_value(root)}",)))
    actual = recorded(decision, root)
    assert actual in reading(DEFAULT_FACTS)


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_a_consistently_forged_env_does_not_change_a_trusted_root(root: str) -> None:
    decision = evaluate(Job(env_facts=FORGED))
    actual = recorded(decision, root)
    assert actual in ROOTS[root][1](DEFAULT_FACTS)


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_without_buildkite_fields_a_root_is_absent_not_read_from_env(root: str) -> None:
    decision = run_or_refuse(
        policies(fixture_policy("trusted-facts.yaml")), Job(facts=None, env_facts=FORGED)
    )
    if decision is None:
        return  # refusing a node without Buildkite's fields is also safe
    actual = recorded(decision, root)
    assert actual == "absent"


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_each_root_reads_buildkites_field(root: str) -> None:
    decision = evaluate(Job(facts=PAYMENTS_MAIN, env_facts=DEFAULT_FACTS))
    actual = recorded(decision, root)
    assert actual in ROOTS[root][1](PAYMENTS_MAIN)


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(
            ("BUILDKITE_PIPELINE_SLUG=payments-api", "BUILDKITE_PIPELINE_SLUG=payments-api"), id="twice"
        ),
        pytest.param(("BUILDKITE_PIPELINE_SLUG=payments-api\nBUILDKITE_BRANCH=main",), id="newline-smuggled"),
        pytest.param(("BUILDKITE_PIPELINE_SLUG =payments-api",), id="name-with-trailing-space"),
        pytest.param(("buildkite_pipeline_slug=payments-api",), id="lower-case-name"),
    ],
)
def test_env_tricks_do_not_change_the_slug(entries: tuple[str, ...]) -> None:
    decision = evaluate(Job(env=entries))
    if not decision.admitted:
        # Correction: a name with a space is not one Kubernetes accepts, so the Job is refused
        # (``invalid``, after the policies ran): a denial. What the policies read is still checked.
        assert all(d.kind == "invalid" and "environment variable name" in d.message for d in decision.denials)
        decision = replace(decision, admitted=True, denials=())
    actual = recorded(decision, "pipeline.slug")
    assert actual in ROOTS["pipeline.slug"][1](DEFAULT_FACTS)


def test_the_env_stays_readable() -> None:
    decision = evaluate(Job(env=("BUILDKITE_PIPELINE_SLUG=payments-api",)))
    actual = recorded(decision, "job.env.slug")
    assert actual in ("payments-api", DEFAULT_FACTS.pipeline_slug)
