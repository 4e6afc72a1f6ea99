"""The Pod Security Standards pair against the reference's test inputs (pod-security-standards.md §8).

Each case changes one of two bases: **B**, a Job template with one container ``app`` and one init
container ``init`` and no securityContext anywhere, and **R**, B made restricted-compliant in the
smallest way. The change is applied to B for the baseline verdict and to R for the restricted verdict
(unless a case says otherwise). Verdicts are PSA's at the current policy version (1.35); cases pinned
to another version set ``vars.pssMinorVersion``. The template reaches the policies exactly as given
(a skeleton build policy copies it from the test's config), so no default policy interferes.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.core.compiler import PolicySet
from engine.core.evaluate import evaluate
from engine.model.decision import Decision
from engine.model.job import parse_job
from engine.policy.loader import compile_source

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"
SKELETON = """
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: template-from-config}
spec:
  phase: build
  rules:
  - name: job
    patch:
      apiVersion: batch/v1
      kind: Job
      metadata: {name: pss, annotations: '${{ lookup(config, "jobAnnotations", {}) }}'}
      spec: {template: '${{ config.template }}'}
"""
JOB = parse_job({"uuid": "0193c000-0000-4000-8000-000000000001", "agentQueryRules": ["queue=k"]})
Template = dict[str, Any]
Change = Callable[[Template], None]


@functools.cache
def policy_set(profile: str, minor: int) -> PolicySet:
    files = ["40-pod-security-baseline.yaml"] + (
        ["41-pod-security-restricted.yaml"] if profile == "restricted" else []
    )
    documents = [SKELETON]
    for name in files:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        documents.append(text.replace("    value: 35\n", f"    value: {minor}\n", 1))
    return PolicySet.build(compile_source("\n---\n".join(documents), "pss.yaml"))


def base_b() -> Template:
    return {
        "spec": {
            "containers": [{"name": "app", "image": "app:1"}],
            "initContainers": [{"name": "init", "image": "init:1"}],
        }
    }


def base_r() -> Template:
    template = base_b()
    spec = template["spec"]
    spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in (*spec["containers"], *spec["initContainers"]):
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return template


def decide(
    template: Template, profile: str, minor: int, job_annotations: dict[str, str] | None = None
) -> Decision:
    config = {"template": template, "jobAnnotations": job_annotations or {}}
    return evaluate(policy_set(profile, minor), JOB, config)


# --- changes, as the table writes them (paths relative to spec.template) ---------------------------


def spec(template: Template) -> dict[str, Any]:
    result: dict[str, Any] = template["spec"]
    return result


def app(template: Template) -> dict[str, Any]:
    result: dict[str, Any] = spec(template)["containers"][0]
    return result


def init(template: Template) -> dict[str, Any]:
    result: dict[str, Any] = spec(template)["initContainers"][0]
    return result


def sc(container: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = container.setdefault("securityContext", {})
    return result


def pod_sc(template: Template) -> dict[str, Any]:
    result: dict[str, Any] = spec(template).setdefault("securityContext", {})
    return result


def annotate(key: str, value: str) -> Change:
    def change(template: Template) -> None:
        template.setdefault("metadata", {}).setdefault("annotations", {})[key] = value

    return change


def set_pod(**fields: Any) -> Change:
    return lambda t: spec(t).update(fields)


def set_app_sc(**fields: Any) -> Change:
    return lambda t: sc(app(t)).update(fields)


def set_pod_sc(**fields: Any) -> Change:
    return lambda t: pod_sc(t).update(fields)


def caps(**fields: Any) -> Change:
    return lambda t: sc(app(t)).setdefault("capabilities", {}).update(fields)


def volume(**source: Any) -> Change:
    return lambda t: spec(t).setdefault("volumes", []).append({"name": "v", **source})


def all_of(*changes: Change) -> Change:
    def change(template: Template) -> None:
        for each in changes:
            each(template)

    return change


def drop_each_capability_by_name(template: Template) -> None:
    sc(app(template))["capabilities"] = {
        "drop": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "NET_RAW"]
    }


def remove_init_security_context(template: Template) -> None:
    init(template).pop("securityContext", None)


def remove_pod_seccomp(template: Template) -> None:
    pod_sc(template).pop("seccompProfile", None)


def remove_init_ape(template: Template) -> None:
    sc(init(template)).pop("allowPrivilegeEscalation", None)


def add_sidecar(template: Template) -> None:
    spec(template)["initContainers"].append({"name": "sidecar", "image": "s:1", "restartPolicy": "Always"})


def windows_without_restricted_fields(template: Template) -> None:
    spec(template)["os"] = {"name": "windows"}
    spec(template)["securityContext"] = {"runAsNonRoot": True}
    for container in (app(template), init(template)):
        container.pop("securityContext", None)


def run_as_non_root_on_containers_only(app_value: bool | None, init_value: bool | None) -> Change:
    def change(template: Template) -> None:
        pod_sc(template).pop("runAsNonRoot", None)
        for container, value in ((app(template), app_value), (init(template), init_value)):
            if value is not None:
                sc(container)["runAsNonRoot"] = value

    return change


def user_namespaced_root(template: Template) -> None:
    spec(template)["hostUsers"] = False
    pod_sc(template).pop("runAsNonRoot", None)
    sc(app(template))["runAsUser"] = 0


@dataclass(frozen=True)
class Case:
    number: int
    change: Change | None
    baseline: bool  # allowed?
    restricted: bool
    minor: int = 35
    restricted_on_b: bool = False  # case 1: restricted verdict on B, not R
    job_annotations: dict[str, str] | None = None


CASES = [
    Case(1, None, True, False, restricted_on_b=True),
    Case(2, None, True, True),
    Case(3, set_pod(hostNetwork=True), False, False),
    Case(4, set_pod(hostPID=False), True, True),
    Case(5, set_pod(hostIPC=None), True, True),
    Case(6, set_app_sc(privileged=True), False, False),
    Case(7, lambda t: sc(init(t)).update(privileged=True), False, False),
    Case(8, set_app_sc(privileged=None), True, True),
    Case(9, caps(add=["NET_RAW"]), False, False),
    Case(10, caps(add=["CHOWN"]), True, False),
    Case(11, caps(add=["chown"]), False, False),
    Case(12, caps(add=["CAP_CHOWN"]), False, False),
    Case(13, caps(add=["NET_BIND_SERVICE"]), True, True),
    Case(14, caps(add=["CAP_NET_BIND_SERVICE"]), False, False),
    Case(15, caps(add=["ALL"]), False, False),
    Case(16, caps(drop=["all"]), True, False),
    Case(17, drop_each_capability_by_name, True, False),
    Case(18, lambda t: sc(app(t)).update(capabilities={}), True, False),
    Case(19, remove_init_security_context, True, False),
    Case(20, volume(hostPath={"path": "/tmp"}), False, False),
    Case(21, volume(nfs={"server": "s", "path": "/"}), True, False),
    Case(22, volume(gitRepo={"repository": "r"}), True, False),
    Case(23, volume(image={"reference": "reg/x:1"}), True, True),
    Case(24, volume(), True, True),
    Case(
        25,
        all_of(volume(csi={"driver": "d"}), volume(ephemeral={}), volume(projected={"sources": []})),
        True,
        True,
    ),
    Case(26, lambda t: app(t).update(ports=[{"containerPort": 8080}]), True, True),
    Case(27, lambda t: app(t).update(ports=[{"containerPort": 8080, "hostPort": 0}]), True, True),
    Case(28, lambda t: init(t).update(ports=[{"containerPort": 8080, "hostPort": 8080}]), False, False),
    Case(29, lambda t: app(t).update(livenessProbe={"httpGet": {"port": 80, "host": ""}}), True, True),
    Case(
        30,
        lambda t: app(t).update(readinessProbe={"tcpSocket": {"port": 80, "host": "10.0.0.1"}}),
        False,
        False,
    ),
    Case(
        31,
        lambda t: app(t).update(readinessProbe={"tcpSocket": {"port": 80, "host": "10.0.0.1"}}),
        True,
        True,
        minor=33,
    ),
    Case(
        32,
        lambda t: app(t).update(lifecycle={"preStop": {"httpGet": {"port": 80, "host": "localhost"}}}),
        False,
        False,
    ),
    Case(33, annotate("container.apparmor.security.beta.kubernetes.io/app", "runtime/default"), True, True),
    Case(
        34, annotate("container.apparmor.security.beta.kubernetes.io/app", "localhost/my-profile"), True, True
    ),
    Case(35, annotate("container.apparmor.security.beta.kubernetes.io/app", "unconfined"), False, False),
    Case(36, annotate("container.apparmor.security.beta.kubernetes.io/app", "RuntimeDefault"), False, False),
    Case(37, annotate("container.apparmor.security.beta.kubernetes.io/app", ""), True, True),
    Case(
        38,
        annotate("container.apparmor.security.beta.kubernetes.io/nosuchcontainer", "unconfined"),
        False,
        False,
    ),
    Case(
        39,
        None,
        True,
        True,
        job_annotations={"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
    ),
    Case(
        40,
        all_of(
            set_pod_sc(appArmorProfile={"type": "Unconfined"}),
            set_app_sc(appArmorProfile={"type": "RuntimeDefault"}),
            lambda t: sc(init(t)).update(appArmorProfile={"type": "RuntimeDefault"}),
        ),
        False,
        False,
    ),
    Case(41, set_app_sc(appArmorProfile={"type": "Localhost", "localhostProfile": "p"}), True, True),
    Case(42, set_app_sc(seLinuxOptions={"type": "container_t"}), True, True),
    Case(43, set_app_sc(seLinuxOptions={"type": "container_engine_t"}), True, True, minor=31),
    Case(143, set_app_sc(seLinuxOptions={"type": "container_engine_t"}), False, False, minor=30),
    Case(44, set_pod_sc(seLinuxOptions={"type": "spc_t"}), False, False),
    Case(45, set_app_sc(seLinuxOptions={"user": "system_u"}), False, False),
    Case(46, set_app_sc(seLinuxOptions={"role": "", "level": "s0:c123,c456"}), True, True),
    Case(47, set_app_sc(procMount="Default"), True, True),
    Case(48, all_of(set_app_sc(procMount="Unmasked"), set_pod(hostUsers=False)), True, False),
    Case(49, set_app_sc(procMount="Unmasked"), False, False),
    Case(50, set_pod_sc(seccompProfile={"type": "Unconfined"}), False, False),
    Case(51, remove_pod_seccomp, True, False),
    Case(
        52,
        all_of(
            remove_pod_seccomp,
            set_app_sc(seccompProfile={"type": "RuntimeDefault"}),
            lambda t: sc(init(t)).update(seccompProfile={"type": "Localhost", "localhostProfile": "p"}),
        ),
        True,
        True,
    ),
    Case(53, all_of(remove_pod_seccomp, set_app_sc(seccompProfile={"type": "RuntimeDefault"})), True, False),
    Case(
        54,
        all_of(
            set_pod_sc(seccompProfile={"type": "RuntimeDefault"}),
            lambda t: sc(init(t)).update(seccompProfile={"type": "Unconfined"}),
        ),
        False,
        False,
    ),
    Case(
        55,
        all_of(
            set_pod_sc(seccompProfile={"type": "Unconfined"}),
            set_app_sc(seccompProfile={"type": "RuntimeDefault"}),
            lambda t: sc(init(t)).update(seccompProfile={"type": "RuntimeDefault"}),
        ),
        False,
        False,
    ),
    Case(56, set_pod_sc(sysctls=[{"name": "net.ipv4.tcp_syncookies", "value": "1"}]), True, True),
    Case(
        57,
        set_pod_sc(sysctls=[{"name": "net.ipv4.ip_local_reserved_ports", "value": "5000-5100"}]),
        True,
        True,
        minor=27,
    ),
    Case(
        157,
        set_pod_sc(sysctls=[{"name": "net.ipv4.ip_local_reserved_ports", "value": "5000-5100"}]),
        False,
        False,
        minor=26,
    ),
    Case(
        58,
        set_pod_sc(sysctls=[{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 16777216"}]),
        True,
        True,
        minor=32,
    ),
    Case(
        158,
        set_pod_sc(sysctls=[{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 16777216"}]),
        False,
        False,
        minor=31,
    ),
    Case(59, set_pod_sc(sysctls=[{"name": "kernel.msgmax"}]), False, False),
    Case(60, set_pod_sc(sysctls=[{"name": "net/ipv4/tcp_syncookies"}]), False, False),
    Case(
        61, all_of(set_pod_sc(windowsOptions={"hostProcess": True}), set_pod(hostNetwork=True)), False, False
    ),
    Case(62, set_app_sc(windowsOptions={"hostProcess": False}), True, True),
    Case(63, remove_init_ape, True, False),
    Case(64, set_app_sc(allowPrivilegeEscalation=None), True, False),
    Case(65, set_app_sc(allowPrivilegeEscalation=True), True, False),
    Case(66, add_sidecar, True, False),
    Case(67, windows_without_restricted_fields, True, True),
    Case(167, windows_without_restricted_fields, True, False, minor=24),
    Case(68, set_pod_sc(runAsNonRoot=True), True, True),
    Case(69, run_as_non_root_on_containers_only(True, True), True, True),
    Case(70, run_as_non_root_on_containers_only(True, None), True, False),
    Case(
        71,
        all_of(
            set_pod_sc(runAsNonRoot=False),
            set_app_sc(runAsNonRoot=True),
            lambda t: sc(init(t)).update(runAsNonRoot=True),
        ),
        True,
        False,
    ),
    Case(72, set_app_sc(runAsNonRoot=False), True, False),
    Case(
        73,
        all_of(
            set_pod_sc(runAsUser=0), set_app_sc(runAsUser=1000), lambda t: sc(init(t)).update(runAsUser=1000)
        ),
        True,
        False,
    ),
    Case(74, set_app_sc(runAsUser=1000), True, True),
    Case(75, set_app_sc(runAsUser=0), True, True, minor=22),
    Case(76, user_namespaced_root, True, True),
    Case(176, user_namespaced_root, True, False, minor=34),
    Case(77, set_pod_sc(runAsGroup=0, fsGroup=0, supplementalGroups=[0]), True, True),
    Case(78, set_app_sc(readOnlyRootFilesystem=False), True, True),
    Case(
        79,
        lambda t: spec(t).update(
            ephemeralContainers=[{"name": "dbg", "securityContext": {"privileged": True}}]
        ),
        False,
        False,
    ),
    Case(80, lambda t: app(t).update(securityContext=None), True, False),
]


def case_id(case: Case) -> str:
    return f"case-{case.number}" + (f"-v1.{case.minor}" if case.minor != 35 else "")


def applied(base: Template, case: Case) -> Template:
    template = copy.deepcopy(base)
    if case.change is not None:
        case.change(template)
    return template


def policy_admits(decision: Decision) -> bool:
    """The profile's verdict: no policy denied. The skeleton Job is not a complete v1.20 Job, and the
    cases use fields of newer Kubernetes versions, so the engine's Kubernetes API check (kind
    ``invalid``, which runs only when no policy denied) is not part of what these cases judge."""
    return not [d for d in decision.denials if d.kind != "invalid"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_baseline_verdict(case: Case) -> None:
    decision = decide(applied(base_b(), case), "baseline", case.minor, case.job_annotations)
    assert policy_admits(decision) is case.baseline, [d.message for d in decision.denials]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_restricted_verdict(case: Case) -> None:
    base = base_b() if case.restricted_on_b else base_r()
    decision = decide(applied(base, case), "restricted", case.minor, case.job_annotations)
    assert policy_admits(decision) is case.restricted, [d.message for d in decision.denials]


def test_every_failing_control_is_reported_with_every_container_failing_it() -> None:
    template = base_b()
    spec(template)["hostNetwork"] = True
    sc(app(template)).update(privileged=True, capabilities={"add": ["SYS_ADMIN"]})
    sc(init(template)).update(privileged=True)
    messages = [d.message for d in decide(template, "baseline", 35).denials]
    assert messages == [
        "PSS baseline: the pod may not use the host's network, PID or IPC namespace "
        "(hostNetwork, hostPID, hostIPC)",
        "PSS baseline: privileged containers are not allowed: init, app",
        "PSS baseline: capabilities beyond the default set may not be added: app (SYS_ADMIN)",
    ]


def test_restricted_names_each_container_and_what_it_lacks() -> None:
    messages = [d.message for d in decide(base_b(), "restricted", 35).denials]
    assert messages == [
        "PSS restricted: containers must set securityContext.allowPrivilegeEscalation to false: init, app",
        "PSS restricted: containers must run as non-root (runAsNonRoot true, their own or the pod's): "
        "init, app",
        "PSS restricted: containers need a seccomp profile (RuntimeDefault or Localhost, their own or the "
        "pod's): init, app",
        "PSS restricted: containers must drop ALL capabilities and may add only NET_BIND_SERVICE: init, app",
    ]
