"""Pod Security Standards examples: no route an author has puts a forbidden setting into the pod.

The property for every attack: with the default policies and the example PSS policy (baseline alone,
or baseline plus restricted), the job is **denied**, or it is admitted and the oracle finds **no
violation** of that profile in the final Job. The controls show the guard still admits ordinary jobs:
a guardrail that denies everything is not a working guardrail.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.compiler import PolicySet
from tests.attacks import placement
from tests.attacks.harness import (
    ALLOWED_IMAGE,
    PLUGIN_KEY,
    Job,
    example,
    pod,
    policies,
    require_admitted,
    run,
    step_container,
)
from tests.attacks.oracle import manifest_pss_violations

BASELINE = "40-pod-security-baseline.yaml"
RESTRICTED = "41-pod-security-restricted.yaml"
RESTRICTED_STACK = "42-pod-security-restricted-stack.yaml"
"""The admin's preparation the restricted example requires (without it every job is denied, as its
header says): restricted defaults for the stack's own containers only. Attacks run with it too, so
it must not open a route either."""
LEGACY_BASELINE = "40-pod-security.yaml"
"""Today's single pod-security example, used for the baseline level until the baseline file exists."""

PRIVILEGED = {"securityContext": {"privileged": True}}


def profile(level: str) -> PolicySet:
    files = [example(BASELINE, LEGACY_BASELINE)]
    if level == "restricted":
        files += [example(RESTRICTED), example(RESTRICTED_STACK)]
    return policies(*files)


def assert_denied_or_compliant(level: str, job: Job) -> None:
    decision = run(profile(level), job)
    if decision.admitted:
        found = manifest_pss_violations(decision.manifest, level)
        assert found == [], f"admitted with {level} violations: {found}"


def container_attacks() -> list[Any]:
    """(id, plugin) for every forbidden container setting on every route it can take."""
    cases: list[tuple[str, Any]] = []
    for route_name, route in placement.ROUTES.items():
        cases.append((f"privileged-via-{route_name}", route(PRIVILEGED)))
    sys_admin = {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
    host_port = {"ports": [{"containerPort": 8080, "hostPort": 8080}]}
    for route_name in placement.CORE_ROUTES:
        route = placement.ROUTES[route_name]
        cases.append((f"cap-SYS_ADMIN-via-{route_name}", route(sys_admin)))
        cases.append((f"hostPort-via-{route_name}", route(host_port)))
    spellings = {
        "NET_RAW": "NET_RAW",
        "chown": "lower-case-chown",
        "CAP_CHOWN": "CAP_-prefixed-CHOWN",
        "ALL": "ALL",
        "CAP_SYS_ADMIN": "CAP_-prefixed-SYS_ADMIN",
        "CHOWN\u200b": "CHOWN-zero-width-suffix",
        "SYS_ADMIN ": "SYS_ADMIN-trailing-space",
    }
    for capability, label in spellings.items():
        fields = {"securityContext": {"capabilities": {"add": ["CHOWN", capability]}}}
        cases.append((f"cap-{label}-via-podSpec", placement.in_step(fields)))
    probe = {"livenessProbe": {"httpGet": {"port": 80, "host": "169.254.169.254"}}}
    hook = {"lifecycle": {"preStop": {"tcpSocket": {"port": 22, "host": "localhost"}}}}
    for route_name in ("podSpec", "podSpec-init", "sidecar", "podSpecPatch-agent"):
        cases.append((f"probe-host-via-{route_name}", placement.ROUTES[route_name](probe)))
    cases.append(("lifecycle-host-via-podSpec", placement.in_step(hook)))
    single: list[tuple[str, str, dict[str, Any]]] = [
        ("procMount-Unmasked", "podSpec", {"securityContext": {"procMount": "Unmasked"}}),
        ("procMount-Unmasked", "podSpecPatch-checkout", {"securityContext": {"procMount": "Unmasked"}}),
        ("seccomp-Unconfined", "podSpec", {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
        (
            "seccomp-Unconfined",
            "podSpecPatch-agent",
            {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
        ),
        (
            "apparmor-field-Unconfined",
            "podSpec",
            {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
        ),
        (
            "apparmor-field-Unconfined",
            "sidecar",
            {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
        ),
        ("selinux-type-spc_t", "podSpec", {"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}),
        ("selinux-user", "podSpecPatch-agent", {"securityContext": {"seLinuxOptions": {"user": "system_u"}}}),
        ("hostProcess", "sidecar", {"securityContext": {"windowsOptions": {"hostProcess": True}}}),
        ("privileged-as-string", "podSpec", {"securityContext": {"privileged": "true"}}),
        ("hostPort-negative", "podSpec", {"ports": [{"containerPort": 80, "hostPort": -1}]}),
        ("hostPort-as-string", "sidecar", {"ports": [{"containerPort": 80, "hostPort": "80"}]}),
    ]
    for name, route_name, fields in single:
        cases.append((f"{name}-via-{route_name}", placement.ROUTES[route_name](fields)))
    cases.append(
        (
            "privileged-via-securityContext-$patch-replace",
            placement.patch_security_context_replace(PRIVILEGED),
        )
    )
    return [pytest.param(plugin, id=case_id) for case_id, plugin in cases]


def pod_attacks() -> list[Any]:
    """(id, plugin) for every forbidden pod-level setting through the podSpec and the podSpecPatch."""
    cases: list[tuple[str, Any]] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        cases.append((f"{field}-via-podSpec", {"podSpec": {"containers": [step_container()], field: True}}))
        cases.append((f"{field}-via-podSpecPatch", {"podSpecPatch": {field: True}}))
    host_path = {"name": "node-root", "hostPath": {"path": "/"}}
    cases.append(
        ("hostPath-via-podSpec", {"podSpec": {"containers": [step_container()], "volumes": [host_path]}})
    )
    cases.append(("hostPath-via-podSpecPatch", {"podSpecPatch": {"volumes": [host_path]}}))
    cases.append(("hostPath-via-checkout-gitMirrors", {"checkout": {"gitMirrors": {"volume": host_path}}}))
    unconfined = {"seccompProfile": {"type": "Unconfined"}}
    cases.append(
        (
            "pod-seccomp-Unconfined-via-podSpec",
            {"podSpec": {"containers": [step_container()], "securityContext": unconfined}},
        )
    )
    cases.append(
        ("pod-seccomp-Unconfined-via-podSpecPatch", {"podSpecPatch": {"securityContext": unconfined}})
    )
    cases.append(
        (
            "pod-apparmor-Unconfined-via-podSpecPatch",
            {"podSpecPatch": {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}},
        )
    )
    cases.append(
        (
            "pod-selinux-spc_t-via-podSpec",
            {
                "podSpec": {
                    "containers": [step_container()],
                    "securityContext": {"seLinuxOptions": {"type": "spc_t"}},
                }
            },
        )
    )
    cases.append(
        (
            "sysctl-kernel.msgmax-via-podSpec",
            {
                "podSpec": {
                    "containers": [step_container()],
                    "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
                }
            },
        )
    )
    cases.append(
        (
            "sysctl-slash-form-via-podSpecPatch",
            {
                "podSpecPatch": {
                    "securityContext": {"sysctls": [{"name": "net/ipv4/tcp_syncookies", "value": "1"}]}
                }
            },
        )
    )
    cases.append(
        (
            "pod-hostProcess-via-podSpecPatch",
            {
                "podSpecPatch": {
                    "hostNetwork": True,
                    "securityContext": {"windowsOptions": {"hostProcess": True}},
                }
            },
        )
    )
    apparmor = "container.apparmor.security.beta.kubernetes.io/"
    cases.append(
        (
            "apparmor-annotation-unconfined-via-metadata",
            {"metadata": {"annotations": {apparmor + "container-0": "unconfined"}}},
        )
    )
    cases.append(
        (
            "apparmor-annotation-other-container-via-metadata",
            {"metadata": {"annotations": {apparmor + "ghost": "unconfined"}}},
        )
    )
    return [pytest.param(plugin, id=case_id) for case_id, plugin in cases]


def plugin_encoding_attacks() -> list[Any]:
    """The same privileged podSpec hidden by how BUILDKITE_PLUGINS is written."""
    short_key = [{"kubernetes": placement.in_step(PRIVILEGED)}]
    versioned = [{PLUGIN_KEY + "#v1.0.0": placement.in_step(PRIVILEGED)}]
    return [
        pytest.param(
            Job(plugins=placement.two_plugin_entries(PRIVILEGED)), id="privileged-in-second-plugin-entry"
        ),
        pytest.param(
            Job(plugins_json=placement.duplicate_json_keys(PRIVILEGED)), id="privileged-in-duplicate-json-key"
        ),
        pytest.param(Job(plugins=short_key), id="privileged-under-short-plugin-key"),
        pytest.param(Job(plugins=versioned), id="privileged-under-versioned-plugin-key"),
    ]


LEVELS = ("baseline", "restricted")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("plugin", container_attacks())
def test_container_settings_forbidden_by_baseline(level: str, plugin: Any) -> None:
    assert_denied_or_compliant(level, Job(plugin=plugin))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("plugin", pod_attacks())
def test_pod_settings_forbidden_by_baseline(level: str, plugin: Any) -> None:
    assert_denied_or_compliant(level, Job(plugin=plugin))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("job", plugin_encoding_attacks())
def test_plugin_encodings(level: str, job: Job) -> None:
    assert_denied_or_compliant(level, job)


def restricted_attacks() -> list[Any]:
    """Settings baseline allows and restricted forbids, on the routes that matter for each."""
    ape_true = {"securityContext": {"allowPrivilegeEscalation": True}}
    cases: list[tuple[str, Any]] = [
        ("APE-true-via-podSpec", placement.in_step(ape_true)),
        ("APE-true-via-sidecar", placement.in_sidecar(ape_true)),
        ("APE-true-via-podSpecPatch-new-container", placement.in_patch_new_container(ape_true)),
        ("APE-true-via-podSpec-ephemeral", placement.in_step_ephemeral(ape_true)),
        (
            "APE-null-via-podSpecPatch",
            placement.patching("container-0")({"securityContext": {"allowPrivilegeEscalation": None}}),
        ),
        (
            "cap-add-CHOWN-via-podSpec",
            placement.in_step({"securityContext": {"capabilities": {"add": ["CHOWN"]}}}),
        ),
        (
            "drop-all-lower-case-via-podSpec",
            placement.in_step({"securityContext": {"capabilities": {"drop": ["all"]}}}),
        ),
        ("runAsNonRoot-false-via-podSpec", placement.in_step({"securityContext": {"runAsNonRoot": False}})),
        ("runAsUser-0-via-sidecar", placement.in_sidecar({"securityContext": {"runAsUser": 0}})),
        (
            "runAsUser-0-via-podSpecPatch-init",
            placement.in_patch_new_init({"securityContext": {"runAsUser": 0}}),
        ),
        (
            "seccomp-Unconfined-in-ephemeral",
            placement.in_patch_ephemeral({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
        ),
        (
            "pod-runAsNonRoot-false-via-podSpec",
            {"podSpec": {"containers": [step_container()], "securityContext": {"runAsNonRoot": False}}},
        ),
        ("pod-runAsUser-0-via-podSpecPatch", {"podSpecPatch": {"securityContext": {"runAsUser": 0}}}),
        (
            "volume-nfs-via-podSpec",
            {
                "podSpec": {
                    "containers": [step_container()],
                    "volumes": [{"name": "n", "nfs": {"server": "nfs", "path": "/"}}],
                }
            },
        ),
        (
            "volume-gitRepo-via-podSpecPatch",
            {
                "podSpecPatch": {
                    "volumes": [{"name": "g", "gitRepo": {"repository": "https://example.com/r.git"}}]
                }
            },
        ),
        (
            "volume-nfs-via-checkout-gitMirrors",
            {
                "checkout": {
                    "gitMirrors": {"volume": {"name": "mirrors", "nfs": {"server": "nfs", "path": "/m"}}}
                }
            },
        ),
        (
            "procMount-Unmasked-with-hostUsers-false",
            {
                "podSpec": {
                    "hostUsers": False,
                    "containers": [step_container(securityContext={"procMount": "Unmasked"})],
                }
            },
        ),
        (
            "deleteFromPrimitiveList-drop-ALL",
            {
                "podSpec": {
                    "containers": [step_container(securityContext={"capabilities": {"drop": ["ALL"]}})]
                },
                "podSpecPatch": {
                    "containers": [
                        {
                            "name": "app",
                            "securityContext": {"capabilities": {"$deleteFromPrimitiveList/drop": ["ALL"]}},
                        }
                    ]
                },
            },
        ),
        (
            "securityContext-$patch-delete",
            {
                "podSpec": {
                    "containers": [step_container(securityContext={"allowPrivilegeEscalation": False})]
                },
                "podSpecPatch": {"containers": [{"name": "app", "securityContext": {"$patch": "delete"}}]},
            },
        ),
        (
            "securityContext-null-via-podSpecPatch",
            {
                "podSpec": {
                    "containers": [step_container(securityContext={"allowPrivilegeEscalation": False})]
                },
                "podSpecPatch": {"containers": [{"name": "app", "securityContext": None}]},
            },
        ),
        (
            "pod-seccomp-Unconfined-containers-RuntimeDefault",
            {
                "podSpec": {
                    "securityContext": {"seccompProfile": {"type": "Unconfined"}},
                    "containers": [
                        step_container(securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
                    ],
                }
            },
        ),
    ]
    return [pytest.param(plugin, id=case_id) for case_id, plugin in cases]


@pytest.mark.parametrize("plugin", restricted_attacks())
def test_settings_forbidden_only_by_restricted(plugin: Any) -> None:
    assert_denied_or_compliant("restricted", Job(plugin=plugin))


# --- controls: ordinary jobs still run -------------------------------------------------------------

RESTRICTED_CONTAINER = {
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    "job",
    [
        pytest.param(Job(), id="hello-world"),
        pytest.param(
            Job(plugin={"podSpec": {"containers": [step_container(**RESTRICTED_CONTAINER)]}}),
            id="compliant-podSpec",
        ),
        pytest.param(
            Job(
                plugin={
                    "podSpec": {"containers": [step_container(**RESTRICTED_CONTAINER)]},
                    "podSpecPatch": {"nodeSelector": {"pool": "ci"}},
                }
            ),
            id="compliant-podSpec-with-patch",
        ),
        pytest.param(
            Job(plugin={"sidecars": [{"name": "db", "image": ALLOWED_IMAGE, **RESTRICTED_CONTAINER}]}),
            id="compliant-sidecar",
        ),
    ],
)
def test_ordinary_jobs_are_admitted_and_compliant(level: str, job: Job) -> None:
    decision = run(profile(level), job)
    require_admitted(decision)
    actual = manifest_pss_violations(decision.manifest, level)
    assert actual == []


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            {"securityContext": {"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}}},
            id="default-capabilities",
        ),
        pytest.param({"ports": [{"containerPort": 8080, "hostPort": 0}]}, id="hostPort-0"),
        pytest.param({"securityContext": {"seLinuxOptions": {"level": "s0:c1,c2"}}}, id="selinux-level"),
    ],
)
def test_baseline_admits_what_baseline_allows(fields: dict[str, Any]) -> None:
    decision = run(profile("baseline"), Job(plugin=placement.in_step(fields)))
    require_admitted(decision)
    actual = manifest_pss_violations(decision.manifest, "baseline")
    assert actual == []
    actual = pod(decision)["containers"][0]["image"]
    assert actual == ALLOWED_IMAGE
