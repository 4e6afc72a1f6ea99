"""The controller config: upstream's keys, types, defaults and validation, strict unknown-key errors
naming full paths, flag > env > file > default precedence, and the view policies see."""

from __future__ import annotations

import copy
import json
import pathlib
import re
import subprocess
import sys
import typing
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from engine.model.config import (
    FLAG_KEYS,
    NO_COMMAND_MODIFICATION,
    ConfigError,
    ControllerConfig,
    camel_case,
    config_reference_markdown,
    env_var_name,
    parse_config,
    resolve_config,
)
from engine.model.quantity import parse_quantity

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "config"
SCHEMA = REPO / "schema" / "config.schema.json"
UPSTREAM_EXAMPLE = EXAMPLES / "upstream-example.yaml"
TOKEN_ENV = {"BUILDKITE_TOKEN": "my-graphql-enabled-token"}


def load_yaml(path: pathlib.Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def problems_of(data: Any, source: str = "config.yaml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def only_problem(data: Any) -> str:
    (problem,) = problems_of(data)
    return problem


# --- defaults and the upstream example --------------------------------------------------------------

HEAD_DEFAULTS = {
    "profile": "default",
    "job-prefix": "buildkite-",
    "job-active-deadline-seconds": 21600,
    "default-image-pull-policy": "",
    "default-image-check-pull-policy": "",
    "skip-image-check-containers": False,
    "image-check-container-cpu-limit": "200m",
    "image-check-container-memory-limit": "128Mi",
    "allow-pod-spec-patch-unsafe-command-modification": False,
    "workspace-mount-sub-path-expr": "",
    "default-resource-class-name": "",
    "enable-completion-watcher": True,
    "enable-queue-pause": False,
    "work-queue-limit": 1000000,
    "k8s-client-rate-limiter-qps": 10,
    "k8s-client-rate-limiter-burst": 20,
    "log-format": "logfmt",
    "log-level": "info",
    "no-color": False,
    "log-http-payloads": False,
    "integration-test-buildkite-token": "",
}
"""The defaults of the keys agent-stack-k8s added in v0.21-v0.47 (reference §11.2)."""

DEFAULTS = {
    **HEAD_DEFAULTS,
    "agent-token-secret": "buildkite-agent-token",
    "controller-service-account": "",
    "controller-secrets": [],
    "buildkite-token": "",
    "org": "",
    "image": "ghcr.io/buildkite/agent:3.87.1",
    "tags": ["queue=kubernetes"],
    "namespace": "default",
    "debug": False,
    "max-in-flight": 25,
    "job-ttl": "10m0s",
    "poll-interval": "1s",
    "stale-job-data-timeout": "10s",
    "job-creation-concurrency": 5,
    "http-timeout": "10s",
    "pagination-depth-limit": 5,
    "cluster-uuid": "",
    "graphql-endpoint": "https://graphql.buildkite.com/v1",
    "profiler-address": "",
    "prometheus-port": 0,
    "image-pull-backoff-grace-period": "30s",
    "job-cancel-checker-poll-interval": "5s",
    "empty-job-grace-period": "30s",
    "id": "",
    "prohibit-kubernetes-plugin": False,
    "pod-pending-timeout": "15m0s",
    "default-termination-grace-period-seconds": 60,
    "kubernetes-version": "1.20",
    "job-log-warnings": True,
    "additional-redacted-vars": [],
    **(
        API_MODE_DEFAULTS := {  # the Buildkite API mode and the Stacks API keys
            "buildkite-api": "",
            "queue": "",
            "reservation-expiry-seconds": 900,
            "pagination-page-size": 1000,
            "query-reset-interval": "10s",
            "job-acquisition-tokens": False,
            "job-acquisition-token-lifetime-seconds": 0,
        }
    ),
}


@pytest.mark.parametrize("empty", [None, {}])
def test_defaults(empty: Any) -> None:
    config = parse_config(empty, "defaults")
    assert config.model_dump(mode="json", by_alias=True, exclude_none=True) == DEFAULTS
    assert config.job_ttl == 600.0
    assert config.pod_pending_timeout == 900.0
    assert [config.agent_config, config.pod_spec_patch, config.workspace_volume] == [None, None, None]


UPSTREAM_POD_SPEC_PATCH = {
    "serviceAccountName": "buildkite-agent-sa",
    "automountServiceAccountToken": True,
    "nodeSelector": {"selectors.example.com/my-selector": "example-value"},
    "containers": [
        {
            "name": "container-0",
            "env": [
                {
                    "name": "GITHUB_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "github-secrets", "key": "github-token"}},
                }
            ],
            "resources": {"requests": {"cpu": "1000m", "mem": "4Gi"}},
        }
    ],
}
UPSTREAM_WORKSPACE_VOLUME = {
    "name": "workspace-2-the-reckoning",
    "ephemeral": {
        "volumeClaimTemplate": {
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "my-special-storage-class",
                "resources": {"requests": {"storage": "1Gi"}},
            }
        }
    },
}


def test_upstream_example_decodes_to_exactly_these_values() -> None:
    """Like upstream's TestReadAndParseConfig: the token comes from the environment."""
    config = resolve_config(load_yaml(UPSTREAM_EXAMPLE), TOKEN_ENV, {}, str(UPSTREAM_EXAMPLE))
    assert config.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        **DEFAULTS,
        "agent-token-secret": "my-kubernetes-secret",
        "buildkite-token": "my-graphql-enabled-token",
        "debug": True,
        "image": "my.registry.dev/buildkite-agent:latest",
        "job-ttl": "5m0s",
        "image-pull-backoff-grace-period": "1m0s",
        "job-cancel-checker-poll-interval": "10s",
        "empty-job-grace-period": "50s",
        "poll-interval": "5s",
        "stale-job-data-timeout": "10s",
        "job-creation-concurrency": 5,
        "max-in-flight": 100,
        "namespace": "my-buildkite-ns",
        "org": "my-buildkite-org",
        "graphql-endpoint": "http://graphql.buildkite.localhost/v1",
        "cluster-uuid": "beefcafe-abbe-baba-abba-deedcedecade",
        "tags": ["queue=my-queue", "priority=high"],
        "id": "",
        "prohibit-kubernetes-plugin": True,
        "workspace-volume": UPSTREAM_WORKSPACE_VOLUME,
        "agent-config": {"endpoint": "http://agent.buildkite.localhost/v3"},
        "default-checkout-params": {
            "gitCredentialsSecret": {"secretName": "my-git-credentials"},
            "envFrom": [{"prefix": "GITHUB_", "secretRef": {"name": "github-secrets"}}],
        },
        "default-command-params": {
            "interposer": "vector",
            "envFrom": [{"prefix": "DEPLOY_", "secretRef": {"name": "deploy-secrets"}}],
        },
        "default-sidecar-params": {
            "envFrom": [{"prefix": "LOGGING_", "configMapRef": {"name": "logging-config"}}],
        },
        "default-metadata": {
            "annotations": {"imageregistry": "https://hub.docker.com/"},
            "labels": {"argocd.argoproj.io/tracking-id": "example-id-here"},
        },
        "pod-spec-patch": UPSTREAM_POD_SPEC_PATCH,
        **API_MODE_DEFAULTS,
    }
    assert (config.job_ttl, config.image_pull_backoff_grace_period, config.poll_interval) == (
        300.0,
        60.0,
        5.0,
    )
    # Upstream compares quantities by value: 1000m is one core.
    assert config.pod_spec_patch is not None
    requests = config.pod_spec_patch["containers"][0]["resources"]["requests"]
    assert parse_quantity(requests["cpu"]) == parse_quantity(1)
    assert parse_quantity(requests["mem"]) == "4Gi"
    assert config.missing_required_for_controller() == []


def test_minimal_example_needs_only_the_token_from_the_environment() -> None:
    data = load_yaml(EXAMPLES / "minimal.yaml")
    assert parse_config(data, "minimal.yaml").missing_required_for_controller() == [
        "buildkite-token: required by the controller "
        "(set it in the config file, with --buildkite-token or BUILDKITE_TOKEN)"
    ]
    assert resolve_config(data, TOKEN_ENV, {}, "minimal.yaml").missing_required_for_controller() == []


def test_missing_required_lists_every_empty_required_key() -> None:
    graphql = parse_config(
        {"buildkite-api": "graphql", "agent-token-secret": "", "image": "", "namespace": ""}, "x"
    )
    assert [line.split(":")[0] for line in graphql.missing_required_for_controller()] == [
        "agent-token-secret",
        "buildkite-token",
        "org",
        "image",
        "namespace",
    ]
    stacks = parse_config({"agent-token-secret": "", "image": "", "namespace": ""}, "x")
    assert [line.split(":")[0] for line in stacks.missing_required_for_controller()] == [
        "agent-token-secret",
        "image",
        "namespace",
    ]


# --- strictness -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"max_in_flight": 3}, 'config.yaml: max_in_flight: unknown key (did you mean "max-in-flight"?)'),
        (
            {"agent-config": {"no-htp2": True}},
            'config.yaml: agent-config.no-htp2: unknown key (did you mean "no-http2"?)',
        ),
        (
            {"agent-config": {"hooks_volume": {}}},
            'config.yaml: agent-config.hooks_volume: unknown key (did you mean "hooksVolume"?)',
        ),
        (
            {"default-checkout-params": {"clean-flags": "-x"}},
            'config.yaml: default-checkout-params.clean-flags: unknown key (did you mean "cleanFlags"?)',
        ),
        (
            {"default-checkout-params": {"gitMirrors": {"lock-timeout": 5}}},
            "config.yaml: default-checkout-params.gitMirrors.lock-timeout: unknown key"
            ' (did you mean "lockTimeout"?)',
        ),
        (
            {"default-command-params": {"envfrom": []}},
            'config.yaml: default-command-params.envfrom: unknown key (did you mean "envFrom"?)',
        ),
        (
            {"default-sidecar-params": {"image": "x"}},
            "config.yaml: default-sidecar-params.image: unknown key",
        ),
        (
            {"default-metadata": {"Labels": {}}},
            'config.yaml: default-metadata.Labels: unknown key (did you mean "labels"?)',
        ),
        (
            {"pod-spec-patch": {"containers": [{"name": "c", "imagee": "x"}]}},
            'config.yaml: pod-spec-patch.containers[0].imagee: unknown key (did you mean "image"?)',
        ),
        (
            {"workspace-volume": {"name": "w", "emptyDir": {"sizelimit": "1Gi"}}},
            'config.yaml: workspace-volume.emptyDir.sizelimit: unknown key (did you mean "sizeLimit"?)',
        ),
        (
            {"default-checkout-params": {"envFrom": [{"secretRef": {"nmae": "s"}}]}},
            "config.yaml: default-checkout-params.envFrom[0].secretRef.nmae: unknown key"
            ' (did you mean "name"?)',
        ),
        (
            {"default-checkout-params": {"gitCredentialsSecret": {"secret": "s"}}},
            "config.yaml: default-checkout-params.gitCredentialsSecret.secret: unknown key"
            ' (did you mean "secretName"?)',
        ),
        (
            {"agent-config": {"signingJWKSVolume": {"name": "k", "secret": {"secretName": "k", "x": 1}}}},
            "config.yaml: agent-config.signingJWKSVolume.secret.x: unknown key",
        ),
        (
            {"stale-job-data-timeout": "1s", "graphql-results-limit": 5},
            "config.yaml: graphql-results-limit: unknown key",
        ),
    ],
)
def test_unknown_keys_anywhere_name_their_full_path(data: dict[str, Any], problem: str) -> None:
    assert only_problem(data) == problem


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    problems = problems_of(
        {
            "nope": 1,
            "max-in-flight": "many",
            "agent-config": {"shell": 5, "x": 1},
            "pod-spec-patch": {"nodeSelector": {"kubernetes.io/os": 5}},
        }
    )
    assert sorted(problems) == sorted(
        [
            "config.yaml: nope: unknown key",
            'config.yaml: max-in-flight: expected an integer, got the string "many"',
            "config.yaml: agent-config.shell: expected a string, got the number 5",
            "config.yaml: agent-config.x: unknown key",
            'config.yaml: pod-spec-patch.nodeSelector["kubernetes.io/os"]: '
            "expected a string, got the number 5",
        ]
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"image": 5}, "image: expected a string, got the number 5"),
        ({"debug": "perhaps"}, 'debug: expected a boolean (true or false), got the string "perhaps"'),
        ({"max-in-flight": True}, "max-in-flight: expected an integer, got the boolean true"),
        ({"max-in-flight": 2.5}, "max-in-flight: expected an integer, got the number 2.5"),
        ({"max-in-flight": -1}, "max-in-flight: must be at least 0, got -1"),
        ({"prometheus-port": 70000}, "prometheus-port: must be at most 65535, got 70000"),
        ({"prometheus-port": -1}, "prometheus-port: must be at least 0, got -1"),
        ({"tags": {"queue": "a"}}, "tags: expected a list, got an object"),
        ({"agent-config": "yes"}, 'agent-config: expected a map, got the string "yes"'),
        (
            {"agent-config": {"experiment": [1]}},
            "agent-config.experiment[0]: expected a string, got the number 1",
        ),
        (
            {"default-metadata": {"labels": {"a": 1}}},
            "default-metadata.labels.a: expected a string, got the number 1",
        ),
        ({"workspace-volume": ["x"]}, "workspace-volume: expected a map, got a list"),
        (
            {"workspace-volume": {"emptyDir": {}}},
            "workspace-volume.name: required: a volume needs a name to be mounted",
        ),
        (
            {"default-checkout-params": {"gitMirrors": {"lockTimeout": "soon"}}},
            'default-checkout-params.gitMirrors.lockTimeout: expected an integer, got the string "soon"',
        ),
        (
            {"pod-spec-patch": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}},
            'pod-spec-patch.containers[0].resources.limits.cpu: invalid quantity "lots" '
            '(expected a number or a string like "500m" or "1Gi")',
        ),
        (
            {"pod-spec-patch": {"terminationGracePeriodSeconds": "60"}},
            'pod-spec-patch.terminationGracePeriodSeconds: expected an integer, got the string "60"',
        ),
        (
            {"default-termination-grace-period-seconds": 0},
            "default-termination-grace-period-seconds: must be a positive number of seconds",
        ),
    ],
)
def test_wrong_types_and_ranges(data: dict[str, Any], problem: str) -> None:
    assert only_problem(data) == f"config.yaml: {problem}"


def test_a_config_must_be_a_map() -> None:
    assert problems_of(["queue=a"], "c.yaml") == ["c.yaml: expected a map of config keys, got a list"]


def test_null_means_unset() -> None:
    config = parse_config({"max-in-flight": None, "tags": None, "agent-config": None, "job-ttl": None}, "x")
    assert (config.max_in_flight, config.tags, config.agent_config, config.job_ttl) == (
        25,
        ("queue=kubernetes",),
        None,
        600.0,
    )
    assert parse_config({"agent-config": {"endpoint": None}}, "x").expression_view()["agentConfig"] == {}


def test_the_input_is_not_modified() -> None:
    data = load_yaml(UPSTREAM_EXAMPLE)
    before = copy.deepcopy(data)
    parse_config(data, "x")
    assert data == before


def test_the_config_is_immutable() -> None:
    config = parse_config({}, "x")
    with pytest.raises(ValidationError):
        config.max_in_flight = 3  # type: ignore[misc]


# --- durations and clamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("300ms", 0.3),
        ("10s", 10.0),
        ("1.5h", 5400.0),
        (90, 90.0),
        (2.5, 2.5),
    ],
)
def test_durations_are_go_strings_or_seconds(value: Any, seconds: float) -> None:
    assert parse_config({"job-ttl": value}, "x").job_ttl == seconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("10", 'missing unit in duration "10"'),
        ("5 minutes", 'unknown unit " minutes" in duration "5 minutes"'),
        ("1d", 'unknown unit "d" in duration "1d"'),
        (True, "got the boolean true"),
        ([1], "expected a duration"),
    ],
)
def test_invalid_durations(value: Any, problem: str) -> None:
    line = only_problem({"pod-pending-timeout": value})
    assert line.startswith("config.yaml: pod-pending-timeout: ")
    assert problem in line


@pytest.mark.parametrize(
    ("value", "seconds"), [("0", 1.0), ("500ms", 1.0), ("-5s", 1.0), ("1s", 1.0), ("5s", 5.0)]
)
def test_poll_interval_is_at_least_one_second(value: str, seconds: float) -> None:
    assert parse_config({"poll-interval": value}, "x").poll_interval == seconds


@pytest.mark.parametrize(
    ("key", "attribute", "default"),
    [
        ("stale-job-data-timeout", "stale_job_data_timeout", 10.0),
        ("http-timeout", "http_timeout", 10.0),
        ("image-pull-backoff-grace-period", "image_pull_backoff_grace_period", 30.0),
        ("job-cancel-checker-poll-interval", "job_cancel_checker_poll_interval", 5.0),
    ],
)
@pytest.mark.parametrize("value", ["0", "-1s", 0])
def test_durations_that_fall_back_to_their_default_when_not_positive(
    key: str, attribute: str, default: float, value: Any
) -> None:
    assert getattr(parse_config({key: value}, "x"), attribute) == default
    assert getattr(parse_config({key: "42s"}, "x"), attribute) == 42.0


@pytest.mark.parametrize(("value", "result"), [(0, 5), (-3, 5), (1, 1), (40, 40)])
def test_job_creation_concurrency_falls_back_to_five(value: int, result: int) -> None:
    assert parse_config({"job-creation-concurrency": value}, "x").job_creation_concurrency == result


@pytest.mark.parametrize(("value", "result"), [(0, 5), (-1, 5), (1, 1), (50, 50)])
def test_pagination_depth_limit_falls_back_to_five(value: int, result: int) -> None:
    assert parse_config({"pagination-depth-limit": value}, "x").pagination_depth_limit == result


def test_empty_job_grace_period_zero_means_immediately() -> None:
    assert parse_config({"empty-job-grace-period": "0"}, "x").empty_job_grace_period == 0.0


@pytest.mark.parametrize("key", ["job-ttl", "empty-job-grace-period", "pod-pending-timeout"])
def test_durations_without_fallback_must_not_be_negative(key: str) -> None:
    assert only_problem({key: "-1m"}) == f"config.yaml: {key}: must not be negative"


# --- tags, interposer, pod-spec-patch, other validation ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        (["queue=a", "os=linux"], ("queue=a", "os=linux")),
        ("queue=a,os=linux", ("queue=a", "os=linux")),
        ("queue=a, os=linux,", ("queue=a", "os=linux")),
        (["queue=a=b"], ("queue=a=b",)),
    ],
)
def test_tags_as_list_or_comma_separated_string(value: Any, tags: tuple[str, ...]) -> None:
    assert parse_config({"tags": value}, "x").tags == tags


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (["os=linux"], "tags: missing required tag: queue (the GraphQL mode polls by it)"),
        ([], "tags: missing required tag: queue (the GraphQL mode polls by it)"),
        ("", "tags: missing required tag: queue (the GraphQL mode polls by it)"),
        (["queue=a", "linux"], 'tags: entries must be key=value, not "linux"'),
    ],
)
def test_invalid_tags(value: Any, problem: str) -> None:
    assert only_problem({"org": "o", "tags": value}) == f"config.yaml: {problem}"


@pytest.mark.parametrize("value", [["os=linux"], [], ""])
def test_the_stacks_api_mode_needs_no_queue_tag(value: Any) -> None:
    assert parse_config({"tags": value}, "x").effective_queue() == "_default"
    assert parse_config({"tags": value, "queue": "gpu"}, "x").effective_queue() == "gpu"


@pytest.mark.parametrize("value", ["", "buildkite", "vector", "legacy"])
def test_valid_interposers(value: str) -> None:
    config = parse_config({"default-command-params": {"interposer": value}}, "x")
    assert config.expression_view()["defaultCommandParams"] == {"interposer": value}


@pytest.mark.parametrize("value", ["shell", "Vector", "exec"])
def test_invalid_interposer_message(value: str) -> None:
    assert only_problem({"default-command-params": {"interposer": value}}) == (
        f'config.yaml: default-command-params.interposer: invalid command interposer "{value}" '
        '(valid: "", "buildkite", "legacy", "vector")'
    )


@pytest.mark.parametrize("key", ["command", "args"])
def test_pod_spec_patch_may_not_change_container_commands(key: str) -> None:
    patch = {"containers": [{"name": "checkout", "image": "x"}, {"name": "container-0", key: ["echo", "hi"]}]}
    assert only_problem({"pod-spec-patch": patch}) == (
        f"config.yaml: pod-spec-patch.containers[1].{key}: {NO_COMMAND_MODIFICATION}"
    )
    assert NO_COMMAND_MODIFICATION == (
        "modifying container commands or args via podSpecPatch is not supported. "
        "Specify the command in the job's command field instead"
    )


def test_pod_spec_patch_may_set_empty_commands_and_init_container_commands() -> None:
    patch = {
        "containers": [{"name": "c", "command": [], "args": []}],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
    }
    assert parse_config({"pod-spec-patch": patch}, "x").pod_spec_patch == patch


@pytest.mark.parametrize(
    "address", ["", ":6060", "localhost:6060", "0.0.0.0:6060", "[::1]:6060", "pprof.local:1"]
)
def test_valid_profiler_addresses(address: str) -> None:
    assert parse_config({"profiler-address": address}, "x").profiler_address == address


@pytest.mark.parametrize(
    "address", ["localhost", "localhost:0", "localhost:65536", "host:port", "bad host:1"]
)
def test_invalid_profiler_addresses(address: str) -> None:
    assert "is not host:port" in only_problem({"profiler-address": address})


def test_an_empty_graphql_endpoint_means_the_default() -> None:
    assert parse_config({"graphql-endpoint": ""}, "x").graphql_endpoint == "https://graphql.buildkite.com/v1"


def test_string_lists_accept_comma_separated_strings_everywhere() -> None:
    config = parse_config(
        {
            "additional-redacted-vars": "*_PAT,*_API_KEY",
            "agent-config": {"experiment": "a,b", "disable-warnings-for": ["x"]},
            "default-checkout-params": {"submoduleCloneConfig": "key=value"},
        },
        "x",
    )
    assert config.additional_redacted_vars == ("*_PAT", "*_API_KEY")
    view = config.expression_view()
    assert view["agentConfig"] == {"experiment": ["a", "b"], "disableWarningsFor": ["x"]}
    assert view["defaultCheckoutParams"] == {"submoduleCloneConfig": ["key=value"]}


# --- precedence -------------------------------------------------------------------------------------


def test_flag_beats_env_beats_file_beats_default() -> None:
    file_data = {"max-in-flight": 1, "namespace": "from-file", "org": "file-org", "job-ttl": "1m"}
    env = {"MAX_IN_FLIGHT": "2", "NAMESPACE": "from-env", "JOB_TTL": "2m"}
    flags = {"max-in-flight": 3}
    config = resolve_config(file_data, env, flags, "f.yaml")
    assert (config.max_in_flight, config.namespace, config.org, config.job_ttl, config.image) == (
        3,
        "from-env",
        "file-org",
        120.0,
        "ghcr.io/buildkite/agent:3.87.1",
    )


def test_env_names_are_upper_snake_case_without_prefix_except_the_id() -> None:
    head = {
        "ALLOW_POD_SPEC_PATCH_UNSAFE_COMMAND_MODIFICATION",
        "DEFAULT_IMAGE_CHECK_PULL_POLICY",
        "DEFAULT_IMAGE_PULL_POLICY",
        "ENABLE_COMPLETION_WATCHER",
        "ENABLE_QUEUE_PAUSE",
        "IMAGE_CHECK_CONTAINER_CPU_LIMIT",
        "IMAGE_CHECK_CONTAINER_MEMORY_LIMIT",
        "INTEGRATION_TEST_BUILDKITE_TOKEN",
        "JOB_ACTIVE_DEADLINE_SECONDS",
        "JOB_PREFIX",
        "K8S_CLIENT_RATE_LIMITER_BURST",
        "K8S_CLIENT_RATE_LIMITER_QPS",
        "LOG_FORMAT",
        "LOG_HTTP_PAYLOADS",
        "LOG_LEVEL",
        "NO_COLOR",
        "SKIP_IMAGE_CHECK_CONTAINERS",
        "WORK_QUEUE_LIMIT",
    }
    assert sorted({env_var_name(key) for key in FLAG_KEYS} - head) == [
        "AGENT_TOKEN_SECRET",
        "BUILDKITE_API",
        "BUILDKITE_K8S_STACK_CONTROLLER_ID",
        "BUILDKITE_TOKEN",
        "CLUSTER_UUID",
        "CONTROLLER_SECRETS",
        "CONTROLLER_SERVICE_ACCOUNT",
        "DEBUG",
        "DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS",
        "EMPTY_JOB_GRACE_PERIOD",
        "GRAPHQL_ENDPOINT",
        "HTTP_TIMEOUT",
        "IMAGE",
        "IMAGE_PULL_BACKOFF_GRACE_PERIOD",
        "JOB_ACQUISITION_TOKENS",
        "JOB_ACQUISITION_TOKEN_LIFETIME_SECONDS",
        "JOB_CANCEL_CHECKER_POLL_INTERVAL",
        "JOB_CREATION_CONCURRENCY",
        "JOB_TTL",
        "MAX_IN_FLIGHT",
        "NAMESPACE",
        "ORG",
        "PAGINATION_DEPTH_LIMIT",
        "PAGINATION_PAGE_SIZE",
        "POD_PENDING_TIMEOUT",
        "POLL_INTERVAL",
        "PROFILER_ADDRESS",
        "PROHIBIT_KUBERNETES_PLUGIN",
        "PROMETHEUS_PORT",
        "QUERY_RESET_INTERVAL",
        "QUEUE",
        "RESERVATION_EXPIRY_SECONDS",
        "STALE_JOB_DATA_TIMEOUT",
        "TAGS",
    ]


def test_env_values_are_strings_converted_like_the_file() -> None:
    env = {
        "DEBUG": "true",
        "PROHIBIT_KUBERNETES_PLUGIN": "1",
        "TAGS": "queue=gpu,os=linux",
        "POLL_INTERVAL": "5s",
        "PROMETHEUS_PORT": "9216",
    }
    config = resolve_config(None, env, {}, "f.yaml")
    assert (config.debug, config.prohibit_kubernetes_plugin, config.tags, config.poll_interval) == (
        True,
        True,
        ("queue=gpu", "os=linux"),
        5.0,
    )
    assert config.prometheus_port == 9216


def test_empty_env_vars_count_as_unset() -> None:
    config = resolve_config({"image": "from-file"}, {"IMAGE": "", "NAMESPACE": ""}, {}, "f.yaml")
    assert (config.image, config.namespace) == ("from-file", "default")


def test_structured_keys_never_come_from_the_environment() -> None:
    env = {"POD_SPEC_PATCH": "{}", "AGENT_CONFIG": "x", "ADDITIONAL_REDACTED_VARS": "A"}
    assert resolve_config(None, env, {}, "f.yaml") == parse_config(None, "f.yaml")
    assert set(FLAG_KEYS).isdisjoint(
        {"pod-spec-patch", "workspace-volume", "agent-config", "additional-redacted-vars", "default-metadata"}
    )


def test_unset_flags_are_ignored() -> None:
    assert resolve_config({"org": "o"}, {}, {"org": None}, "f.yaml").org == "o"


def test_problems_name_where_the_value_came_from() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config({"debug": "x"}, {"MAX_IN_FLIGHT": "lots"}, {"job-ttl": "soon"}, "f.yaml")
    assert sorted(caught.value.problems) == [
        'env MAX_IN_FLIGHT: max-in-flight: expected an integer, got the string "lots"',
        'f.yaml: debug: expected a boolean (true or false), got the string "x"',
        'flag --job-ttl: job-ttl: invalid duration "soon"',
    ]


def test_a_flag_that_is_not_a_key_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(None, {}, {"pod-spec-patch": {}}, "f.yaml")
    assert caught.value.problems == ["flag --pod-spec-patch: pod-spec-patch: not a config flag"]


def test_a_file_that_is_not_a_map() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config("queue=a", {}, {}, "f.yaml")  # type: ignore[arg-type]
    assert caught.value.problems == ['f.yaml: expected a map of config keys, got the string "queue=a"']


# --- what policies see ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "camel"),
    [
        ("agent-token-secret", "agentTokenSecret"),
        ("agent-config", "agentConfig"),
        ("no-http2", "noHttp2"),
        ("signing-jwks-file", "signingJwksFile"),
        ("pod-spec-patch", "podSpecPatch"),
        ("signingJWKSVolume", "signingJWKSVolume"),
        ("cleanFlags", "cleanFlags"),
        ("org", "org"),
    ],
)
def test_camel_case(key: str, camel: str) -> None:
    assert camel_case(key) == camel


def test_policies_never_see_the_api_tokens() -> None:
    """A token in ``config`` could be interpolated into a pod, a warning or a denial message, all of
    which pipeline authors read; the view leaves the tokens out (and ``redacted()`` hides them)."""
    config = parse_config({"buildkite-token": "bkua_s3cret", "integration-test-buildkite-token": "t0k"}, "x")
    view = config.expression_view()
    assert "bkua_s3cret" not in json.dumps(view)
    assert "t0k" not in json.dumps(view)
    assert {"buildkiteToken", "integrationTestBuildkiteToken"}.isdisjoint(view)
    assert view["agentTokenSecret"] == "buildkite-agent-token"  # a Secret's name is not a secret


def test_expression_view_of_the_defaults() -> None:
    assert parse_config({}, "x").expression_view() == {
        "profile": "default",
        "jobPrefix": "buildkite-",
        "jobActiveDeadlineSeconds": 21600,
        "defaultImagePullPolicy": "",
        "defaultImageCheckPullPolicy": "",
        "skipImageCheckContainers": False,
        "imageCheckContainerCpuLimit": "200m",
        "imageCheckContainerMemoryLimit": "128Mi",
        "allowPodSpecPatchUnsafeCommandModification": False,
        "workspaceMountSubPathExpr": "",
        "defaultResourceClassName": "",
        "enableCompletionWatcher": True,
        "enableQueuePause": False,
        "workQueueLimit": 1000000,
        "k8sClientRateLimiterQps": 10,
        "k8sClientRateLimiterBurst": 20,
        "logFormat": "logfmt",
        "logLevel": "info",
        "noColor": False,
        "logHttpPayloads": False,
        "agentTokenSecret": "buildkite-agent-token",
        "controllerServiceAccount": "",
        "controllerSecrets": [],
        "org": "",
        "image": "ghcr.io/buildkite/agent:3.87.1",
        "tags": ["queue=kubernetes"],
        "namespace": "default",
        "debug": False,
        "maxInFlight": 25,
        "jobTtl": 600.0,
        "pollInterval": 1.0,
        "staleJobDataTimeout": 10.0,
        "jobCreationConcurrency": 5,
        "httpTimeout": 10.0,
        "paginationDepthLimit": 5,
        "clusterUuid": "",
        "graphqlEndpoint": "https://graphql.buildkite.com/v1",
        "profilerAddress": "",
        "prometheusPort": 0,
        "imagePullBackoffGracePeriod": 30.0,
        "jobCancelCheckerPollInterval": 5.0,
        "emptyJobGracePeriod": 30.0,
        "id": "default.kubernetes",
        "prohibitKubernetesPlugin": False,
        "podPendingTimeout": 900.0,
        "defaultTerminationGracePeriodSeconds": 60,
        "kubernetesVersion": "1.20",
        "jobLogWarnings": True,
        "additionalRedactedVars": [],
        "buildkiteApi": "",
        "queue": "",
        "reservationExpirySeconds": 900,
        "paginationPageSize": 1000,
        "queryResetInterval": 10.0,
        "jobAcquisitionTokens": False,
        "jobAcquisitionTokenLifetimeSeconds": 0,
    }


FULL_AGENT_CONFIG = {
    "endpoint": "https://agent.example/v3",
    "no-http2": True,
    "experiment": ["a", "b"],
    "shell": "/bin/bash -ec",
    "no-color": True,
    "strict-single-hooks": False,
    "no-multipart-artifact-upload": True,
    "trace-context-encoding": "json",
    "disable-warnings-for": ["x"],
    "debug-signing": True,
    "no-pty": True,
    "no-command-eval": False,
    "no-local-hooks": True,
    "no-plugins": False,
    "plugin-validation": True,
    "hooks-path": "/hooks",
    "hooksVolume": {"name": "hooks", "configMap": {"name": "hooks"}},
    "plugins-path": "/plugins",
    "pluginsVolume": {"name": "plugins", "emptyDir": {}},
    "signing-jwks-file": "key",
    "signing-jwks-key-id": "kid",
    "signingJWKSVolume": {"name": "sign", "secret": {"secretName": "sign"}},
    "verification-jwks-file": "/keys/verify.json",
    "verification-failure-behavior": "block",
    "verificationJWKSVolume": {"name": "verify", "secret": {"secretName": "verify"}},
}


def test_expression_view_maps_every_agent_config_key() -> None:
    view = parse_config({"agent-config": FULL_AGENT_CONFIG}, "x").expression_view()["agentConfig"]
    assert view == {
        "endpoint": "https://agent.example/v3",
        "noHttp2": True,
        "experiment": ["a", "b"],
        "shell": "/bin/bash -ec",
        "noColor": True,
        "strictSingleHooks": False,
        "noMultipartArtifactUpload": True,
        "traceContextEncoding": "json",
        "disableWarningsFor": ["x"],
        "debugSigning": True,
        "noPty": True,
        "noCommandEval": False,
        "noLocalHooks": True,
        "noPlugins": False,
        "pluginValidation": True,
        "hooksPath": "/hooks",
        "hooksVolume": {"name": "hooks", "configMap": {"name": "hooks"}},
        "pluginsPath": "/plugins",
        "pluginsVolume": {"name": "plugins", "emptyDir": {}},
        "signingJwksFile": "key",
        "signingJwksKeyId": "kid",
        "signingJWKSVolume": {"name": "sign", "secret": {"secretName": "sign"}},
        "verificationJwksFile": "/keys/verify.json",
        "verificationFailureBehavior": "block",
        "verificationJWKSVolume": {"name": "verify", "secret": {"secretName": "verify"}},
    }


def test_expression_view_of_the_upstream_example_keeps_kubernetes_objects_as_given() -> None:
    view = resolve_config(load_yaml(UPSTREAM_EXAMPLE), TOKEN_ENV, {}, "x").expression_view()
    assert view["podSpecPatch"] == UPSTREAM_POD_SPEC_PATCH
    assert view["workspaceVolume"] == UPSTREAM_WORKSPACE_VOLUME
    assert view["defaultMetadata"] == {
        "annotations": {"imageregistry": "https://hub.docker.com/"},
        "labels": {"argocd.argoproj.io/tracking-id": "example-id-here"},
    }
    assert view["defaultCheckoutParams"] == {
        "gitCredentialsSecret": {"secretName": "my-git-credentials"},
        "envFrom": [{"prefix": "GITHUB_", "secretRef": {"name": "github-secrets"}}],
    }
    assert view["jobTtl"] == 300.0
    assert json.loads(json.dumps(view)) == view  # plain JSON values only


def test_unset_optional_blocks_and_values_are_absent() -> None:
    view = parse_config(
        {"default-checkout-params": {"skip": True, "gitMirrors": {"path": "/m"}}}, "x"
    ).expression_view()
    assert view["defaultCheckoutParams"] == {"skip": True, "gitMirrors": {"path": "/m"}}
    absent = {
        "agentConfig",
        "podSpecPatch",
        "workspaceVolume",
        "defaultCommandParams",
        "defaultSidecarParams",
    }
    assert absent.isdisjoint(view)
    assert "defaultMetadata" not in view


def test_policies_read_only_keys_the_view_has() -> None:
    """Every ``config.<key>`` a shipped policy reads is a key of the view (the example sets every block)."""
    config = resolve_config(load_yaml(UPSTREAM_EXAMPLE), TOKEN_ENV, {}, "x")
    view = config.expression_view()
    policies = REPO / "policies"
    if not policies.is_dir():
        pytest.skip("no policies directory")
    text = "\n".join(path.read_text(encoding="utf-8") for path in sorted(policies.glob("*.yaml")))
    read = set(re.findall(r"\bconfig\.([A-Za-z]+)", text))
    read |= {path.split(".")[0] for path in re.findall(r'lookup\(config, "([A-Za-z.]+)"', text)}
    assert read, "the policies read no config keys"
    assert sorted(read - set(view)) == []


# --- logging ----------------------------------------------------------------------------------------


def test_redacted_hides_the_token_and_shows_the_rest_as_in_the_file() -> None:
    config = resolve_config(load_yaml(UPSTREAM_EXAMPLE), TOKEN_ENV, {}, "x")
    logged = config.redacted()
    assert logged["buildkite-token"] == "[REDACTED]"
    assert "my-graphql-enabled-token" not in json.dumps(logged)
    assert logged["agent-token-secret"] == "my-kubernetes-secret"  # a secret's name, not a secret
    assert logged["job-ttl"] == "5m0s"
    assert logged["pod-spec-patch"] == UPSTREAM_POD_SPEC_PATCH
    assert parse_config({}, "x").redacted()["buildkite-token"] == ""


def test_a_dumped_config_reads_back_the_same() -> None:
    config = resolve_config(load_yaml(UPSTREAM_EXAMPLE), TOKEN_ENV, {}, "x")
    dumped = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert parse_config(dumped, "dump") == config


# --- documentation and schema -----------------------------------------------------------------------


def _nested_block(annotation: Any) -> tuple[type[Any], str] | None:
    """``tuple[Block, ...]`` -> (Block, "[]."), ``dict[str, Block]`` -> (Block, ".<name>.")."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    item = args[0] if origin is tuple and args else args[1] if origin is dict and args else None
    if isinstance(item, type) and hasattr(item, "model_fields"):
        return item, "[]." if origin is tuple else ".<name>."
    return None


def all_fields() -> list[tuple[str, Any]]:
    found = []

    def walk(model: type[Any], prefix: str) -> None:
        for field in model.model_fields.values():
            found.append((prefix + field.alias, field))
            for arg in getattr(field.annotation, "__args__", (field.annotation,)):
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    walk(arg, prefix + field.alias + ".")
                nested = _nested_block(arg)
                if nested is not None:
                    walk(nested[0], prefix + field.alias + nested[1])

    walk(ControllerConfig, "")
    return found


def test_every_key_has_a_description() -> None:
    assert [key for key, field in all_fields() if not field.description] == []
    assert len(all_fields()) > 60


def test_reference_table_lists_every_key_with_its_flag() -> None:
    table = config_reference_markdown()
    rows = [line for line in table.splitlines()[2:] if line.startswith("| `")]
    keys = [row.split("`")[1] for row in rows]
    assert keys == [key for key, _ in all_fields()]
    for row in rows:
        key = row.split("`")[1]
        assert row.count(" | ") == 4, row
        if key in FLAG_KEYS:
            assert f"`--{key}` / `{env_var_name(key)}`" in row
        else:
            assert "| file only |" in row
    assert "| `job-ttl` | duration | `10m0s` |" in table
    assert '| `tags` | list of strings | `["queue=kubernetes"]` |' in table


def test_flag_keys_are_the_scalar_top_level_keys() -> None:
    structured = {"additional-redacted-vars", "pod-spec-patch", "workspace-volume", "agent-config"}
    structured |= {"kubernetes-version", "job-log-warnings"}  # engine settings, deliberately file only
    structured |= {"workspace-mount-sub-path-expr", "resource-classes", "default-resource-class-name"}
    structured |= {"profile"}  # file only: PROFILE means other things to other programs
    structured |= {
        "default-checkout-params",
        "default-command-params",
        "default-sidecar-params",
        "default-metadata",
    }
    top_level = {str(field.alias) for field in ControllerConfig.model_fields.values()}
    assert set(FLAG_KEYS) == top_level - structured


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


def test_checked_in_schema_is_current() -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_config_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr


def test_schema_is_valid_self_contained_and_strict() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    text = json.dumps(schema)
    refs = set(re.findall(r'"\$ref": "#/\$defs/([^"]+)"', text))
    assert refs - set(schema["$defs"]) == set()
    assert "x-kubernetes-definition" not in text
    assert schema["additionalProperties"] is False
    own = ["AgentConfig", "CheckoutParams", "GitMirrors", "CommandParams", "SidecarParams", "Metadata"]
    assert [name for name in own if schema["$defs"][name]["additionalProperties"] is not False] == []
    assert sorted(schema["properties"]) == sorted(
        str(f.alias) for f in ControllerConfig.model_fields.values()
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_examples_are_valid_for_the_schema_and_the_model(path: pathlib.Path) -> None:
    data = load_yaml(path)
    assert [error.message for error in jsonschema.Draft202012Validator(load_schema()).iter_errors(data)] == []
    parse_config(data, path.name)


@pytest.mark.parametrize(
    "data",
    [
        {"agent-config": {"no-htp2": True}},
        {"pod-spec-patch": {"containers": [{"name": "c", "imagee": "x"}]}},
        {"default-command-params": {"interposer": "shell"}},
        {"job-ttl": "5 minutes"},
    ],
)
def test_the_schema_rejects_what_the_model_rejects(data: dict[str, Any]) -> None:
    problems_of(data)
    assert list(jsonschema.Draft202012Validator(load_schema()).iter_errors(data)) != []


# --- the Buildkite API mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mode", "reason"),
    [
        ({}, "stacks", "no buildkite-token or org is set"),
        ({"queue": "gpu", "agent-token-secret": "t"}, "stacks", "no buildkite-token or org is set"),
        ({"buildkite-token": "x", "org": "o"}, "graphql", "buildkite-token is set"),
        ({"org": "o"}, "graphql", "org is set"),
        ({"buildkite-api": "graphql"}, "graphql", "buildkite-api is graphql"),
        ({"buildkite-api": "stacks", "tags": []}, "stacks", "buildkite-api is stacks"),
    ],
)
def test_the_mode_follows_the_keys_an_explicit_one_winning(
    data: dict[str, Any], mode: str, reason: str
) -> None:
    config = parse_config(data, "x")
    assert (config.mode().name, config.mode_reason()) == (mode, reason)


def test_an_explicit_mode_chooses_when_both_kinds_of_keys_could_apply() -> None:
    env = {"BUILDKITE_TOKEN": "bkua_x"}
    config = resolve_config({"buildkite-api": "graphql", "org": "o"}, env, {}, "f")
    assert config.mode().name == "graphql"
    problems = problems_of({"buildkite-api": "stacks", "buildkite-token": "bkua_x"})
    assert problems == [
        "config.yaml: buildkite-token: only the GraphQL mode reads this key, but the controller runs the "
        "Stacks API mode (buildkite-api is stacks); remove it, or set buildkite-api: graphql"
    ]


def test_every_key_of_the_other_mode_is_named_and_defaults_do_not_count() -> None:
    stacks_keys = {
        "queue": "gpu",
        "reservation-expiry-seconds": 60,
        "pagination-page-size": 10,
        "job-acquisition-tokens": True,
        "job-acquisition-token-lifetime-seconds": 60,
    }
    problems = problems_of({"org": "o", **stacks_keys})
    assert [line.split(": ")[1] for line in problems] == list(stacks_keys)
    # a full dump names every key with its default: that is not a mistake
    assert (
        parse_config({"org": "o", "reservation-expiry-seconds": 900, "queue": ""}, "x").mode().name
        == "graphql"
    )
    graphql_keys = {"buildkite-token": "x", "org": "o", "cluster-uuid": "c", "graphql-endpoint": "http://g"}
    problems = problems_of({"buildkite-api": "stacks", **graphql_keys})
    assert [line.split(": ")[1] for line in problems] == list(graphql_keys)


@pytest.mark.parametrize(
    ("data", "queue"),
    [
        ({}, "kubernetes"),
        ({"queue": "gpu"}, "gpu"),
        ({"queue": "~"}, "_default"),
        ({"queue": "-"}, "_default"),
        ({"tags": ["os=linux"]}, "_default"),
        ({"tags": ["queue=builds"], "queue": "gpu"}, "gpu"),
    ],
)
def test_the_stacks_api_queue_is_the_queue_key_then_the_tag_then_the_default(
    data: dict[str, Any], queue: str
) -> None:
    config = parse_config(data, "x")
    assert config.effective_queue() == queue
    assert config.controller_id() == f"default.{queue}"


def test_the_stack_key_is_the_id_else_upstreams_default() -> None:
    assert parse_config({}, "x").stack_key() == "agent-stack-k8s"
    assert parse_config({"id": "ci-stack"}, "x").stack_key() == "ci-stack"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"buildkite-api": "rest"},
            'buildkite-api: unknown Buildkite API "rest" (valid: "graphql", "stacks")',
        ),
        ({"reservation-expiry-seconds": 3601}, "reservation-expiry-seconds: must be at most 3600, got 3601"),
        ({"pagination-page-size": 0}, "pagination-page-size: must be at least 1, got 0"),
        (
            {"job-acquisition-token-lifetime-seconds": -1},
            "job-acquisition-token-lifetime-seconds: must be at least 0, got -1",
        ),
    ],
)
def test_stacks_api_keys_are_checked(data: dict[str, Any], problem: str) -> None:
    assert only_problem(data) == f"config.yaml: {problem}"


def test_the_tags_left_out_of_matching_follow_the_mode_and_the_profile() -> None:
    """The monitor and ``engine test`` match a job's tags without these (one list for both)."""
    graphql = parse_config({"org": "o"}, "x")
    stacks = parse_config({"queue": "q"}, "x")
    v047 = parse_config({"queue": "q", "profile": "upstream-v0.47"}, "x")
    assert (graphql.unmatched_job_tags(), stacks.unmatched_job_tags()) == ((), ("queue",))
    assert v047.unmatched_job_tags() == ("resource_class", "queue")
