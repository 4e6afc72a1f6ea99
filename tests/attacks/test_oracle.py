"""The oracle must be right before it can judge the guards: the PSS reference's §8 test inputs, both
verdicts each, and hand-made manifests for every other question the catalogue asks it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.attacks.oracle import (
    PolicyVersion,
    QuantityError,
    SecretReference,
    effective_env,
    effective_requests,
    images,
    images_outside,
    integers_outside_int64,
    manifest_pss_violations,
    protected_env_differences,
    pss_baseline_violations,
    pss_restricted_violations,
    quantity,
    references_to,
    resources_above,
    secret_references,
    service_account,
)

Spec = dict[str, Any]
Annotations = dict[str, Any]
Mutation = Callable[[Spec, Annotations], None]

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def base_b() -> Spec:
    """B: one container ``app``, one init container ``init``, no securityContext anywhere."""
    return {
        "containers": [{"name": "app", "image": "registry.example.com/app:1"}],
        "initContainers": [{"name": "init", "image": "registry.example.com/init:1"}],
    }


def base_r() -> Spec:
    """R: B made restricted-compliant in the smallest way (reference §8)."""
    spec = base_b()
    spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in (*spec["containers"], *spec["initContainers"]):
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return spec


def app(spec: Spec) -> dict[str, Any]:
    container: dict[str, Any] = spec["containers"][0]
    return container


def init(spec: Spec) -> dict[str, Any]:
    container: dict[str, Any] = spec["initContainers"][0]
    return container


def ctx(container: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = container.setdefault("securityContext", {})
    return context


def pod(spec: Spec) -> dict[str, Any]:
    context: dict[str, Any] = spec.setdefault("securityContext", {})
    return context


def nothing(spec: Spec, annotations: Annotations) -> None:
    """No change to the base."""


def on_app(**fields: Any) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        ctx(app(spec)).update(copy.deepcopy(fields))

    return mutate


def on_init(**fields: Any) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        ctx(init(spec)).update(copy.deepcopy(fields))

    return mutate


def on_pod(**fields: Any) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        pod(spec).update(copy.deepcopy(fields))

    return mutate


def on_spec(**fields: Any) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        spec.update(copy.deepcopy(fields))

    return mutate


def on_app_container(**fields: Any) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        app(spec).update(copy.deepcopy(fields))

    return mutate


def on_init_container(**fields: Any) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        init(spec).update(copy.deepcopy(fields))

    return mutate


def annotate(key: str, value: str) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        annotations[key] = value

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        for mutation in mutations:
            mutation(spec, annotations)

    return mutate


def drop_pod_key(key: str) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        pod(spec).pop(key, None)

    return mutate


def drop_container_key(which: Callable[[Spec], dict[str, Any]], key: str) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        ctx(which(spec)).pop(key, None)

    return mutate


def remove_init_context(spec: Spec, annotations: Annotations) -> None:
    init(spec).pop("securityContext", None)


def set_app_drop(values: list[str]) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        ctx(app(spec)).setdefault("capabilities", {})["drop"] = list(values)

    return mutate


def add_app_capability(name: str) -> Mutation:
    def mutate(spec: Spec, annotations: Annotations) -> None:
        ctx(app(spec)).setdefault("capabilities", {})["add"] = [name]

    return mutate


def volumes(*items: dict[str, Any]) -> Mutation:
    return on_spec(volumes=list(items))


def sysctl(name: str, value: str = "1") -> Mutation:
    return on_pod(sysctls=[{"name": name, "value": value}])


def sidecar_init_without_context(spec: Spec, annotations: Annotations) -> None:
    spec["initContainers"].append(
        {"name": "side", "image": "registry.example.com/side:1", "restartPolicy": "Always"}
    )


def windows_pod(spec: Spec, annotations: Annotations) -> None:
    spec["os"] = {"name": "windows"}
    pod(spec)["runAsNonRoot"] = True


def user_namespaced_root(spec: Spec, annotations: Annotations) -> None:
    spec["hostUsers"] = False
    pod(spec).pop("runAsNonRoot", None)
    ctx(app(spec))["runAsUser"] = 0


def ephemeral_privileged(spec: Spec, annotations: Annotations) -> None:
    spec["ephemeralContainers"] = [
        {"name": "dbg", "image": "registry.example.com/dbg:1", "securityContext": {"privileged": True}}
    ]


def app_context_null(spec: Spec, annotations: Annotations) -> None:
    app(spec)["securityContext"] = None


EVERY_CAPABILITY = [
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "CHOWN",
    "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYSLOG",
    "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE",
    "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "WAKE_ALARM",
]  # fmt: skip

A, F = True, False  # allowed, forbidden
APPARMOR = "container.apparmor.security.beta.kubernetes.io/"

# (row, mutation, baseline verdict, restricted verdict, policy version, bases)
# bases: "split" = B for the baseline verdict and R for the restricted one (the reference's rule);
# "B" / "R" = that base for both.
ROWS: list[tuple[str, Mutation, bool, bool, PolicyVersion, str]] = [
    ("01-base-B", nothing, A, F, (1, 35), "B"),
    ("02-base-R", nothing, A, A, (1, 35), "R"),
    ("03-hostNetwork", on_spec(hostNetwork=True), F, F, (1, 35), "split"),
    ("04-hostPID-false", on_spec(hostPID=False), A, A, (1, 35), "split"),
    ("05-hostIPC-null", on_spec(hostIPC=None), A, A, (1, 35), "split"),
    ("06-app-privileged", on_app(privileged=True), F, F, (1, 35), "split"),
    ("07-init-privileged", on_init(privileged=True), F, F, (1, 35), "split"),
    ("08-privileged-null", on_app(privileged=None), A, A, (1, 35), "split"),
    ("09-add-NET_RAW", add_app_capability("NET_RAW"), F, F, (1, 35), "split"),
    ("10-add-CHOWN", add_app_capability("CHOWN"), A, F, (1, 35), "split"),
    ("11-add-chown", add_app_capability("chown"), F, F, (1, 35), "split"),
    ("12-add-CAP_CHOWN", add_app_capability("CAP_CHOWN"), F, F, (1, 35), "split"),
    ("13-add-NET_BIND_SERVICE", add_app_capability("NET_BIND_SERVICE"), A, A, (1, 35), "split"),
    ("14-add-CAP_NET_BIND_SERVICE", add_app_capability("CAP_NET_BIND_SERVICE"), F, F, (1, 35), "split"),
    ("15-add-ALL", add_app_capability("ALL"), F, F, (1, 35), "split"),
    ("16-drop-all-lower", set_app_drop(["all"]), A, F, (1, 35), "split"),
    ("17-drop-each-by-name", set_app_drop(EVERY_CAPABILITY), A, F, (1, 35), "split"),
    ("18-capabilities-empty", on_app(capabilities={}), A, F, (1, 35), "split"),
    ("19-init-no-context", remove_init_context, A, F, (1, 35), "split"),
    ("20-hostPath", volumes({"name": "v", "hostPath": {"path": "/tmp"}}), F, F, (1, 35), "split"),
    ("21-nfs", volumes({"name": "v", "nfs": {"server": "s", "path": "/"}}), A, F, (1, 35), "split"),
    ("22-gitRepo", volumes({"name": "v", "gitRepo": {"repository": "r"}}), A, F, (1, 35), "split"),
    ("23-image-volume", volumes({"name": "v", "image": {"reference": "reg/x:1"}}), A, A, (1, 35), "split"),
    ("24-volume-without-source", volumes({"name": "v"}), A, A, (1, 35), "split"),
    (
        "25-csi-ephemeral-projected",
        volumes(
            {"name": "a", "csi": {"driver": "d"}},
            {"name": "b", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "c", "projected": {"sources": []}},
        ),
        A,
        A,
        (1, 35),
        "split",
    ),
    ("26-containerPort", on_app_container(ports=[{"containerPort": 8080}]), A, A, (1, 35), "split"),
    (
        "27-hostPort-0",
        on_app_container(ports=[{"containerPort": 8080, "hostPort": 0}]),
        A,
        A,
        (1, 35),
        "split",
    ),
    (
        "28-init-hostPort",
        on_init_container(ports=[{"containerPort": 8080, "hostPort": 8080}]),
        F,
        F,
        (1, 35),
        "split",
    ),
    (
        "29-probe-host-empty",
        on_app_container(livenessProbe={"httpGet": {"port": 80, "host": ""}}),
        A,
        A,
        (1, 35),
        "split",
    ),
    (
        "30-probe-host-v1.34",
        on_app_container(readinessProbe={"tcpSocket": {"port": 80, "host": "10.0.0.1"}}),
        F,
        F,
        (1, 34),
        "split",
    ),
    (
        "31-probe-host-v1.33",
        on_app_container(readinessProbe={"tcpSocket": {"port": 80, "host": "10.0.0.1"}}),
        A,
        A,
        (1, 33),
        "split",
    ),
    (
        "32-prestop-host",
        on_app_container(lifecycle={"preStop": {"httpGet": {"port": 80, "host": "localhost"}}}),
        F,
        F,
        (1, 35),
        "split",
    ),
    ("33-apparmor-runtime-default", annotate(APPARMOR + "app", "runtime/default"), A, A, (1, 35), "split"),
    ("34-apparmor-localhost", annotate(APPARMOR + "app", "localhost/my-profile"), A, A, (1, 35), "split"),
    ("35-apparmor-unconfined", annotate(APPARMOR + "app", "unconfined"), F, F, (1, 35), "split"),
    ("36-apparmor-field-spelling", annotate(APPARMOR + "app", "RuntimeDefault"), F, F, (1, 35), "split"),
    ("37-apparmor-empty", annotate(APPARMOR + "app", ""), A, A, (1, 35), "split"),
    (
        "38-apparmor-no-such-container",
        annotate(APPARMOR + "nosuchcontainer", "unconfined"),
        F,
        F,
        (1, 35),
        "split",
    ),
    (
        "40-apparmor-pod-unconfined",
        both(
            on_pod(appArmorProfile={"type": "Unconfined"}),
            on_app(appArmorProfile={"type": "RuntimeDefault"}),
            on_init(appArmorProfile={"type": "RuntimeDefault"}),
        ),
        F,
        F,
        (1, 35),
        "split",
    ),
    (
        "41-apparmor-localhost-field",
        on_app(appArmorProfile={"type": "Localhost", "localhostProfile": "p"}),
        A,
        A,
        (1, 35),
        "split",
    ),
    ("42-selinux-container_t", on_app(seLinuxOptions={"type": "container_t"}), A, A, (1, 35), "split"),
    (
        "43-container_engine_t-v1.31",
        on_app(seLinuxOptions={"type": "container_engine_t"}),
        A,
        A,
        (1, 31),
        "split",
    ),
    (
        "43-container_engine_t-v1.30",
        on_app(seLinuxOptions={"type": "container_engine_t"}),
        F,
        F,
        (1, 30),
        "split",
    ),
    ("44-selinux-pod-spc_t", on_pod(seLinuxOptions={"type": "spc_t"}), F, F, (1, 35), "split"),
    ("45-selinux-user", on_app(seLinuxOptions={"user": "system_u"}), F, F, (1, 35), "split"),
    (
        "46-selinux-level",
        on_app(seLinuxOptions={"role": "", "level": "s0:c123,c456"}),
        A,
        A,
        (1, 35),
        "split",
    ),
    ("47-procMount-Default", on_app(procMount="Default"), A, A, (1, 35), "split"),
    (
        "48-procMount-Unmasked-hostUsers-false",
        both(on_app(procMount="Unmasked"), on_spec(hostUsers=False)),
        A,
        F,
        (1, 35),
        "split",
    ),
    ("49-procMount-Unmasked", on_app(procMount="Unmasked"), F, F, (1, 35), "split"),
    ("50-seccomp-pod-Unconfined", on_pod(seccompProfile={"type": "Unconfined"}), F, F, (1, 35), "split"),
    ("51-no-seccomp-anywhere", drop_pod_key("seccompProfile"), A, F, (1, 35), "split"),
    (
        "52-seccomp-per-container",
        both(
            drop_pod_key("seccompProfile"),
            on_app(seccompProfile={"type": "RuntimeDefault"}),
            on_init(seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}),
        ),
        A,
        A,
        (1, 35),
        "split",
    ),
    (
        "53-seccomp-init-unset",
        both(drop_pod_key("seccompProfile"), on_app(seccompProfile={"type": "RuntimeDefault"})),
        A,
        F,
        (1, 35),
        "split",
    ),
    (
        "54-seccomp-init-Unconfined",
        both(
            on_pod(seccompProfile={"type": "RuntimeDefault"}), on_init(seccompProfile={"type": "Unconfined"})
        ),
        F,
        F,
        (1, 35),
        "split",
    ),
    (
        "55-seccomp-pod-Unconfined-containers-good",
        both(
            on_pod(seccompProfile={"type": "Unconfined"}),
            on_app(seccompProfile={"type": "RuntimeDefault"}),
            on_init(seccompProfile={"type": "RuntimeDefault"}),
        ),
        F,
        F,
        (1, 35),
        "split",
    ),
    ("56-sysctl-syncookies", sysctl("net.ipv4.tcp_syncookies"), A, A, (1, 35), "split"),
    (
        "57-sysctl-reserved-ports-v1.27",
        sysctl("net.ipv4.ip_local_reserved_ports", "5000-5100"),
        A,
        A,
        (1, 27),
        "split",
    ),
    (
        "57-sysctl-reserved-ports-v1.26",
        sysctl("net.ipv4.ip_local_reserved_ports", "5000-5100"),
        F,
        F,
        (1, 26),
        "split",
    ),
    ("58-sysctl-tcp_rmem-v1.32", sysctl("net.ipv4.tcp_rmem", "4096 87380 16777216"), A, A, (1, 32), "split"),
    ("58-sysctl-tcp_rmem-v1.31", sysctl("net.ipv4.tcp_rmem", "4096 87380 16777216"), F, F, (1, 31), "split"),
    ("59-sysctl-msgmax", sysctl("kernel.msgmax"), F, F, (1, 35), "split"),
    ("60-sysctl-slash-form", sysctl("net/ipv4/tcp_syncookies"), F, F, (1, 35), "split"),
    (
        "61-pod-hostProcess",
        both(on_pod(windowsOptions={"hostProcess": True}), on_spec(hostNetwork=True)),
        F,
        F,
        (1, 35),
        "split",
    ),
    ("62-app-hostProcess-false", on_app(windowsOptions={"hostProcess": False}), A, A, (1, 35), "split"),
    ("63-init-APE-removed", drop_container_key(init, "allowPrivilegeEscalation"), A, F, (1, 35), "split"),
    ("64-APE-null", on_app(allowPrivilegeEscalation=None), A, F, (1, 35), "split"),
    ("65-APE-true", on_app(allowPrivilegeEscalation=True), A, F, (1, 35), "split"),
    ("66-sidecar-init-no-context", sidecar_init_without_context, A, F, (1, 35), "split"),
    ("67-windows-v1.25", windows_pod, A, A, (1, 25), "B"),
    ("67-windows-v1.24", windows_pod, A, F, (1, 24), "B"),
    ("68-runAsNonRoot-pod-only", nothing, A, A, (1, 35), "R"),
    (
        "69-runAsNonRoot-containers-only",
        both(drop_pod_key("runAsNonRoot"), on_app(runAsNonRoot=True), on_init(runAsNonRoot=True)),
        A,
        A,
        (1, 35),
        "split",
    ),
    (
        "70-runAsNonRoot-init-unset",
        both(drop_pod_key("runAsNonRoot"), on_app(runAsNonRoot=True)),
        A,
        F,
        (1, 35),
        "split",
    ),
    (
        "71-runAsNonRoot-pod-false",
        both(on_pod(runAsNonRoot=False), on_app(runAsNonRoot=True), on_init(runAsNonRoot=True)),
        A,
        F,
        (1, 35),
        "split",
    ),
    (
        "72-runAsNonRoot-app-false",
        both(on_pod(runAsNonRoot=True), on_app(runAsNonRoot=False)),
        A,
        F,
        (1, 35),
        "split",
    ),
    (
        "73-runAsUser-pod-0",
        both(on_pod(runAsUser=0), on_app(runAsUser=1000), on_init(runAsUser=1000)),
        A,
        F,
        (1, 35),
        "split",
    ),
    ("74-runAsUser-1000", on_app(runAsUser=1000), A, A, (1, 35), "split"),
    ("75-runAsUser-0-v1.22", on_app(runAsUser=0), A, A, (1, 22), "split"),
    ("76-user-namespaced-root-v1.35", user_namespaced_root, A, A, (1, 35), "split"),
    ("76-user-namespaced-root-v1.34", user_namespaced_root, A, F, (1, 34), "split"),
    ("77-root-groups", on_pod(runAsGroup=0, fsGroup=0, supplementalGroups=[0]), A, A, (1, 35), "split"),
    ("78-readOnlyRootFilesystem-false", on_app(readOnlyRootFilesystem=False), A, A, (1, 35), "split"),
    ("79-ephemeral-privileged", ephemeral_privileged, F, F, (1, 35), "split"),
    ("80-app-context-null", app_context_null, A, F, (1, 35), "split"),
]


def manifest(
    spec: Spec, annotations: Annotations, job_annotations: Annotations | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "annotations": job_annotations or {}},
        "spec": {"template": {"metadata": {"annotations": annotations}, "spec": spec}},
    }


def verdict(base: Spec, mutation: Mutation, level: str, version: PolicyVersion) -> list[str]:
    spec, annotations = copy.deepcopy(base), dict[str, Any]()
    mutation(spec, annotations)
    return manifest_pss_violations(manifest(spec, annotations), level, version=version)


@pytest.mark.parametrize(
    ("mutation", "baseline", "restricted", "version", "bases"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_reference_section_8(
    mutation: Mutation, baseline: bool, restricted: bool, version: PolicyVersion, bases: str
) -> None:
    baseline_base = base_r() if bases == "R" else base_b()
    restricted_base = base_b() if bases == "B" else base_r()
    baseline_found = verdict(baseline_base, mutation, "baseline", version)
    restricted_found = verdict(restricted_base, mutation, "restricted", version)
    assert (not baseline_found) is baseline, baseline_found
    assert (not restricted_found) is restricted, restricted_found


def test_row_39_job_level_annotations_are_not_evaluated() -> None:
    spec = base_r()
    job_manifest = manifest(spec, {}, {APPARMOR + "app": "unconfined"})
    assert manifest_pss_violations(job_manifest, "baseline") == []
    assert manifest_pss_violations(job_manifest, "restricted") == []


@pytest.mark.parametrize(
    ("mutation", "baseline_allowed"),
    [
        pytest.param(add_app_capability("CHOWN\u200b"), False, id="capability-zero-width-suffix"),
        pytest.param(add_app_capability("CHOWN "), False, id="capability-trailing-space"),
        pytest.param(add_app_capability("Chown"), False, id="capability-mixed-case"),
        pytest.param(on_app(privileged="true"), False, id="privileged-as-string"),
        pytest.param(on_app(privileged=1), False, id="privileged-as-number"),
        pytest.param(on_spec(hostNetwork="false"), False, id="hostNetwork-as-string"),
        pytest.param(on_app(capabilities={"add": "SYS_ADMIN"}), False, id="capabilities-add-not-a-list"),
        pytest.param(
            on_app_container(ports=[{"containerPort": 80, "hostPort": 0.0}]), False, id="hostPort-float"
        ),
        pytest.param(
            on_app_container(ports=[{"containerPort": 80, "hostPort": None}]), True, id="hostPort-null"
        ),
        pytest.param(on_app(seccompProfile={}), False, id="seccomp-without-type"),
        pytest.param(on_app(appArmorProfile={}), False, id="apparmor-without-type"),
        pytest.param(on_app(seLinuxOptions={}), True, id="selinux-empty"),
        pytest.param(on_app(seLinuxOptions={"type": ""}), True, id="selinux-type-empty"),
        pytest.param(sysctl("net.ipv4.tcp_syncookies "), False, id="sysctl-trailing-space"),
        pytest.param(volumes({"name": "v", "hostPath": None}), True, id="hostPath-null"),
    ],
)
def test_subtle_baseline_cases(mutation: Mutation, baseline_allowed: bool) -> None:
    spec, annotations = base_b(), dict[str, Any]()
    mutation(spec, annotations)
    found = pss_baseline_violations(spec, annotations)
    assert (not found) is baseline_allowed, found


def test_ephemeral_container_host_port_is_checked() -> None:
    spec = base_b()
    spec["ephemeralContainers"] = [
        {"name": "dbg", "image": "x", "ports": [{"containerPort": 1, "hostPort": 2}]}
    ]
    assert any("ephemeralContainers[0]" in v for v in pss_baseline_violations(spec))


def test_restricted_ephemeral_container_needs_its_own_settings() -> None:
    spec = base_r()
    spec["ephemeralContainers"] = [{"name": "dbg", "image": "x"}]
    found = pss_restricted_violations(spec)
    assert any("ephemeralContainers[0]" in v and "allowPrivilegeEscalation" in v for v in found)
    assert any("ephemeralContainers[0]" in v and "ALL" in v for v in found)


def test_restricted_allows_settings_made_per_container_only() -> None:
    spec = base_b()
    for container in (*spec["containers"], *spec["initContainers"]):
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    assert pss_restricted_violations(spec) == []


def test_restricted_lists_every_failing_control() -> None:
    spec = base_b()
    ctx(app(spec))["privileged"] = True
    spec["hostPID"] = True
    controls = {v.split(":", 1)[0] for v in pss_restricted_violations(spec)}
    assert {"privileged", "hostNamespaces", "allowPrivilegeEscalation", "capabilities"} <= controls
    assert {"runAsNonRoot", "seccompProfile"} <= controls


def test_the_stacks_own_hello_world_pod_is_baseline_but_not_restricted() -> None:
    expected = yaml.safe_load((GOLDEN / "01-worked-example" / "expected.yaml").read_text())
    assert manifest_pss_violations(expected, "baseline") == []
    assert manifest_pss_violations(expected, "restricted") != []


def test_versions_below_seccomp_fields_are_refused() -> None:
    with pytest.raises(ValueError, match=r"v1\.19"):
        pss_baseline_violations(base_b(), version=(1, 18))


# --- images ----------------------------------------------------------------------------------------


def test_images_cover_every_container_kind_and_image_volumes() -> None:
    spec = {
        "initContainers": [{"name": "i", "image": "a/init"}],
        "containers": [{"name": "c", "image": "a/main"}, {"name": "no-image"}],
        "ephemeralContainers": [{"name": "e", "image": "a/debug"}],
        "volumes": [{"name": "v", "image": {"reference": "a/volume"}}, {"name": "w", "emptyDir": {}}],
    }
    assert [image for _, image in images(spec)] == ["a/init", "a/main", "", "a/debug", "a/volume"]
    assert images_outside(spec, ("a/",)) == ["containers[1] (no-image): ''"]
    assert images_outside({"containers": [{"name": "c", "image": "a/x"}]}, ("a/",)) == []


# --- env -------------------------------------------------------------------------------------------


def test_effective_env_later_entries_win_and_env_beats_env_from() -> None:
    container = {
        "envFrom": [{"prefix": "X_", "secretRef": {"name": "s"}}],
        "env": [
            {"name": "A", "value": "first"},
            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "A", "value": "second"},
            {"name": "C"},
            {"name": "D", "value": None},
            {"name": "X_KEY", "value": "explicit"},
        ],
    }
    assert effective_env(container) == {
        "A": {"value": "second"},
        "B": {"valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        "C": {"value": ""},
        "D": {"value": ""},
        "X_KEY": {"value": "explicit"},
    }


def test_effective_env_a_later_value_from_replaces_a_value() -> None:
    container = {
        "env": [
            {"name": "T", "value": "plain"},
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
    }
    assert effective_env(container) == {"T": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}}
    assert effective_env({}) == {}


def test_effective_env_keeps_an_entry_with_both_value_and_value_from() -> None:
    source = {"secretKeyRef": {"name": "s", "key": "k"}}
    both_set = {"env": [{"name": "T", "value": "x", "valueFrom": source}]}
    assert effective_env(both_set) == {"T": {"value": "x", "valueFrom": source}}
    empty_value = {"env": [{"name": "T", "value": "", "valueFrom": source}]}
    assert effective_env(empty_value) == {"T": {"valueFrom": source}}


# --- secrets ---------------------------------------------------------------------------------------


def test_secret_references_find_every_kind_of_reference() -> None:
    spec = {
        "imagePullSecrets": [{"name": "pull"}],
        "initContainers": [
            {"name": "i", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k1"}}}]}
        ],
        "containers": [
            {"name": "c", "envFrom": [{"secretRef": {"name": "s2"}}, {"configMapRef": {"name": "cm"}}]}
        ],
        "ephemeralContainers": [{"name": "e", "envFrom": [{"prefix": "P_", "secretRef": {"name": "s3"}}]}],
        "volumes": [
            {"name": "v1", "secret": {"secretName": "s4", "items": [{"key": "a", "path": "a"}]}},
            {
                "name": "v2",
                "projected": {"sources": [{"configMap": {"name": "cm"}}, {"secret": {"name": "s5"}}]},
            },
            {"name": "v3", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s6"}}},
            {"name": "v4", "cephfs": {"monitors": ["m"], "secretRef": {"name": "s7"}}},
            {"name": "v5", "azureFile": {"secretName": "s8", "shareName": "x"}},
            {"name": "v6", "configMap": {"name": "cm"}},
        ],
    }
    found = secret_references(spec)
    assert {(r.name, r.keys) for r in found} == {
        ("s1", frozenset({"k1"})),
        ("s2", None),
        ("s3", None),
        ("s4", frozenset({"a"})),
        ("s5", None),
        ("s6", None),
        ("s7", None),
        ("s8", None),
        ("pull", None),
    }
    assert references_to(spec, "s4") == [SecretReference("s4", frozenset({"a"}), "volumes[0]")]
    assert references_to(spec, "cm") == []
    assert secret_references({"containers": [{"name": "c", "image": "x"}]}) == []


def test_service_account_honours_the_deprecated_alias() -> None:
    assert service_account({}) == "default"
    assert service_account({"serviceAccount": "ctl"}) == "ctl"
    assert service_account({"serviceAccountName": "ci", "serviceAccount": "ctl"}) == "ci"
    assert service_account({"serviceAccountName": "", "serviceAccount": "ctl"}) == "ctl"


# --- resources -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8Gi", Fraction(8 * 2**30)),
        ("500m", Fraction(1, 2)),
        ("16", Fraction(16)),
        ("16.5", Fraction(33, 2)),
        ("1e3", Fraction(1000)),
        ("1.6E1", Fraction(16)),
        ("9G", Fraction(9 * 10**9)),
        ("0.016k", Fraction(16)),
        (".5Ki", Fraction(512)),
        ("+1", Fraction(1)),
        ("-1", Fraction(-1)),
        (17, Fraction(17)),
        (16.5, Fraction(33, 2)),
    ],
)
def test_quantities(text: Any, value: Fraction) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "8 Gi", "8gi", "", "1e", True, None, [1], float("inf")])
def test_not_quantities(text: Any) -> None:
    with pytest.raises(QuantityError):
        quantity(text)


def test_limits_without_requests_count_as_requests() -> None:
    container = {"resources": {"limits": {"memory": "32Gi", "cpu": "2"}, "requests": {"cpu": "1"}}}
    assert effective_requests(container) == {"memory": Fraction(32 * 2**30), "cpu": Fraction(1)}
    assert effective_requests({}) == {}


def test_resources_above_checks_every_kind_and_inverted_limits() -> None:
    spec = {
        "initContainers": [{"name": "i", "resources": {"limits": {"memory": "16Gi"}}}],
        "containers": [
            {"name": "ok", "resources": {"requests": {"memory": "1Gi"}}},
            {"name": "inverted", "resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}},
            {"name": "bad", "resources": {"requests": {"memory": "much"}}},
        ],
    }
    found = resources_above(spec, "memory", Fraction(8 * 2**30))
    assert len(found) == 3
    assert found[0].startswith("initContainers[0] (i): memory")
    assert "requests above limits" in found[1]
    assert "not a quantity" in found[2]
    assert resources_above({"containers": [{"name": "ok"}]}, "memory", Fraction(1)) == []


# --- protected env and integers --------------------------------------------------------------------


def _pod_with(agent_env: list[dict[str, Any]], *extra: dict[str, Any]) -> Spec:
    return {"containers": [{"name": "agent", "env": agent_env}, *extra]}


def test_protected_env_differences_compare_with_the_baseline() -> None:
    stack = [{"name": "TOKEN", "value": "t"}, {"name": "DERIVED", "value": "d"}]
    baseline = _pod_with(stack)
    always, derived = frozenset({"TOKEN", "UNSET_ALWAYS"}), frozenset({"DERIVED", "UNSET_DERIVED"})

    def differences(attacked: Spec) -> list[str]:
        return protected_env_differences(baseline, attacked, ("agent",), always, derived)

    assert differences(_pod_with([*stack, {"name": "OTHER", "value": "x"}])) == []
    assert differences(_pod_with([*stack, {"name": "UNSET_ALWAYS", "value": "x"}])) == []
    assert differences(_pod_with([*stack, {"name": "TOKEN", "value": "evil"}])) == [
        "agent: TOKEN is {'value': 'evil'}, the stack set {'value': 't'}"
    ]
    assert len(differences(_pod_with([*stack, {"name": "UNSET_DERIVED", "value": "x"}]))) == 1
    assert len(differences(_pod_with(stack[:1]))) == 1
    assert differences(_pod_with(stack, {"name": "agent"})) == ["2 containers are named 'agent'"]
    assert differences({"containers": []}) == ["0 containers are named 'agent'"]


def test_integers_outside_int64() -> None:
    document = {"a": [1, 2**63 - 1, -(2**63)], "b": {"c": 2**63, "d": -(2**63) - 1}, "e": True, "f": 1e308}
    assert integers_outside_int64(document) == ["b.c", "b.d"]
    assert integers_outside_int64([float("inf")]) == ["[0]"]
