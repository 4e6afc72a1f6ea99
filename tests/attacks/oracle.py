"""An independent oracle for the attack catalogue: what a final Job manifest *means*.

Every function here reads a pod spec (``spec.template.spec`` of a batch/v1 Job) or one container and
answers a question from the Kubernetes semantics written down in the Pod Security Standards reference
and the Kubernetes API, never from the engine or its policies. The catalogue asserts outcomes with
these functions only, so a guard passes because the pod it produces is right, not because it printed
the expected message.

Conventions the functions share:

* ``null`` is the same as absent (the Kubernetes JSON decoder turns ``null`` into the zero value), so
  documents are cleaned of ``null`` members before they are read (PSS reference §2.5).
* A value of the wrong JSON type in a field a control reads is a violation: the API server would
  refuse it, and an engine must deny it rather than coerce it.
* String comparisons are exact and case-sensitive everywhere, as PSA compares them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

JSON = Any
PolicyVersion = tuple[int, int]

LATEST: PolicyVersion = (1, 35)
"""The PSS policy version the catalogue holds guards to: the current release's behaviour."""

CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")
"""PSA visits the three container lists in this order (PSS reference §1)."""

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
RESTRICTED_ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
ALLOWED_PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
        "projected", "secret", "image",
    }
)  # fmt: skip
_SELINUX_TYPES: tuple[tuple[str, PolicyVersion], ...] = (
    ("", (1, 0)),
    ("container_t", (1, 0)),
    ("container_init_t", (1, 0)),
    ("container_kvm_t", (1, 0)),
    ("container_engine_t", (1, 31)),
)
_SAFE_SYSCTLS: tuple[tuple[str, PolicyVersion], ...] = (
    ("kernel.shm_rmid_forced", (1, 0)),
    ("net.ipv4.ip_local_port_range", (1, 0)),
    ("net.ipv4.tcp_syncookies", (1, 0)),
    ("net.ipv4.ping_group_range", (1, 0)),
    ("net.ipv4.ip_unprivileged_port_start", (1, 0)),
    ("net.ipv4.ip_local_reserved_ports", (1, 27)),
    ("net.ipv4.tcp_keepalive_time", (1, 29)),
    ("net.ipv4.tcp_fin_timeout", (1, 29)),
    ("net.ipv4.tcp_keepalive_intvl", (1, 29)),
    ("net.ipv4.tcp_keepalive_probes", (1, 29)),
    ("net.ipv4.tcp_rmem", (1, 32)),
    ("net.ipv4.tcp_wmem", (1, 32)),
    ("net.ipv4.tcp_slow_start_after_idle", (1, 37)),
    ("net.ipv4.tcp_notsent_lowat", (1, 37)),
)
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")
_HOST_HANDLERS = ("httpGet", "tcpSocket")


# --- documents -------------------------------------------------------------------------------------


def clean(value: JSON) -> JSON:
    """``value`` without ``null`` map members, at every depth (``null`` means absent in Kubernetes)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def pod_spec_of(manifest: Mapping[str, JSON]) -> dict[str, JSON]:
    """``spec.template.spec`` of a Job manifest (``{}`` when any step is missing)."""
    spec = _member(_member(_member(manifest, "spec"), "template"), "spec")
    return spec if isinstance(spec, dict) else {}


def template_annotations(manifest: Mapping[str, JSON]) -> dict[str, JSON]:
    """The pod template's annotations: the only ones PSS reads (reference §1)."""
    annotations = _member(_member(_member(manifest, "spec"), "template"), "metadata")
    found = _member(annotations, "annotations")
    return found if isinstance(found, dict) else {}


def _member(value: JSON, key: str) -> JSON:
    return value.get(key) if isinstance(value, dict) else None


def _list(value: JSON) -> list[JSON]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """One container of a pod: which list it is in, its index there, and the container itself."""

    kind: str
    index: int
    container: dict[str, JSON]

    @property
    def where(self) -> str:
        name = self.container.get("name")
        return f"{self.kind}[{self.index}]" + (f" ({name})" if isinstance(name, str) else "")


def all_containers(pod_spec: Mapping[str, JSON]) -> list[ContainerRef]:
    """Every container of every kind, in PSA's order: init, regular, ephemeral."""
    found: list[ContainerRef] = []
    for kind in CONTAINER_KINDS:
        for index, container in enumerate(_list(pod_spec.get(kind))):
            found.append(ContainerRef(kind, index, container if isinstance(container, dict) else {}))
    return found


def containers_named(pod_spec: Mapping[str, JSON], name: str) -> list[ContainerRef]:
    """Every container of any kind whose ``name`` is exactly ``name``."""
    return [ref for ref in all_containers(pod_spec) if ref.container.get("name") == name]


# --- images ----------------------------------------------------------------------------------------


def images(pod_spec: Mapping[str, JSON]) -> list[tuple[str, str]]:
    """``(where, image)`` for every container of every kind and every ``image`` volume.

    A container without a string image is listed with ``""``: it names no allowed registry either.
    """
    found: list[tuple[str, str]] = []
    for ref in all_containers(clean(dict(pod_spec))):
        image = ref.container.get("image")
        found.append((ref.where, image if isinstance(image, str) else ""))
    for index, volume in enumerate(_list(clean(dict(pod_spec)).get("volumes"))):
        source = _member(volume, "image")
        if source is not None:
            reference = _member(source, "reference")
            found.append((f"volumes[{index}].image", reference if isinstance(reference, str) else ""))
    return found


def images_outside(pod_spec: Mapping[str, JSON], prefixes: tuple[str, ...]) -> list[str]:
    """Images that do not start with any of ``prefixes``, as ``where: image``."""
    return [f"{where}: {image!r}" for where, image in images(pod_spec) if not image.startswith(prefixes)]


# --- env -------------------------------------------------------------------------------------------


def effective_env(container: Mapping[str, JSON]) -> dict[str, JSON]:
    """The value each explicitly named variable ends up with, as Kubernetes resolves it.

    Later ``env`` entries with the same name win, and any ``env`` entry beats ``envFrom``. The value is
    the winning entry without its name: ``{"value": text}`` or ``{"valueFrom": source}`` (an entry with
    neither is the empty string; one with both, which the API refuses, is returned with both). Names a
    container can only get from ``envFrom`` are not listed: their values live in a ConfigMap or Secret.
    """
    resolved: dict[str, JSON] = {}
    for entry in _list(clean(dict(container)).get("env")):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        value = {k: v for k, v in entry.items() if k != "name"}
        if "valueFrom" in value and value.get("value", "") == "":
            value.pop("value", None)
        resolved[entry["name"]] = value or {"value": ""}
    return resolved


# --- secrets ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretReference:
    """One way a pod reaches a Secret: its name, the keys it exposes (``None`` = all) and where."""

    name: str
    keys: frozenset[str] | None
    where: str


_VOLUME_SECRET_REFS = {
    "azureFile": ("secretName",),
    "cephfs": ("secretRef", "name"),
    "cinder": ("secretRef", "name"),
    "flexVolume": ("secretRef", "name"),
    "iscsi": ("secretRef", "name"),
    "rbd": ("secretRef", "name"),
    "scaleIO": ("secretRef", "name"),
    "storageos": ("secretRef", "name"),
    "csi": ("nodePublishSecretRef", "name"),
}


def secret_references(pod_spec: Mapping[str, JSON]) -> list[SecretReference]:
    """Every reference to a Secret anywhere in the pod spec.

    Covered: env ``valueFrom.secretKeyRef`` and ``envFrom.secretRef`` in every container kind,
    ``secret`` volumes (their ``items`` narrow the keys), ``projected`` volume ``secret`` sources, the
    Secret references of other volume plugins (``csi.nodePublishSecretRef``, ``cephfs``, ``rbd``, …)
    and ``imagePullSecrets``.
    """
    spec = clean(dict(pod_spec))
    found: list[SecretReference] = []
    for ref in all_containers(spec):
        for index, entry in enumerate(_list(ref.container.get("env"))):
            key_ref = _member(_member(entry, "valueFrom"), "secretKeyRef")
            if isinstance(key_ref, dict):
                key = key_ref.get("key")
                found.append(
                    SecretReference(
                        str(key_ref.get("name", "")),
                        frozenset({key}) if isinstance(key, str) else None,
                        f"{ref.where}.env[{index}]",
                    )
                )
        for index, source in enumerate(_list(ref.container.get("envFrom"))):
            secret_ref = _member(source, "secretRef")
            if isinstance(secret_ref, dict):
                found.append(
                    SecretReference(str(secret_ref.get("name", "")), None, f"{ref.where}.envFrom[{index}]")
                )
    for index, volume in enumerate(_list(spec.get("volumes"))):
        where = f"volumes[{index}]"
        secret = _member(volume, "secret")
        if isinstance(secret, dict):
            found.append(SecretReference(str(secret.get("secretName", "")), _item_keys(secret), where))
        for position, source in enumerate(_list(_member(_member(volume, "projected"), "sources"))):
            projected = _member(source, "secret")
            if isinstance(projected, dict):
                found.append(
                    SecretReference(
                        str(projected.get("name", "")),
                        _item_keys(projected),
                        f"{where}.projected.sources[{position}]",
                    )
                )
        for plugin, path in _VOLUME_SECRET_REFS.items():
            value: JSON = _member(volume, plugin)
            for step in path:
                value = _member(value, step)
            if isinstance(value, str):
                found.append(SecretReference(value, None, f"{where}.{plugin}"))
    for index, pull in enumerate(_list(spec.get("imagePullSecrets"))):
        name = _member(pull, "name")
        if isinstance(name, str):
            found.append(SecretReference(name, None, f"imagePullSecrets[{index}]"))
    return found


def _item_keys(source: Mapping[str, JSON]) -> frozenset[str] | None:
    items = source.get("items")
    if not isinstance(items, list) or not items:
        return None
    return frozenset(str(item.get("key")) for item in items if isinstance(item, dict))


def references_to(pod_spec: Mapping[str, JSON], secret: str) -> list[SecretReference]:
    """The references to Secret ``secret`` (exact name)."""
    return [ref for ref in secret_references(pod_spec) if ref.name == secret]


def service_account(pod_spec: Mapping[str, JSON]) -> str:
    """The service account the pod runs as: ``serviceAccountName``, else the deprecated
    ``serviceAccount`` alias the API still honours, else ``default``."""
    spec = clean(dict(pod_spec))
    for key in ("serviceAccountName", "serviceAccount"):
        value = spec.get(key)
        if isinstance(value, str) and value:
            return value
    return "default"


# --- resources -------------------------------------------------------------------------------------


class QuantityError(ValueError):
    """A value that is not a Kubernetes resource quantity."""


_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


def quantity(value: JSON) -> Fraction:
    """The exact value of a Kubernetes quantity (``"8Gi"``, ``"500m"``, ``"1e3"``, or a JSON number)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise QuantityError(f"{value!r} is not a quantity")
        return Fraction(value)
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} is not a quantity")
    match = _QUANTITY.match(value)
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity")
    number = Fraction(match.group(1))
    suffix = match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    exponent = _EXPONENT.match(suffix)
    if exponent is not None:
        return number * Fraction(10) ** int(exponent.group(1))
    raise QuantityError(f"{value!r} is not a quantity")


def effective_requests(container: Mapping[str, JSON]) -> dict[str, Fraction]:
    """What the scheduler reserves: each request, and each limit given without a request (the API
    defaults such a request to the limit). Raises :class:`QuantityError` on a bad quantity."""
    resources = clean(dict(container)).get("resources")
    requests = _member(resources, "requests")
    limits = _member(resources, "limits")
    found: dict[str, Fraction] = {}
    if isinstance(limits, dict):
        for name, value in limits.items():
            found[name] = quantity(value)
    if isinstance(requests, dict):
        for name, value in requests.items():
            found[name] = quantity(value)
    return found


def requests_above_limits(container: Mapping[str, JSON]) -> list[str]:
    """Resources whose explicit request exceeds the explicit limit (the API refuses those)."""
    resources = clean(dict(container)).get("resources")
    requests = _member(resources, "requests")
    limits = _member(resources, "limits")
    if not isinstance(requests, dict) or not isinstance(limits, dict):
        return []
    return sorted(
        name for name in requests if name in limits and quantity(requests[name]) > quantity(limits[name])
    )


def resources_above(pod_spec: Mapping[str, JSON], resource: str, bound: Fraction) -> list[str]:
    """Containers of any kind whose effective request of ``resource`` exceeds ``bound``; a container
    whose quantities cannot be read, or whose request exceeds its limit, is listed too."""
    found: list[str] = []
    for ref in all_containers(pod_spec):
        try:
            value = effective_requests(ref.container).get(resource)
            inverted = requests_above_limits(ref.container)
        except QuantityError as exc:
            found.append(f"{ref.where}: {exc}")
            continue
        if value is not None and value > bound:
            found.append(f"{ref.where}: {resource} {float(value):g} > {float(bound):g}")
        if inverted:
            found.append(f"{ref.where}: requests above limits for {', '.join(inverted)}")
    return found


# --- Pod Security Standards ------------------------------------------------------------------------


def pss_baseline_violations(
    pod_spec: Mapping[str, JSON],
    annotations: Mapping[str, JSON] | None = None,
    *,
    version: PolicyVersion = LATEST,
) -> list[str]:
    """Every Baseline control the pod template fails (PSS reference §3), one line each.

    ``annotations`` are the pod *template's* annotations (AppArmor annotation form).
    """
    _check_version(version)
    checks = _Checks(pod_spec, annotations, version)
    checks.host_process()
    checks.host_namespaces()
    checks.privileged()
    checks.capabilities_baseline()
    checks.host_path_volumes()
    checks.host_ports()
    checks.host_probes()
    checks.app_armor()
    checks.se_linux()
    checks.proc_mount(relax_for_user_namespaces=True)
    checks.seccomp_baseline()
    checks.sysctls()
    return checks.violations


def pss_restricted_violations(
    pod_spec: Mapping[str, JSON],
    annotations: Mapping[str, JSON] | None = None,
    *,
    version: PolicyVersion = LATEST,
) -> list[str]:
    """Every Restricted control the pod template fails (PSS reference §3 with the §2.1 overrides and
    §4), one line each."""
    _check_version(version)
    checks = _Checks(pod_spec, annotations, version)
    checks.host_process()
    checks.host_namespaces()
    checks.privileged()
    if version >= (1, 22):
        checks.capabilities_restricted()
    else:
        checks.capabilities_baseline()
    checks.volume_types()
    checks.host_ports()
    checks.host_probes()
    checks.app_armor()
    checks.se_linux()
    checks.proc_mount(relax_for_user_namespaces=False)  # procMount_restricted never relaxes
    checks.seccomp_restricted()
    checks.sysctls()
    checks.allow_privilege_escalation()
    checks.run_as_non_root()
    checks.run_as_user()
    return checks.violations


def manifest_pss_violations(
    manifest: Mapping[str, JSON], level: str, *, version: PolicyVersion = LATEST
) -> list[str]:
    """The ``baseline`` or ``restricted`` violations of a Job manifest's pod template."""
    spec, annotations = pod_spec_of(manifest), template_annotations(manifest)
    if level == "baseline":
        return pss_baseline_violations(spec, annotations, version=version)
    if level == "restricted":
        return pss_restricted_violations(spec, annotations, version=version)
    raise ValueError(f"unknown PSS level {level!r}")


def _check_version(version: PolicyVersion) -> None:
    if version < (1, 19):
        raise ValueError("the oracle implements PSS policy versions v1.19 and later")


class _Checks:
    """One evaluation: the cleaned pod, the version, and the violations found so far."""

    def __init__(
        self, pod_spec: Mapping[str, JSON], annotations: Mapping[str, JSON] | None, version: PolicyVersion
    ) -> None:
        self.spec: dict[str, JSON] = clean(dict(pod_spec))
        self.annotations: dict[str, JSON] = clean(dict(annotations or {}))
        self.version = version
        self.violations: list[str] = []
        self.containers = all_containers(self.spec)
        pod_context = self.spec.get("securityContext", {})
        if not isinstance(pod_context, dict):
            self.fail("securityContext", "pod securityContext is not an object")
            pod_context = {}
        self.pod_context: dict[str, JSON] = pod_context

    def fail(self, control: str, detail: str) -> None:
        self.violations.append(f"{control}: {detail}")

    @property
    def windows(self) -> bool:
        return bool(_member(self.spec.get("os"), "name") == "windows")

    @property
    def user_namespaced(self) -> bool:
        return self.spec.get("hostUsers") is False

    def contexts(self) -> Iterator[tuple[str, dict[str, JSON]]]:
        """``(where, securityContext)`` of every container; a missing context is ``{}``."""
        for ref in self.containers:
            context = ref.container.get("securityContext", {})
            if not isinstance(context, dict):
                self.fail("securityContext", f"{ref.where} securityContext is not an object")
                context = {}
            yield ref.where, context

    def levels(self) -> Iterator[tuple[str, dict[str, JSON]]]:
        """The pod-level context, then every container's."""
        yield "pod", self.pod_context
        yield from self.contexts()

    def must_not_be_true(self, control: str, where: str, value: JSON) -> None:
        if value is True:
            self.fail(control, f"{where} is true")
        elif value is not None and value is not False:
            self.fail(control, f"{where} has the non-boolean {value!r}")

    # baseline ---------------------------------------------------------------------------------------

    def host_process(self) -> None:
        for where, context in self.levels():
            self.must_not_be_true("hostProcess", where, _member(context.get("windowsOptions"), "hostProcess"))

    def host_namespaces(self) -> None:
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            self.must_not_be_true("hostNamespaces", key, self.spec.get(key))

    def privileged(self) -> None:
        for where, context in self.contexts():
            self.must_not_be_true("privileged", where, context.get("privileged"))

    def capabilities_baseline(self) -> None:
        for where, context in self.contexts():
            for entry in self._capability_list(where, context, "add"):
                if entry not in BASELINE_CAPABILITIES:
                    self.fail("capabilities", f"{where} adds {entry!r}")

    def host_path_volumes(self) -> None:
        for index, volume in enumerate(_list(self.spec.get("volumes"))):
            if isinstance(volume, dict) and "hostPath" in volume:
                self.fail("hostPathVolumes", f"volumes[{index}] is a hostPath")

    def host_ports(self) -> None:
        for ref in self.containers:
            for index, port in enumerate(_list(ref.container.get("ports"))):
                host_port = _member(port, "hostPort")
                if host_port is None or (host_port == 0 and _is_int(host_port)):
                    continue
                self.fail("hostPorts", f"{ref.where}.ports[{index}].hostPort is {host_port!r}")

    def host_probes(self) -> None:
        if self.version < (1, 34):
            return
        for ref in self.containers:
            handlers: list[tuple[str, JSON]] = [(p, ref.container.get(p)) for p in _PROBES]
            lifecycle = ref.container.get("lifecycle")
            handlers += [(f"lifecycle.{h}", _member(lifecycle, h)) for h in _HOOKS]
            for name, handler in handlers:
                for kind in _HOST_HANDLERS:
                    host = _member(_member(handler, kind), "host")
                    if host is not None and host != "":
                        self.fail("hostProbesAndHostLifecycle", f"{ref.where}.{name}.{kind}.host is {host!r}")

    def app_armor(self) -> None:
        for where, context in self.levels():
            profile = context.get("appArmorProfile")
            if profile is None:
                continue
            kind = _member(profile, "type")
            if kind not in ALLOWED_PROFILE_TYPES:
                self.fail("appArmorProfile", f"{where} type is {kind!r}")
        for key, value in self.annotations.items():
            if not isinstance(key, str) or not key.startswith(APPARMOR_ANNOTATION_PREFIX):
                continue
            if value in {"", "runtime/default"}:
                continue
            if isinstance(value, str) and value.startswith("localhost/"):
                continue
            self.fail("appArmorProfile", f"annotation {key} is {value!r}")

    def se_linux(self) -> None:
        allowed = {name for name, since in _SELINUX_TYPES if self.version >= since}
        for where, context in self.levels():
            options = context.get("seLinuxOptions")
            if options is None:
                continue
            if not isinstance(options, dict):
                self.fail("seLinuxOptions", f"{where} seLinuxOptions is not an object")
                continue
            kind = options.get("type", "")
            if kind not in allowed:
                self.fail("seLinuxOptions", f"{where} type is {kind!r}")
            for key in ("user", "role"):
                value = options.get(key, "")
                if value != "":
                    self.fail("seLinuxOptions", f"{where} {key} is {value!r}")

    def proc_mount(self, *, relax_for_user_namespaces: bool) -> None:
        if relax_for_user_namespaces and self.version >= (1, 35) and self.user_namespaced:
            return
        for where, context in self.contexts():
            value = context.get("procMount")
            if value is not None and value != "Default":
                self.fail("procMount", f"{where} is {value!r}")

    def seccomp_baseline(self) -> None:
        for where, context in self.levels():
            profile = context.get("seccompProfile")
            if profile is None:
                continue
            kind = _member(profile, "type")
            if kind not in ALLOWED_PROFILE_TYPES:
                self.fail("seccompProfile", f"{where} type is {kind!r}")

    def sysctls(self) -> None:
        allowed = {name for name, since in _SAFE_SYSCTLS if self.version >= since}
        for index, sysctl in enumerate(_list(self.pod_context.get("sysctls"))):
            name = _member(sysctl, "name")
            if name not in allowed:
                self.fail("sysctls", f"sysctls[{index}] is {name!r}")

    # restricted -------------------------------------------------------------------------------------

    def capabilities_restricted(self) -> None:
        if self.windows and self.version >= (1, 25):
            return
        for where, context in self.contexts():
            drop = self._capability_list(where, context, "drop")
            if "ALL" not in drop:
                self.fail("capabilities", f"{where} does not drop ALL")
            for entry in self._capability_list(where, context, "add"):
                if entry not in RESTRICTED_ADDABLE_CAPABILITIES:
                    self.fail("capabilities", f"{where} adds {entry!r}")

    def volume_types(self) -> None:
        for index, volume in enumerate(_list(self.spec.get("volumes"))):
            if not isinstance(volume, dict):
                self.fail("restrictedVolumes", f"volumes[{index}] is not an object")
                continue
            for source in volume:
                if source != "name" and source not in RESTRICTED_VOLUME_SOURCES:
                    self.fail("restrictedVolumes", f"volumes[{index}] uses {source}")

    def seccomp_restricted(self) -> None:
        if self.windows and self.version >= (1, 25):
            return
        pod_value = self._profile_type(self.pod_context)
        if pod_value is not None and pod_value not in ALLOWED_PROFILE_TYPES:
            self.fail("seccompProfile", f"pod type is {pod_value!r}")
        for where, context in self.contexts():
            value = self._profile_type(context)
            if value is not None:
                if value not in ALLOWED_PROFILE_TYPES:
                    self.fail("seccompProfile", f"{where} type is {value!r}")
            elif pod_value not in ALLOWED_PROFILE_TYPES:
                self.fail("seccompProfile", f"{where} has no profile and inherits none")

    def allow_privilege_escalation(self) -> None:
        if self.windows and self.version >= (1, 25):
            return
        for where, context in self.contexts():
            if context.get("allowPrivilegeEscalation") is not False:
                self.fail("allowPrivilegeEscalation", f"{where} is not explicitly false")

    def run_as_non_root(self) -> None:
        if self.version >= (1, 35) and self.user_namespaced:
            return
        pod_value = self.pod_context.get("runAsNonRoot")
        if pod_value is not None and pod_value is not True:
            self.fail("runAsNonRoot", f"pod is {pod_value!r}")
        for where, context in self.contexts():
            value = context.get("runAsNonRoot")
            if value is None:
                if pod_value is not True:
                    self.fail("runAsNonRoot", f"{where} is unset and the pod does not set true")
            elif value is not True:
                self.fail("runAsNonRoot", f"{where} is {value!r}")

    def run_as_user(self) -> None:
        if self.version < (1, 23) or (self.version >= (1, 35) and self.user_namespaced):
            return
        for where, context in self.levels():
            value = context.get("runAsUser")
            if value is None:
                continue
            if not _is_int(value):
                self.fail("runAsUser", f"{where} has the non-integer {value!r}")
            elif value == 0:
                self.fail("runAsUser", f"{where} is 0")

    # helpers ----------------------------------------------------------------------------------------

    def _capability_list(self, where: str, context: Mapping[str, JSON], key: str) -> list[str]:
        capabilities = context.get("capabilities")
        if capabilities is None:
            return []
        if not isinstance(capabilities, dict):
            self.fail("capabilities", f"{where} capabilities is not an object")
            return []
        entries = capabilities.get(key)
        if entries is None:
            return []
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            self.fail("capabilities", f"{where} capabilities.{key} is not a list of strings")
            return []
        return list(entries)

    def _profile_type(self, context: Mapping[str, JSON]) -> JSON:
        profile = context.get("seccompProfile")
        if profile is None:
            return None
        kind = _member(profile, "type")
        return "" if kind is None else kind


def _is_int(value: JSON) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- protected env ---------------------------------------------------------------------------------


def protected_env_differences(
    baseline_pod: Mapping[str, JSON],
    attacked_pod: Mapping[str, JSON],
    container_names: tuple[str, ...],
    always: frozenset[str],
    derived: frozenset[str],
) -> list[str]:
    """How the attack changed what the stack set, container by container (``[]`` = nothing).

    ``always`` are names the stack sets for identity and coordination: wherever the baseline (the same
    job without the attack) sets one, the attacked pod must resolve it to the same value. ``derived``
    are names the stack derives from the admin's agent-config: they must resolve exactly as in the
    baseline, including *not set* where the stack did not set them. Each container is found by name,
    and a name that no longer identifies exactly one container is itself a difference.
    """
    found: list[str] = []
    for name in container_names:
        before = containers_named(baseline_pod, name)
        after = containers_named(attacked_pod, name)
        if len(before) != 1:
            raise ValueError(f"the baseline has {len(before)} containers named {name!r}")
        if len(after) != 1:
            found.append(f"{len(after)} containers are named {name!r}")
            continue
        before_env = effective_env(before[0].container)
        after_env = effective_env(after[0].container)
        for variable in sorted(always | derived):
            expected = before_env.get(variable)
            if expected is None and variable not in derived:
                continue
            actual = after_env.get(variable)
            if actual != expected:
                found.append(f"{name}: {variable} is {actual!r}, the stack set {expected!r}")
    return found


# --- integers --------------------------------------------------------------------------------------

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def integers_outside_int64(value: JSON, path: str = "") -> list[str]:
    """Paths of integers the API server cannot hold (Kubernetes integers are at most 64-bit)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [path or "(root)"] if not INT64_MIN <= value <= INT64_MAX else []
    if isinstance(value, float):
        return [path or "(root)"] if math.isinf(value) or math.isnan(value) else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += integers_outside_int64(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += integers_outside_int64(item, f"{path}[{index}]")
    return found
