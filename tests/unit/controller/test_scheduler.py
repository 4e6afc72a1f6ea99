"""Scheduler: evaluate with the policies, then create the Job or fail the Buildkite job (§3.2, §4.6).

Failing goes through the real fail queue and ``JobFailer`` to the fake Buildkite; tests that look at
the failed job wait for the queue to drain first (failing happens in the background).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping

import pytest

from engine.buildkite.agent_api import AgentAPI
from engine.controller.fail_queue import FailQueue
from engine.controller.failer import JobFailer
from engine.controller.metrics import ControllerMetrics
from engine.controller.pipeline import DuplicateJobError, JobNotCreatedError, PendingJob
from engine.controller.policy_store import PolicyStore
from engine.controller.scheduler import FailQueueFullError, Scheduler
from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.core.finish import CHANGED_BY_ANNOTATION
from engine.kube.errors import AlreadyExistsError, InvalidObjectError, KubeAPIError
from engine.kube.labels import CONTROLLER_ID_LABEL
from engine.model.config import ControllerConfig, parse_config
from engine.model.decision import Decision
from engine.model.job import BuildkiteJob, parse_job
from engine.model.jsonvalue import JSON, JSONObject
from engine.policy.loader import load_policies
from tests.fakes.buildkite import FakeBuildkite
from tests.unit.controller.builders import sample
from tests.unit.controller.fakes import JobStore, SecretStore

NAMESPACE = "buildkite"
CONTROLLER_ID = "buildkite.kubernetes"
DENY_POLICY = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: no-main-deploys}
spec:
  phase: enforce
  rules:
  - name: no-deploys
    deny:
      when: job.command.startsWith("deploy")
      message: "deploying from ${{ tags.queue }} is not allowed"
"""


@pytest.fixture(scope="module")
def default_policies() -> PolicySet:
    return load_policies([])


@pytest.fixture(scope="module")
def deny_policies(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    directory = tmp_path_factory.mktemp("policies")
    (directory / "90-deny.yaml").write_text(DENY_POLICY)
    return load_policies([directory])


@pytest.fixture
async def fake() -> AsyncIterator[FakeBuildkite]:
    async with FakeBuildkite() as server:
        yield server


@pytest.fixture
def config(fake: FakeBuildkite) -> ControllerConfig:
    return parse_config({"namespace": NAMESPACE, "agent-config": {"endpoint": fake.agent_url}}, "test")


@pytest.fixture
def jobs() -> JobStore:
    return JobStore()


@pytest.fixture
def metrics() -> ControllerMetrics:
    return ControllerMetrics()


@pytest.fixture
async def failures(
    fake: FakeBuildkite, config: ControllerConfig, metrics: ControllerMetrics
) -> AsyncIterator[FailQueue]:
    """The fail queue the scheduler hands jobs to, with its workers running for the test."""
    secrets = SecretStore({(NAMESPACE, config.agent_token_secret): fake.agent_token})
    failer = JobFailer(secrets, AgentAPI(fake.agent_url, retry_scale=0.0, request_timeout=2.0), config)
    queue = FailQueue(failer, metrics.fail_queue, metrics.scheduler)
    task = asyncio.create_task(queue.run())
    yield queue
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def drained(queue: FailQueue, timeout: float = 10.0) -> None:
    """Wait until every queued Buildkite job was failed (or given up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(queue):
        assert loop.time() < deadline, "the fail queue did not drain"
        await asyncio.sleep(0.01)


def scheduler(
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    policies: PolicySet,
) -> Scheduler:
    return Scheduler(jobs, failures, PolicyStore(policies), config, metrics)


def pending_for(fake: FakeBuildkite, uuid: str) -> PendingJob:
    node = fake.job(uuid).node
    now = asyncio.get_running_loop().time()
    return PendingJob(uuid, node, tuple(node["agentQueryRules"]), now, now + 10)


async def test_an_admitted_job_becomes_the_job_the_policies_built(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
) -> None:
    uuid = fake.add_job(command="make test")
    await scheduler(failures, config, jobs, metrics, default_policies).handle(pending_for(fake, uuid))

    decision = evaluate(default_policies, parse_job(fake.job(uuid).node), config.expression_view())
    [created] = jobs.created
    assert created == decision.manifest  # sent exactly as the engine returned it
    assert created["metadata"]["name"] == f"buildkite-{uuid}"
    assert created["metadata"]["namespace"] == NAMESPACE
    assert created["metadata"]["labels"][CONTROLLER_ID_LABEL] == CONTROLLER_ID
    assert created["spec"]["template"]["metadata"]["labels"][CONTROLLER_ID_LABEL] == CONTROLLER_ID
    changed_by = created["metadata"]["annotations"][CHANGED_BY_ANNOTATION].split(",")
    assert changed_by[0].startswith("job-metadata@")
    assert {entry.split("@")[0] for entry in changed_by} == {record.policy for record in decision.trace}
    assert fake.job(uuid).state == "SCHEDULED"
    assert sample(metrics, "buildkite_scheduler_job_create_success_total") == 1
    assert sample(metrics, "buildkite_job_end_to_end_seconds_count") == 1
    assert sample(metrics, "buildkite_engine_evaluation_seconds_count") == 1


async def test_a_denied_job_is_failed_with_the_policy_message(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    deny_policies: PolicySet,
) -> None:
    uuid = fake.add_job(command="deploy production")
    with pytest.raises(JobNotCreatedError) as raised:
        await scheduler(failures, config, jobs, metrics, deny_policies).handle(pending_for(fake, uuid))
    assert raised.value.reason == "denied"
    assert jobs.created == []
    await drained(failures)
    job = fake.job(uuid)
    assert (job.state, job.exit_status, job.log) == (
        "FINISHED",
        "1",
        "deploying from kubernetes is not allowed (denied by policy no-main-deploys, rule no-deploys)",
    )
    labels = {"policy": "no-main-deploys", "rule": "no-deploys", "kind": "deny"}
    assert sample(metrics, "buildkite_engine_denials_total", **labels) == 1
    assert sample(metrics, "buildkite_scheduler_jobs_failed_on_buildkite_total") == 1


async def test_a_job_the_kubernetes_api_would_refuse_is_failed_without_a_create(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
) -> None:
    plugin = {"podSpecPatch": {"nodeSelectr": {"pool": "ci"}}}
    uuid = fake.add_job(plugins=[{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": plugin}])
    with pytest.raises(JobNotCreatedError) as raised:
        await scheduler(failures, config, jobs, metrics, default_policies).handle(pending_for(fake, uuid))
    assert raised.value.reason == "denied"
    assert jobs.created == []
    await drained(failures)
    job = fake.job(uuid)
    assert (job.state, job.exit_status) == ("FINISHED", "1")
    assert job.log == (
        'Kubernetes would refuse this Job: spec.template.spec.nodeSelectr: unknown field "nodeSelectr" in '
        'PodSpec (did you mean "nodeSelector"?) (last set by policy step-pod-spec-patch, rule patch)'
    )
    labels = {"policy": "step-pod-spec-patch", "rule": "patch", "kind": "invalid"}
    assert sample(metrics, "buildkite_engine_denials_total", **labels) == 1


async def test_unparseable_plugins_fail_the_job_with_upstreams_message(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
) -> None:
    uuid = fake.add_job(plugins="[{not json")
    with pytest.raises(JobNotCreatedError):
        await scheduler(failures, config, jobs, metrics, default_policies).handle(pending_for(fake, uuid))
    await drained(failures)
    log = fake.job(uuid).log
    assert log.startswith("agent-stack-k8s failed to parse the job: failed parsing plugins: ")
    assert fake.job(uuid).state == "FINISHED"
    assert jobs.created == []


async def test_a_job_document_that_is_not_a_job_is_failed_as_unparseable(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
) -> None:
    uuid = fake.add_job()
    job = pending_for(fake, uuid)
    broken = PendingJob(uuid, {**job.node, "env": ["NO_EQUALS_SIGN"]}, job.agent_query_rules, 0.0, 10.0)
    with pytest.raises(JobNotCreatedError) as raised:
        await scheduler(failures, config, jobs, metrics, default_policies).handle(broken)
    assert raised.value.reason == "parse_error"
    await drained(failures)
    assert fake.job(uuid).log.startswith("agent-stack-k8s failed to parse the job: env")
    assert jobs.created == []


async def test_an_existing_job_is_a_duplicate_and_the_buildkite_job_is_left_alone(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
) -> None:
    uuid = fake.add_job()
    jobs.next_error = AlreadyExistsError("exists", status=409, reason="AlreadyExists")
    with pytest.raises(DuplicateJobError):
        await scheduler(failures, config, jobs, metrics, default_policies).handle(pending_for(fake, uuid))
    assert fake.job(uuid).state == "SCHEDULED"
    assert fake.agent_requests() == []
    assert sample(metrics, "buildkite_scheduler_job_create_errors_total", reason="already_exists") == 1


async def test_an_invalid_job_fails_the_buildkite_job_with_the_api_message(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
) -> None:
    uuid = fake.add_job()
    api_message = (
        f'Job.batch "buildkite-{uuid}" is invalid: spec.template.spec.containers[0].image: Required value'
    )
    jobs.next_error = InvalidObjectError(api_message, status=422, reason="Invalid")
    with pytest.raises(JobNotCreatedError) as raised:
        await scheduler(failures, config, jobs, metrics, default_policies).handle(pending_for(fake, uuid))
    assert raised.value.reason == "invalid"
    await drained(failures)
    assert fake.job(uuid).log == f"Kubernetes rejected the podSpec built by agent-stack-k8s: {api_message}"
    assert sample(metrics, "buildkite_scheduler_job_create_errors_total", reason="invalid") == 1


async def test_other_create_errors_are_raised_for_a_later_retry(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
) -> None:
    uuid = fake.add_job()
    jobs.next_error = KubeAPIError("jobs is forbidden", status=403, reason="Forbidden")
    target = scheduler(failures, config, jobs, metrics, default_policies)
    with pytest.raises(KubeAPIError):
        await target.handle(pending_for(fake, uuid))
    assert fake.job(uuid).state == "SCHEDULED"
    assert fake.agent_requests() == []
    assert sample(metrics, "buildkite_scheduler_job_create_errors_total", reason="Forbidden") == 1
    await target.handle(pending_for(fake, uuid))  # the retry on a later poll
    assert len(jobs.created) == 1


async def test_each_job_uses_the_policy_set_current_when_it_starts(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
    deny_policies: PolicySet,
) -> None:
    store = PolicyStore(default_policies)
    target = Scheduler(jobs, failures, store, config, metrics)
    first, second = fake.add_job(command="deploy a"), fake.add_job(command="deploy b")
    await target.handle(pending_for(fake, first))
    store.replace(deny_policies)
    with pytest.raises(JobNotCreatedError):
        await target.handle(pending_for(fake, second))
    assert [job["metadata"]["name"] for job in jobs.created] == [f"buildkite-{first}"]


async def test_a_denial_returns_at_once_while_the_agent_api_hangs(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    deny_policies: PolicySet,
) -> None:
    """Failing is queued: neither this worker nor a max-in-flight token waits for the Agent REST API."""
    fake.faults.hang("agent")
    uuid = fake.add_job(command="deploy production")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(JobNotCreatedError):
        await scheduler(failures, config, jobs, metrics, deny_policies).handle(pending_for(fake, uuid))
    assert loop.time() - started < 1.0
    assert uuid in failures
    assert fake.job(uuid).state == "SCHEDULED"

    fake.faults.clear()
    await drained(failures)
    assert fake.job(uuid).log == (
        "deploying from kubernetes is not allowed (denied by policy no-main-deploys, rule no-deploys)"
    )


async def test_a_job_whose_parsing_raises_unexpectedly_is_failed_the_same_way(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uuid = fake.add_job()

    def parse_or_raise(node: Mapping[str, JSON]) -> BuildkiteJob:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("engine.controller.scheduler.parse_job", parse_or_raise)
    with pytest.raises(JobNotCreatedError) as raised:
        await scheduler(failures, config, jobs, metrics, default_policies).handle(pending_for(fake, uuid))
    await drained(failures)
    assert raised.value.reason == "engine_error"
    assert fake.job(uuid).log.endswith("its data is nested too deeply to evaluate (RecursionError)")


async def test_a_job_whose_evaluation_raises_is_failed_once_without_the_traceback(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception out of deciding (here injected into ``evaluate`` for one job, since the engine has
    no input left that is known to raise) fails that job, and only that job, with a clear message."""
    bad, good = fake.add_job(command="explode"), fake.add_job(command="make")

    def evaluate_or_raise(policies: PolicySet, job: BuildkiteJob, view: Mapping[str, JSON]) -> Decision:
        if job.command == "explode":
            raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")
        return evaluate(policies, job, view)

    monkeypatch.setattr("engine.controller.scheduler.evaluate", evaluate_or_raise)
    target = scheduler(failures, config, jobs, metrics, default_policies)
    with caplog.at_level(logging.WARNING), pytest.raises(JobNotCreatedError) as raised:
        await target.handle(pending_for(fake, bad))
    await target.handle(pending_for(fake, good))
    await drained(failures)

    assert raised.value.reason == "engine_error"
    log = fake.job(bad).log
    assert log == (
        "agent-stack-k8s failed to evaluate the job: "
        "its data is nested too deeply to evaluate (RecursionError)"
    )
    assert "Traceback" not in log
    assert fake.job(bad).state == "FINISHED"
    assert [job["metadata"]["name"] for job in jobs.created] == [f"buildkite-{good}"]
    assert f"job {bad}: deciding it raised RecursionError" in caplog.text
    assert "Traceback" in caplog.text  # for the admin, in the controller's log


async def test_an_unexpected_engine_error_names_only_its_kind(
    fake: FakeBuildkite,
    failures: FailQueue,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    default_policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uuid = fake.add_job()

    def broken(policies: PolicySet, job: BuildkiteJob, view: Mapping[str, JSON]) -> Decision:
        raise KeyError(f"secret-ish {config.agent_token_secret}")

    monkeypatch.setattr("engine.controller.scheduler.evaluate", broken)
    with pytest.raises(JobNotCreatedError):
        await scheduler(failures, config, jobs, metrics, default_policies).handle(pending_for(fake, uuid))
    await drained(failures)

    log = fake.job(uuid).log
    assert log.startswith(
        "agent-stack-k8s failed to evaluate the job: the policy engine failed with KeyError"
    )
    assert "secret-ish" not in log


async def test_a_full_fail_queue_lets_the_job_go_for_a_later_poll(
    fake: FakeBuildkite,
    config: ControllerConfig,
    jobs: JobStore,
    metrics: ControllerMetrics,
    deny_policies: PolicySet,
) -> None:
    secrets = SecretStore({(NAMESPACE, config.agent_token_secret): fake.agent_token})
    failer = JobFailer(secrets, AgentAPI(fake.agent_url, retry_scale=0.0), config)
    full = FailQueue(failer, metrics.fail_queue, capacity=1)
    full.enqueue("someone-else", ("queue=kubernetes",), "m")
    uuid = fake.add_job(command="deploy production")

    with pytest.raises(FailQueueFullError):
        await scheduler(full, config, jobs, metrics, deny_policies).handle(pending_for(fake, uuid))

    assert uuid not in full
    assert fake.job(uuid).state == "SCHEDULED"


class _BrokenPodTemplates:
    """An API server that cannot be reached when the scheduler reads a PodTemplate."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def get_pod_template(self, name: str) -> JSONObject | None:
        self.reads.append(name)
        raise KubeAPIError(f"get PodTemplate {NAMESPACE}/{name}: connection refused")


async def test_a_pod_template_that_cannot_be_read_now_leaves_the_job_for_a_later_poll(
    fake: FakeBuildkite, jobs: JobStore, metrics: ControllerMetrics, failures: FailQueue
) -> None:
    """Upstream fails the job on any error reading its podTemplate; a transient one must not: nothing is
    created, nothing is failed, and the error reaches the pipeline, so a later poll tries again."""
    config = parse_config(
        {"namespace": NAMESPACE, "profile": "upstream-v0.47", "agent-config": {"endpoint": fake.agent_url}},
        "test",
    )
    plugins = json.dumps(
        [{"github.com/buildkite-plugins/kubernetes-buildkite-plugin": {"podTemplate": "ruby"}}]
    )
    uuid = fake.add_job(env={"BUILDKITE_PLUGINS": plugins})
    templates = _BrokenPodTemplates()
    target = Scheduler(
        jobs,
        failures,
        PolicyStore(load_policies([], profile="upstream-v0.47")),
        config,
        metrics,
        pod_templates=templates,
    )
    with pytest.raises(KubeAPIError, match="connection refused"):
        await target.handle(pending_for(fake, uuid))
    await drained(failures)
    assert templates.reads == ["ruby"]
    assert jobs.created == []
    assert fake.job(uuid).state == "SCHEDULED"
