"""Per-pipeline secrets example: only payments pipelines on main ever reference the deploy Secret.

``50-deploy-secrets.yaml`` promises that a pod references Secret ``payments-deploy-credentials`` (in
any way at all) only when Buildkite's own facts say the pipeline slug starts with ``payments-`` and the
branch is ``main``. Property: for every other job, it is denied or its pod has no such reference. The
author attacks twice: by forging the facts in the job's env, and by naming the Secret directly.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.compiler import PolicySet
from tests.attacks.harness import (
    DEFAULT_FACTS,
    PAYMENTS_MAIN,
    Facts,
    Job,
    example,
    pod,
    policies,
    require_admitted,
    run,
    run_or_refuse,
)
from tests.attacks.oracle import references_to
from tests.attacks.secret_routes import secret_routes

SECRET = "payments-deploy-credentials"
PAYMENTS_FEATURE = Facts(pipeline_slug="payments-api", pipeline_name="Payments API", branch="feature/x")
WEB_MAIN = Facts(branch="main")


def deploy_secrets() -> PolicySet:
    return policies(example("50-deploy-secrets.yaml"))


def assert_no_reference(job: Job) -> None:
    decision = run_or_refuse(deploy_secrets(), job)
    if decision is not None and decision.admitted:
        found = references_to(pod(decision), SECRET)
        assert found == [], f"admitted with references to {SECRET}: {[r.where for r in found]}"


@pytest.mark.parametrize(
    "job",
    [
        pytest.param(
            Job(env=("BUILDKITE_PIPELINE_SLUG=payments-api", "BUILDKITE_BRANCH=main")),
            id="env-forges-slug-and-branch",
        ),
        pytest.param(
            Job(facts=WEB_MAIN, env=("BUILDKITE_PIPELINE_SLUG=payments-api",)), id="env-forges-slug-on-main"
        ),
        pytest.param(
            Job(facts=PAYMENTS_FEATURE, env=("BUILDKITE_BRANCH=main",)), id="env-forges-branch-on-payments"
        ),
        pytest.param(
            Job(facts=DEFAULT_FACTS, env_facts=PAYMENTS_MAIN), id="env-consistently-claims-payments-main"
        ),
        pytest.param(Job(facts=None, env_facts=PAYMENTS_MAIN), id="node-without-trusted-fields"),
        pytest.param(
            Job(facts=PAYMENTS_FEATURE, env=("BUILDKITE_BRANCH=main", "BUILDKITE_BRANCH=main")),
            id="env-forges-branch-twice",
        ),
        pytest.param(
            Job(facts=Facts(pipeline_slug="web-payments-api", branch="main")),
            id="slug-contains-but-does-not-start",
        ),
        pytest.param(
            Job(facts=Facts(pipeline_slug="payments-api", branch="main-backport")), id="branch-prefixed-main"
        ),
        pytest.param(Job(facts=Facts(pipeline_slug="Payments-api", branch="main")), id="slug-capitalised"),
    ],
)
def test_forged_facts_do_not_earn_the_secret(job: Job) -> None:
    assert_no_reference(job)


@pytest.mark.parametrize(("plugin"), [pytest.param(p, id=name) for name, p in secret_routes(SECRET).items()])
def test_naming_the_secret_directly_does_not_earn_it(plugin: dict[str, Any]) -> None:
    assert_no_reference(Job(plugin=plugin))


@pytest.mark.parametrize(
    "job",
    [
        pytest.param(Job(facts=PAYMENTS_MAIN), id="payments-main"),
        pytest.param(
            Job(facts=PAYMENTS_MAIN, env=("BUILDKITE_PIPELINE_SLUG=web", "BUILDKITE_BRANCH=x")),
            id="payments-main-env-says-otherwise",
        ),
    ],
)
def test_the_payments_pipeline_on_main_gets_the_secret(job: Job) -> None:
    decision = run(deploy_secrets(), job)
    require_admitted(decision)
    actual = references_to(pod(decision), SECRET)
    assert actual != []
