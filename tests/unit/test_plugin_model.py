"""The kubernetes plugin is type-checked like upstream's lenient Go decoder: wrong types are problems
naming their path, unknown fields are ignored (but reported separately), ``null`` is always fine."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

from engine.model import k8s_types
from engine.model.plugin import (
    PluginTypeError,
    check_plugin,
    describe_value,
    unknown_plugin_fields,
    validate_plugin,
)

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"


def at(path: str, value: Any) -> Any:
    """A plugin config holding ``value`` at a dotted path; ``name[0]`` segments become one-item lists."""
    for segment in reversed(path.split(".")):
        name, _, index = segment.partition("[")
        if index:
            value = [value]
        value = {name: value}
    return value


def realistic_plugin() -> Any:
    """The plugin block of the valid pipeline fixture: a podSpecPatch and two sidecars."""
    document = yaml.safe_load((FIXTURES / "valid.yaml").read_text(encoding="utf-8"))
    return document["steps"][0]["plugins"][0]["kubernetes"]


# (path, value Go decodes without complaint)
VALID_CASES: list[tuple[str, Any]] = [
    ("podSpec", {"containers": [{"name": "main", "image": "alpine", "command": ["make"]}]}),
    ("podSpec.securityContext.runAsUser", 1000),
    ("podSpec.terminationGracePeriodSeconds", 0),
    ("podSpecPatch", {"nodeSelector": {"disk": "ssd"}}),
    ("podSpecPatch.containers[0].resources.limits.cpu", 2),
    ("podSpecPatch.containers[0].resources.limits.cpu", 0.5),
    ("podSpecPatch.containers[0].resources.requests.memory", "512Mi"),
    ("podSpecPatch.volumes[0].emptyDir.sizeLimit", "10Gi"),
    ("gitEnvFrom", [{"secretRef": {"name": "ssh", "optional": True}}, {"configMapRef": {"name": "git"}}]),
    ("sidecars", [{"name": "db", "image": "postgres", "ports": [{"containerPort": 5432}]}]),
    ("sidecars[0].readinessProbe.httpGet.port", 8080),
    ("sidecars[0].readinessProbe.httpGet.port", "http"),
    (
        "sidecars[0].env",
        [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {"key": "k"}}}],
    ),
    ("metadata", {"labels": {"team": "ci"}, "annotations": {"example.com/owner": "me"}}),
    ("extraVolumeMounts", [{"name": "cache", "mountPath": "/cache", "readOnly": True, "subPath": "x"}]),
    # fields of later releases (profile upstream-v0.47: decoded with head=True)
    ("podTemplate", "my-template"),
    ("jobActiveDeadlineSeconds", 60),
    ("checkout.checkoutFlags", "-f"),
    ("checkout.extraVolumeMounts", [{"name": "cache", "mountPath": "/cache"}]),
    ("commandParams.extraVolumeMounts", [{"name": "cache", "mountPath": "/cache"}]),
    ("sidecarParams.extraVolumeMounts", [{"name": "cache", "mountPath": "/cache"}]),
    ("checkout.skip", True),
    ("checkout.cleanFlags", "-ffxdq"),
    ("checkout.cloneFlags", "--depth=1"),
    ("checkout.fetchFlags", "-v"),
    ("checkout.noSubmodules", False),
    ("checkout.submoduleCloneConfig", ["key=value", "other=1"]),
    ("checkout.gitMirrors", {"path": "/m", "cloneFlags": "-v", "lockTimeout": 30, "skipUpdate": True}),
    ("checkout.gitMirrors.volume", {"name": "mirrors", "persistentVolumeClaim": {"claimName": "git"}}),
    ("checkout.gitCredentialsSecret", {"secretName": "creds", "defaultMode": 420, "optional": False}),
    (
        "checkout.gitCredentialsSecret.items",
        [{"key": "credentials", "path": ".git-credentials", "mode": 256}],
    ),
    ("checkout.envFrom", [{"prefix": "GIT_", "secretRef": {"name": "git"}}]),
    ("commandParams.interposer", ""),
    ("commandParams.interposer", "buildkite"),
    ("commandParams.interposer", "vector"),
    ("commandParams.interposer", "legacy"),
    ("commandParams.envFrom", [{"configMapRef": {"name": "env"}}]),
    ("sidecarParams.envFrom", [{"secretRef": {"name": "env"}}]),
    ("podSpec.volumes[0].ephemeral.volumeClaimTemplate.metadata.creationTimestamp", "2024-05-01T10:00:00Z"),
    ("podSpec.volumes[0].ephemeral.volumeClaimTemplate.metadata.managedFields[0].fieldsV1", {"f:x": {}}),
]

# (path, value Go's decoder rejects, the problem reported at that path)
INVALID_CASES: list[tuple[str, Any, str]] = [
    ("podTemplate", 1, "expected a string, got the number 1"),
    ("jobActiveDeadlineSeconds", "60", 'expected an integer, got the string "60"'),
    ("checkout.checkoutFlags", True, "expected a string, got the boolean true"),
    ("checkout.extraVolumeMounts", {"name": "x"}, "expected a list, got an object"),
    ("commandParams.extraVolumeMounts[0].mountPath", 1, "expected a string, got the number 1"),
    ("sidecarParams.extraVolumeMounts", "x", 'expected a list, got the string "x"'),
    ("podSpec", "alpine", 'expected an object, got the string "alpine"'),
    ("podSpec.containers", {"name": "x"}, "expected a list, got an object"),
    ("podSpec.containers[0].env[0].value", 0, "expected a string, got the number 0"),
    ("podSpec.containers[0].command", "make test", 'expected a list, got the string "make test"'),
    ("podSpec.containers[0].args[0]", 3, "expected a string, got the number 3"),
    ("podSpec.hostNetwork", "true", 'expected a boolean, got the string "true"'),
    ("podSpec.securityContext.runAsUser", "1000", 'expected an integer, got the string "1000"'),
    ("podSpec.securityContext.runAsUser", 2**63, f"expected a 64-bit integer, got the number {2**63}"),
    ("podSpec.activeDeadlineSeconds", True, "expected an integer, got the boolean true"),
    ("podSpec.nodeSelector", ["a"], "expected an object, got a list"),
    ("podSpec.nodeSelector.disk", False, "expected a string, got the boolean false"),
    ("podSpecPatch", [], "expected an object, got a list"),
    (
        "podSpecPatch.containers[0].resources.limits.cpu",
        "two",
        'invalid quantity "two" (expected a number or a string like "500m" or "1Gi")',
    ),
    (
        "podSpecPatch.containers[0].resources.limits.cpu",
        True,
        'expected a quantity (a number or a string like "500m" or "1Gi"), got the boolean true',
    ),
    (
        "podSpecPatch.containers[0].ports[0].containerPort",
        2**31,
        f"expected a 32-bit integer, got the number {2**31}",
    ),
    ("podSpecPatch.containers[0].ports[0].containerPort", 80.0, "expected an integer, got the number 80.0"),
    ("gitEnvFrom", {"secretRef": {"name": "x"}}, "expected a list, got an object"),
    ("gitEnvFrom[0].secretRef.optional", "yes", 'expected a boolean, got the string "yes"'),
    ("sidecars", "nginx", 'expected a list, got the string "nginx"'),
    ("sidecars[0]", "nginx", 'expected an object, got the string "nginx"'),
    ("sidecars[0].readinessProbe.httpGet.port", 80.5, "expected an integer or a string, got the number 80.5"),
    (
        "sidecars[0].readinessProbe.httpGet.port",
        True,
        "expected an integer or a string, got the boolean true",
    ),
    (
        "sidecars[0].readinessProbe.httpGet.port",
        2**31,
        f"expected a 32-bit integer or a string, got the number {2**31}",
    ),
    ("metadata", "x", 'expected an object, got the string "x"'),
    ("metadata.labels", ["team=ci"], "expected an object, got a list"),
    ("metadata.labels.team", 42, "expected a string, got the number 42"),
    ("metadata.annotations.owner", {"a": "b"}, "expected a string, got an object"),
    ("extraVolumeMounts", {"name": "x"}, "expected a list, got an object"),
    ("extraVolumeMounts[0].readOnly", "no", 'expected a boolean, got the string "no"'),
    ("extraVolumeMounts[0].mountPath", 7, "expected a string, got the number 7"),
    ("checkout", True, "expected an object, got the boolean true"),
    ("checkout.skip", "true", 'expected a boolean, got the string "true"'),
    ("checkout.cleanFlags", ["-f"], "expected a string, got a list"),
    ("checkout.cloneFlags", 1, "expected a string, got the number 1"),
    ("checkout.fetchFlags", False, "expected a string, got the boolean false"),
    ("checkout.noSubmodules", 1, "expected a boolean, got the number 1"),
    ("checkout.submoduleCloneConfig", "a=b", 'expected a list, got the string "a=b"'),
    ("checkout.submoduleCloneConfig[0]", 5, "expected a string, got the number 5"),
    ("checkout.gitMirrors", "/mirrors", 'expected an object, got the string "/mirrors"'),
    ("checkout.gitMirrors.path", 1, "expected a string, got the number 1"),
    ("checkout.gitMirrors.volume", "mirrors", 'expected an object, got the string "mirrors"'),
    ("checkout.gitMirrors.volume.hostPath.path", 1, "expected a string, got the number 1"),
    ("checkout.gitMirrors.cloneFlags", True, "expected a string, got the boolean true"),
    ("checkout.gitMirrors.lockTimeout", "30s", 'expected an integer, got the string "30s"'),
    ("checkout.gitMirrors.skipUpdate", "no", 'expected a boolean, got the string "no"'),
    ("checkout.gitCredentialsSecret", "creds", 'expected an object, got the string "creds"'),
    ("checkout.gitCredentialsSecret.defaultMode", "0644", 'expected an integer, got the string "0644"'),
    ("checkout.gitCredentialsSecret.items[0].path", 1, "expected a string, got the number 1"),
    ("checkout.envFrom", "secret", 'expected a list, got the string "secret"'),
    ("commandParams", [], "expected an object, got a list"),
    (
        "commandParams.interposer",
        "bash",
        'invalid command interposer "bash" (valid: "", "buildkite", "legacy", "vector")',
    ),
    (
        "commandParams.interposer",
        "Vector",
        'invalid command interposer "Vector" (valid: "", "buildkite", "legacy", "vector")',
    ),
    ("commandParams.interposer", 1, "expected a string, got the number 1"),
    ("commandParams.interposer", ["vector"], "expected a string, got a list"),
    ("commandParams.envFrom[0]", "x", 'expected an object, got the string "x"'),
    ("sidecarParams", "x", 'expected an object, got the string "x"'),
    ("sidecarParams.envFrom[0].configMapRef.name", 1, "expected a string, got the number 1"),
    (
        "podSpec.volumes[0].ephemeral.volumeClaimTemplate.metadata.creationTimestamp",
        "yesterday",
        'invalid time "yesterday" (expected RFC 3339 like "2006-01-02T15:04:05Z")',
    ),
    (
        "podSpec.volumes[0].ephemeral.volumeClaimTemplate.metadata.creationTimestamp",
        0,
        "expected an RFC 3339 time, got the number 0",
    ),
]


@pytest.mark.parametrize(("path", "value"), VALID_CASES)
def test_values_go_accepts_have_no_problems(path: str, value: Any) -> None:
    assert check_plugin(at(path, value), head=True) == []


@pytest.mark.parametrize(("path", "value", "problem"), INVALID_CASES)
def test_wrong_types_are_reported_with_their_path(path: str, value: Any, problem: str) -> None:
    assert check_plugin(at(path, value), head=True) == [f"{path}: {problem}"]


PLUGIN_OWN_STRUCTS = (
    "KubernetesPlugin",
    "Metadata",
    "CheckoutParams",
    "GitMirrors",
    "CommandParams",
    "SidecarParams",
)


def plugin_field_paths(struct: str = k8s_types.ROOT, prefix: str = "") -> list[str]:
    """Every field of the plugin's own types, as dotted paths (Kubernetes types are not expanded)."""
    paths = []
    for field, expression in k8s_types.STRUCTS[struct].items():
        paths.append(prefix + field)
        if expression in PLUGIN_OWN_STRUCTS:
            paths += plugin_field_paths(expression, f"{prefix}{field}.")
    return paths


def reaches(config: Any, dotted: str) -> bool:
    """Whether ``config`` holds a value at ``dotted`` (lists are entered through their first item)."""
    for name in dotted.split("."):
        while isinstance(config, list) and config:
            config = config[0]
        if not isinstance(config, dict) or name not in config:
            return False
        config = config[name]
    return True


@pytest.mark.parametrize("table", ["valid", "invalid"])
def test_every_plugin_field_has_cases(table: str) -> None:
    if table == "valid":
        configs = [at(path, value) for path, value in VALID_CASES]
    else:
        configs = [at(path, value) for path, value, _ in INVALID_CASES]
    fields = plugin_field_paths()
    assert len(fields) > 25
    assert [f for f in fields if not any(reaches(config, f) for config in configs)] == []


@pytest.mark.parametrize(
    "quantity",
    [0, 2, 0.25, 1e3, "1", "500m", "1Gi", "2Ki", "1.5", ".5", "1e3", "1E-2", "+1.5Ki", "-1", " 1Gi ", "7E"],
)
def test_quantities_accept_numbers_and_kubernetes_strings(quantity: Any) -> None:
    assert check_plugin(at("sidecars[0].resources.requests.memory", quantity)) == []


@pytest.mark.parametrize("quantity", ["", " ", "1K", "1 Gi", "1e", "1Mi3", "1.5.5", "abc", "1gi"])
def test_quantities_reject_what_parse_quantity_rejects(quantity: str) -> None:
    problems = check_plugin(at("sidecars[0].resources.requests.memory", quantity))
    assert len(problems) == 1
    assert problems[0].startswith("sidecars[0].resources.requests.memory: invalid quantity")


@pytest.mark.parametrize(
    "config",
    [
        None,
        {"podSpec": None, "podSpecPatch": None, "sidecars": None, "metadata": None, "checkout": None},
        {"commandParams": {"interposer": None}, "sidecarParams": {"envFrom": None}},
        at("podSpec.containers[0].env[0].value", None),
        at("podSpec.containers", [None, {"name": None, "ports": [{"containerPort": None}]}]),
        at("sidecars[0].resources.limits.cpu", None),
        at("sidecars[0].readinessProbe.httpGet.port", None),
        at("metadata.labels.team", None),
        at("checkout.gitMirrors.lockTimeout", None),
    ],
)
def test_null_is_accepted_everywhere_like_gos_zero_value(config: Any) -> None:
    assert check_plugin(config) == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ([{"podSpec": {}}], "kubernetes plugin: expected an object, got a list"),
        ("podSpec", 'kubernetes plugin: expected an object, got the string "podSpec"'),
        (3, "kubernetes plugin: expected an object, got the number 3"),
    ],
)
def test_the_config_itself_must_be_an_object(config: Any, problem: str) -> None:
    assert check_plugin(config) == [problem]


def test_every_problem_is_reported_not_just_the_first() -> None:
    config = {
        "checkout": {"skip": "yes"},
        "sidecars": [{"name": 1}, {"name": "ok"}, {"image": ["x"]}],
        "commandParams": {"interposer": "zsh"},
    }
    assert check_plugin(config) == [
        'checkout.skip: expected a boolean, got the string "yes"',
        "sidecars[0].name: expected a string, got the number 1",
        "sidecars[2].image: expected a string, got a list",
        'commandParams.interposer: invalid command interposer "zsh"'
        ' (valid: "", "buildkite", "legacy", "vector")',
    ]


UNKNOWN_FIELDS_CONFIG = {
    "podTemplate": "newer-release-field",
    "podSpec": {
        "containers": [{"name": "a"}, {"name": "b", "imagee": "alpine"}],
        "volumes": [{"emptyDir": {"x": 1}}],
    },
    "sidecars": [{"name": "db", "env": [{"name": "A", "valu": "1"}]}],
    "metadata": {"name": "not-here", "labels": {"any-label": "is-fine"}},
    "checkout": {"gitMirrors": {"lockTimeOut": 3}},
    "commandParams": {"extraVolumeMounts": []},
}


def test_unknown_fields_are_ignored_by_the_type_check() -> None:
    assert check_plugin(UNKNOWN_FIELDS_CONFIG) == []


def test_unknown_fields_are_reported_by_path() -> None:
    assert unknown_plugin_fields(UNKNOWN_FIELDS_CONFIG) == [
        "podTemplate",
        "podSpec.containers[1].imagee",
        "podSpec.volumes[0].emptyDir.x",
        "sidecars[0].env[0].valu",
        "metadata.name",
        "checkout.gitMirrors.lockTimeOut",
        "commandParams.extraVolumeMounts",
    ]


def test_unknown_field_search_skips_values_of_the_wrong_type() -> None:
    assert unknown_plugin_fields({"podSpec": "x", "sidecars": {"imagee": 1}, "metadata": None}) == []
    assert unknown_plugin_fields(["not", "an", "object"]) == []


def test_map_keys_are_never_unknown_fields() -> None:
    config = at("sidecars[0].resources.limits", {"nvidia.com/gpu": 1, "cpu": "1"})
    assert unknown_plugin_fields(config) == []


def test_the_realistic_fixture_plugin_is_valid_and_fully_known() -> None:
    config = realistic_plugin()
    assert check_plugin(config) == []
    assert unknown_plugin_fields(config) == []


def test_checking_never_mutates_the_config() -> None:
    config = {**realistic_plugin(), **UNKNOWN_FIELDS_CONFIG, "checkout": {"skip": "no"}}
    before = copy.deepcopy(config)
    check_plugin(config)
    unknown_plugin_fields(config)
    assert config == before


def test_validate_plugin_raises_one_line_error_with_every_problem() -> None:
    config = {"checkout": {"skip": "no"}, "metadata": {"labels": {"a": 1}}}
    with pytest.raises(PluginTypeError) as raised:
        validate_plugin(config)
    assert isinstance(raised.value, ValueError)
    assert raised.value.problems == tuple(check_plugin(config))
    assert str(raised.value) == "; ".join(check_plugin(config))
    assert "\n" not in str(raised.value)


def test_validate_plugin_accepts_a_valid_config() -> None:
    validate_plugin(realistic_plugin())


@pytest.mark.parametrize(
    ("value", "description"),
    [
        (None, "null"),
        (True, "the boolean true"),
        (False, "the boolean false"),
        (0, "the number 0"),
        (1.5, "the number 1.5"),
        ("x", 'the string "x"'),
        ("y" * 100, 'the string "' + "y" * 57 + '..."'),
        ([1], "a list"),
        ({}, "an object"),
    ],
)
def test_values_are_described_for_humans(value: Any, description: str) -> None:
    assert describe_value(value) == description


@pytest.mark.parametrize("path", [path for path, _, _ in INVALID_CASES[:6]])
def test_fields_of_later_releases_are_unknown_to_the_v0_20_decoder(path: str) -> None:
    """With the default profile (v0.20.2) the fields later releases added are not type-checked but
    reported as unknown (the job gets a warning that they are ignored), as v0.20.2 ignored them."""
    config = at(path, 1)
    field = path.split("[", 1)[0]
    assert check_plugin(config) == []
    assert unknown_plugin_fields(config) == [field]
    assert unknown_plugin_fields(config, head=True) == []


def test_patch_directives_in_pod_spec_patch_are_known_fields() -> None:
    """The engine applies a podSpecPatch's strategic merge directives (as ``kubectl patch`` does), so
    they are not "ignored" fields; elsewhere, and for fields a struct lacks, they are unknown."""
    patch = {
        "$setElementOrder/containers": [{"name": "agent"}],
        "containers": [
            {
                "name": "agent",
                "$retainKeys": ["name", "image"],
                "$deleteFromPrimitiveList/args": ["x"],
                "$setElementOrder/imagee": [],
            },
            {"name": "gone", "$patch": "delete"},
        ],
        "securityContext": {"$patch": "replace"},
    }
    assert unknown_plugin_fields({"podSpecPatch": patch, "podSpec": {"$patch": "replace"}}) == [
        'podSpecPatch.containers[0]["$setElementOrder/imagee"]',
        'podSpec["$patch"]',
    ]
