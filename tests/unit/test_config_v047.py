"""The config keys agent-stack-k8s added in v0.21-v0.47 (reference §11.1-§11.3): each is accepted with
upstream's type, default and validation, errors name the key (and ``FILE:LINE:COL`` when read from a
file), keys that do nothing here say so, and the profile key brings its own defaults."""

from __future__ import annotations

from typing import Any

import pytest

from engine.inputs import read_config_yaml
from engine.model.config import ConfigError, ControllerConfig, parse_config, resolve_config

HEAD = {"profile": "upstream-v0.47"}


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "config.yaml")
    return caught.value.problems


def view(data: dict[str, Any]) -> dict[str, Any]:
    return parse_config(data, "config.yaml").expression_view()


# --- §11.2, every key, with a value upstream's example uses -----------------------------------------

HEAD_KEYS: dict[str, Any] = {
    "job-prefix": "testkite-",
    "job-active-deadline-seconds": 3600,
    "default-image-pull-policy": "Never",
    "default-image-check-pull-policy": "IfNotPresent",
    "skip-image-check-containers": True,
    "image-check-container-cpu-limit": "201m",
    "image-check-container-memory-limit": "129Mi",
    "allow-pod-spec-patch-unsafe-command-modification": True,
    "workspace-mount-sub-path-expr": "$(POD_NAME)",
    "resource-classes": {"small": {"resource": {"requests": {"cpu": "500m", "hugepages-2Mi": "1Mi"}}}},
    "default-resource-class-name": "small",
    "enable-completion-watcher": False,
    "enable-queue-pause": True,
    "work-queue-limit": 2000000,
    "k8s-client-rate-limiter-qps": 20,
    "k8s-client-rate-limiter-burst": 30,
    "log-format": "json",
    "log-level": "warn",
    "no-color": True,
    "log-http-payloads": True,
    "integration-test-buildkite-token": "secret-token",
    "default-termination-grace-period-seconds": 80,
    "pod-pending-timeout": "10m",
    "id": "my-controller",
}


@pytest.mark.parametrize(("key", "value"), list(HEAD_KEYS.items()), ids=list(HEAD_KEYS))
def test_every_head_key_is_accepted_and_policies_see_it(key: str, value: Any) -> None:
    data = {**HEAD, key: value}
    if key == "default-resource-class-name":
        data["resource-classes"] = HEAD_KEYS["resource-classes"]
    config = parse_config(data, "config.yaml")
    seen = config.expression_view()
    camel = "".join(part if i == 0 else part[:1].upper() + part[1:] for i, part in enumerate(key.split("-")))
    if key == "pod-pending-timeout":
        assert seen[camel] == 600.0
    elif key == "id":
        assert seen[camel] == value
    elif key == "resource-classes":
        assert seen[camel] == {"small": {"resource": value["small"]["resource"]}}
    elif key == "integration-test-buildkite-token":  # a token: accepted, never shown to policies
        assert camel not in seen
    else:
        assert seen[camel] == value


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("job-prefix", "", "job-prefix: required: Jobs are named <job-prefix><job uuid>"),
        ("job-prefix", "Buildkite-", '"Buildkite-" cannot start a Job name'),
        ("job-prefix", "a" * 28, "at most 27 lowercase letters"),
        (
            "job-active-deadline-seconds",
            0,
            "job-active-deadline-seconds: must be a positive number of seconds",
        ),
        (
            "default-image-pull-policy",
            "Sometimes",
            'invalid image pull policy "Sometimes" (valid: "", "Always"',
        ),
        ("default-image-check-pull-policy", "always", 'invalid image pull policy "always"'),
        ("image-check-container-cpu-limit", "two", "image-check-container-cpu-limit: "),
        ("image-check-container-memory-limit", "1 Gi", "image-check-container-memory-limit: "),
        ("work-queue-limit", 0, "work-queue-limit: must be at least 1"),
        ("k8s-client-rate-limiter-qps", -1, "must be at least 0"),
        ("log-format", "xml", 'log-format: invalid log format "xml" (valid: "logfmt", "json", "text")'),
        (
            "log-level",
            "verbose",
            'log-level: invalid log level "verbose" (valid: "debug", "info", "warn", "error")',
        ),
        ("profile", "v0.47", 'profile: invalid profile "v0.47" (valid: "default", "upstream-v0.47")'),
        ("enable-completion-watcher", "maybe", "enable-completion-watcher: expected a boolean"),
        (
            "resource-classes",
            {"small": {"resourc": {}}},
            'resource-classes.small.resourc: unknown key (did you mean "resource"?)',
        ),
        (
            "resource-classes",
            {"small": {"resource": {"limits": {"cpu": "lots"}}}},
            "resource-classes.small.resource.limits.cpu: invalid quantity",
        ),
        (
            "resource-classes",
            {"small": {"nodeSelector": {"a": 1}}},
            "resource-classes.small.nodeSelector.a: expected a string",
        ),
    ],
)
def test_head_keys_are_validated_like_upstream(key: str, value: Any, message: str) -> None:
    lines = problems_of({**HEAD, key: value})
    assert any(message in line for line in lines), lines


def test_defaults_of_the_head_keys() -> None:
    config = parse_config({}, "defaults")
    assert (config.job_prefix, config.job_active_deadline_seconds) == ("buildkite-", 21600)
    assert (config.image_check_container_cpu_limit, config.image_check_container_memory_limit) == (
        "200m",
        "128Mi",
    )
    assert (
        config.work_queue_limit,
        config.k8s_client_rate_limiter_qps,
        config.k8s_client_rate_limiter_burst,
    ) == (
        1000000,
        10,
        20,
    )
    assert (config.log_format, config.log_level, config.enable_completion_watcher) == ("logfmt", "info", True)
    assert config.resource_classes is None


# --- the profile -------------------------------------------------------------------------------------


def test_the_profile_brings_its_image_and_kubernetes_version() -> None:
    default = parse_config({}, "x")
    head = parse_config(HEAD, "x")
    assert (default.image, default.kubernetes_version) == ("ghcr.io/buildkite/agent:3.87.1", "1.20")
    assert (head.image, head.kubernetes_version) == ("ghcr.io/buildkite/agent:3.136.2", "1.29")
    assert (
        parse_config({**HEAD, "kubernetes-version": "1.34", "image": "my/agent:1"}, "x").image == "my/agent:1"
    )


def test_the_profile_needs_native_sidecars() -> None:
    assert problems_of({**HEAD, "kubernetes-version": "1.20"}) == [
        "config.yaml: kubernetes-version: profile upstream-v0.47 needs kubernetes-version 1.29 or later (its "
        "sidecars are native: init containers with restartPolicy Always); supported: 1.29, 1.34"
    ]


def test_the_profile_comes_from_the_file_only() -> None:
    """A PROFILE variable means other things to other programs (shells, CI systems): not read."""
    assert resolve_config({}, {"PROFILE": "upstream-v0.47"}, {}, "x").profile == "default"
    config = resolve_config({"profile": "upstream-v0.47"}, {}, {}, "x")
    assert (config.profile, config.kubernetes_version) == ("upstream-v0.47", "1.29")


def test_the_agent_image_must_be_a_reference_under_the_profile() -> None:
    assert problems_of({**HEAD, "image": "my agent"}) == [
        'config.yaml: image: invalid reference format "my agent"'
    ]
    assert parse_config({"image": "my agent"}, "x").image == "my agent"  # v0.20.2 never parsed it


# --- §11.1 rules between keys --------------------------------------------------------------------------


def test_the_default_resource_class_must_exist() -> None:
    classes = {"small": {"resource": {"limits": {"cpu": "1"}}}}
    assert problems_of({**HEAD, "default-resource-class-name": "small"}) == [
        'config.yaml: default-resource-class-name: default-resource-class-name "small" specified but no '
        "resource-classes defined"
    ]
    assert problems_of({**HEAD, "default-resource-class-name": "big", "resource-classes": classes}) == [
        'config.yaml: default-resource-class-name: default-resource-class-name "big" not found in '
        "resource-classes (defined: small)"
    ]


def test_pod_spec_patch_commands_need_the_unsafe_mode_of_the_profile() -> None:
    patch = {"containers": [{"name": "container-0", "command": ["make"]}]}
    [line] = problems_of({**HEAD, "pod-spec-patch": patch})
    assert line.startswith("config.yaml: pod-spec-patch.containers[0].command: modifying container commands")
    assert line.endswith("(or set allow-pod-spec-patch-unsafe-command-modification)")
    unsafe = {**HEAD, "pod-spec-patch": patch, "allow-pod-spec-patch-unsafe-command-modification": True}
    assert parse_config(unsafe, "x").pod_spec_patch == patch
    # The default profile has no unsafe mode: the key changes nothing there.
    default_unsafe = {"pod-spec-patch": patch, "allow-pod-spec-patch-unsafe-command-modification": True}
    assert len(problems_of(default_unsafe)) == 1


def test_pod_spec_patch_images_must_be_lowercase_under_the_profile() -> None:
    patch = {"containers": [{"name": "container-0", "image": "Example.org/Tool:1"}]}
    assert problems_of({**HEAD, "pod-spec-patch": patch}) == [
        'config.yaml: pod-spec-patch.containers[0].image: "Example.org/Tool:1": image names must be lowercase'
    ]


def test_cross_key_problems_name_file_line_and_column() -> None:
    text = "profile: upstream-v0.47\nresource-classes: {a: {}}\ndefault-resource-class-name: b\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(read_config_yaml(text, "c.yaml"), "c.yaml")
    assert caught.value.problems[0].startswith("c.yaml:3:30: default-resource-class-name:")


# --- agent-config and params ---------------------------------------------------------------------------


def test_agent_config_keys_of_later_releases() -> None:
    agent_config = {
        "tracing-backend": "opentelemetry",
        "tracing-service-name": "ci",
        "tracing-propagate-traceparent": True,
        "git-skip-fetch-existing-commits": True,
        "container-start-timeout": "90s",
        "additional-hooks-paths": "/a,/b",
        "additional-hooks": [{"path": "/hooks", "volume": {"name": "hooks", "configMap": {"name": "hooks"}}}],
    }
    seen = view({**HEAD, "agent-config": agent_config})["agentConfig"]
    assert seen == {
        "tracingBackend": "opentelemetry",
        "tracingServiceName": "ci",
        "tracingPropagateTraceparent": True,
        "gitSkipFetchExistingCommits": True,
        "containerStartTimeout": 90.0,
        "additionalHooksPaths": ["/a", "/b"],
        "additionalHooks": [{"path": "/hooks", "volume": {"name": "hooks", "configMap": {"name": "hooks"}}}],
    }


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({"volume": {"name": "h", "emptyDir": {}}}, "agent-config.additional-hooks[0].path: Field required"),
        (
            {"path": "/h", "volume": {"emptyDir": {}}},
            "agent-config.additional-hooks[0].volume.name: required",
        ),
        ({"path": "/h"}, "agent-config.additional-hooks[0].volume: Field required"),
    ],
)
def test_every_additional_hook_needs_a_path_and_a_named_volume(hook: dict[str, Any], message: str) -> None:
    lines = problems_of({**HEAD, "agent-config": {"additional-hooks": [hook]}})
    assert any(message in line for line in lines), lines


def test_params_take_extra_volume_mounts_and_checkout_flags() -> None:
    mounts = [{"name": "cache", "mountPath": "/cache"}]
    seen = view(
        {
            **HEAD,
            "default-checkout-params": {"checkoutFlags": "-f", "extraVolumeMounts": mounts},
            "default-command-params": {"extraVolumeMounts": mounts},
            "default-sidecar-params": {"extraVolumeMounts": mounts},
        }
    )
    assert seen["defaultCheckoutParams"] == {"checkoutFlags": "-f", "extraVolumeMounts": mounts}
    assert seen["defaultCommandParams"]["extraVolumeMounts"] == mounts
    assert seen["defaultSidecarParams"]["extraVolumeMounts"] == mounts
    bad = problems_of(
        {**HEAD, "default-command-params": {"extraVolumeMounts": [{"name": "c", "mountPath": 1}]}}
    )
    assert bad == [
        "config.yaml: default-command-params.extraVolumeMounts[0].mountPath: expected a string, got the "
        "number 1"
    ]


# --- what does nothing here says so --------------------------------------------------------------------


def test_keys_that_do_nothing_say_so() -> None:
    config = parse_config(
        {**HEAD, "enable-queue-pause": True, "work-queue-limit": 5, "log-http-payloads": True}, "x"
    )
    notices = config.notices()
    assert notices == [
        "enable-queue-pause: accepted, but it does nothing: agent-stack-k8s has ignored it since v0.28.0",
        "work-queue-limit: accepted, but this controller has no priority work queue to limit",
        "log-http-payloads: accepted, but this controller never logs HTTP payloads",
    ]
    assert parse_config(HEAD, "x").notices() == []


def test_profile_keys_say_so_under_the_default_profile() -> None:
    config = parse_config({"job-prefix": "ci-", "agent-config": {"container-start-timeout": "1m"}}, "x")
    assert config.notices() == [
        "job-prefix: only the upstream-v0.47 profile reads this key; with profile default it does nothing "
        "(set profile: upstream-v0.47)",
        "agent-config.container-start-timeout: only the upstream-v0.47 profile reads this key; with profile "
        "default it does nothing (set profile: upstream-v0.47)",
    ]


def test_the_integration_test_token_is_never_logged() -> None:
    config = parse_config({"integration-test-buildkite-token": "s3cret"}, "x")
    assert config.redacted()["integration-test-buildkite-token"] == "[REDACTED]"


REFERENCE_11_2 = [
    "agent-token-secret",
    "image",
    "namespace",
    "id",
    "tags",
    "max-in-flight",
    "job-creation-concurrency",
    "work-queue-limit",
    "poll-interval",
    "http-timeout",
    "pagination-depth-limit",
    "enable-queue-pause",
    "job-ttl",
    "job-active-deadline-seconds",
    "job-prefix",
    "default-termination-grace-period-seconds",
    "image-pull-backoff-grace-period",
    "job-cancel-checker-poll-interval",
    "empty-job-grace-period",
    "pod-pending-timeout",
    "enable-completion-watcher",
    "k8s-client-rate-limiter-qps",
    "k8s-client-rate-limiter-burst",
    "default-image-pull-policy",
    "default-image-check-pull-policy",
    "skip-image-check-containers",
    "image-check-container-cpu-limit",
    "image-check-container-memory-limit",
    "prohibit-kubernetes-plugin",
    "allow-pod-spec-patch-unsafe-command-modification",
    "prometheus-port",
    "profiler-address",
    "debug",
    "log-format",
    "log-level",
    "no-color",
    "log-http-payloads",
    "integration-test-buildkite-token",
    "graphql-endpoint",
    "pod-spec-patch",
    "workspace-volume",
    "workspace-mount-sub-path-expr",
    "agent-config",
    "default-checkout-params",
    "default-command-params",
    "default-sidecar-params",
    "default-metadata",
    "additional-redacted-vars",
    "resource-classes",
    "default-resource-class-name",
    "queue",
    "reservation-expiry-seconds",
    "pagination-page-size",
    "query-reset-interval",
]
"""Every key of reference §11.2."""


def test_every_key_of_the_reference_is_in_the_model() -> None:
    aliases = {str(field.alias) for field in ControllerConfig.model_fields.values()}
    assert set(REFERENCE_11_2) - aliases == set()
    assert set(HEAD_KEYS) <= aliases
