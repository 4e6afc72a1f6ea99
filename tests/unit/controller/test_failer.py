"""JobFailer: acquire-and-fail against the fake Buildkite, with the token read from the Secret each time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from engine.buildkite.agent_api import AgentAPI
from engine.controller.failer import JobFailer
from engine.controller.metrics import ControllerMetrics
from engine.model.config import ControllerConfig, parse_config
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample
from tests.unit.controller.fakes import SecretStore

NAMESPACE = "buildkite"
SECRET = "agent-token"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
def config() -> ControllerConfig:
    return parse_config({"namespace": NAMESPACE, "agent-token-secret": SECRET}, "test")


@pytest.fixture
def secrets(fake: FakeBuildkite) -> SecretStore:
    return SecretStore({(NAMESPACE, SECRET): fake.agent_token, ("other", SECRET): fake.agent_token})


def failer_for(
    fake: FakeBuildkite,
    secrets: SecretStore,
    config: ControllerConfig,
    metrics: ControllerMetrics | None = None,
) -> JobFailer:
    agent_api = AgentAPI(fake.agent_url, retry_scale=0.0)
    return JobFailer(secrets, agent_api, config, metrics.scheduler if metrics else None)


async def test_a_scheduled_job_is_failed_with_the_message_as_its_log(
    fake: FakeBuildkite, secrets: SecretStore, config: ControllerConfig
) -> None:
    uuid = fake.add_job(agent_query_rules=["queue=kubernetes", "os=linux"])
    outcome = await failer_for(fake, secrets, config).fail(
        uuid, ["queue=kubernetes", "os=linux"], "nope\nsecond line"
    )
    assert outcome == "failed"
    job = fake.job(uuid)
    assert (job.state, job.exit_status, job.log) == ("FINISHED", "1", "nope\nsecond line")
    assert job.agent_name == f"buildkite-{uuid}"
    agent = next(agent for agent in fake.agents if agent.job_uuid == uuid)
    assert agent.meta_data == ("queue=kubernetes", "os=linux")
    assert agent.disconnected
    assert secrets.reads == [(SECRET, NAMESPACE)]


async def test_the_token_is_read_from_the_given_namespace_every_time(
    fake: FakeBuildkite, secrets: SecretStore, config: ControllerConfig
) -> None:
    failer = failer_for(fake, secrets, config)
    first, second = fake.add_job(), fake.add_job()
    assert await failer.fail(first, ["queue=kubernetes"], "x", namespace="other") == "failed"
    assert await failer.fail(second, ["queue=kubernetes"], "x") == "failed"
    assert secrets.reads == [(SECRET, "other"), (SECRET, NAMESPACE)]


async def test_a_job_someone_else_has_is_rejected(
    fake: FakeBuildkite, secrets: SecretStore, config: ControllerConfig
) -> None:
    uuid = fake.add_job(state="RUNNING")
    metrics = ControllerMetrics()
    assert (
        await failer_for(fake, secrets, config, metrics).fail(uuid, ["queue=kubernetes"], "x") == "rejected"
    )
    assert fake.job(uuid).state == "RUNNING"
    assert sample(metrics, "buildkite_scheduler_job_fail_on_buildkite_errors_total") == 1
    assert sample(metrics, "buildkite_scheduler_jobs_failed_on_buildkite_total") == 0


async def test_an_unreadable_secret_is_an_error_and_nothing_is_sent(
    fake: FakeBuildkite, config: ControllerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    uuid = fake.add_job()
    with caplog.at_level(logging.ERROR):
        outcome = await failer_for(fake, SecretStore({}), config).fail(uuid, ["queue=kubernetes"], "x")
    assert outcome == "error"
    assert fake.agent_requests() == []
    assert f"reading the agent token from Secret {NAMESPACE}/{SECRET}" in caplog.text


async def test_an_agent_api_failure_is_an_error_without_the_token_in_the_log(
    fake: FakeBuildkite, config: ControllerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    uuid = fake.add_job()
    wrong_token = "wrong-agent-token-0123456789"
    metrics = ControllerMetrics()
    with caplog.at_level(logging.INFO):
        outcome = await failer_for(
            fake, SecretStore({(NAMESPACE, SECRET): wrong_token}), config, metrics
        ).fail(uuid, ["queue=kubernetes"], "x")
    assert outcome == "error"
    assert fake.job(uuid).state == "SCHEDULED"
    assert "cannot fail Buildkite job" in caplog.text
    assert wrong_token not in caplog.text
    assert sample(metrics, "buildkite_scheduler_job_fail_on_buildkite_errors_total") == 1
