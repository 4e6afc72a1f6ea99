"""Checking the Job the engine built against the Kubernetes API it will be sent to.

A dry run must not admit a Job the API server refuses (a container named ``""``, a label value that
is not a string, a policy typo like ``nodeSelectr``), and must not admit one the server silently
prunes either: a v1.20 server drops unknown fields without a word, so a misspelt field would pass
both the dry run and the create and still not do what the policy says. So every admitted Job is
checked here, in two passes over the manifest:

* **structure**, strictly, against the generated table of the target version
  (``engine.model.kube_api_v1_20``): every field known, every value of its JSON type (a quantity, an
  int-or-string and an RFC 3339 time as the API decodes them), every required field present;
* **the rules the API server's validation applies to a new Job** that policies can break: object,
  container, volume, port and env var names; label and annotation syntax; a Job's restart policy;
  at least one container, each with an image; no ephemeral containers (never allowed in a pod
  template); unique names; mounts of existing volumes; at most one source per volume; pull policies.

Each problem is a :class:`Violation` with the exact path, so the caller can name the policy and rule
that last wrote it. The checks are compiled once per version into small checker objects (the walk
runs for every job; it allocates a path only where it descends).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from engine.model.controller_id import LABEL_VALUE_MAX, is_label_value
from engine.model.jsonvalue import JSON, Path, PathSegment
from engine.model.kube_api import DEFAULT_KUBERNETES_VERSION, KUBERNETES_VERSIONS, TABLES, union_structs
from engine.model.plugin import describe_value

_TABLES = TABLES

_QUANTITY = re.compile(r"^[+-]?[0-9]*(\.[0-9]*)?([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_MAX = 63
_DNS_SUBDOMAIN_MAX = 253
_ANNOTATIONS_MAX_BYTES = 256 * 1024
_PORT_MAX = 65535
_PORT_NAME_MAX = 15
_RESTART_POLICIES = ("Never", "OnFailure")
_INIT_CONTAINER_RESTART_POLICIES = ("Always",)
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_EPHEMERAL_IN_TEMPLATE = (
    "ephemeral containers are not allowed in a pod template (the API server refuses them, or drops them"
    " unseen where the EphemeralContainers feature is off, as in v1.20)"
)
_TEMPLATE: Path = ("spec", "template")
_POD: Path = ("spec", "template", "spec")


@dataclass(frozen=True, slots=True)
class Violation:
    """One way the Job breaks the API: where (a path into the manifest) and what is wrong."""

    path: Path
    message: str


def validate_job(manifest: JSON, version: str = DEFAULT_KUBERNETES_VERSION) -> list[Violation]:
    """Every problem the target API would have with ``manifest`` as a batch/v1 Job (``[]`` if none)."""
    checker = _root_checker(version)
    found: list[Violation] = []
    if not isinstance(manifest, dict):
        return [Violation((), f"a Job must be an object, got {describe_value(manifest)}")]
    checker.check(manifest, None, found)
    _check_job_rules(manifest, found)
    return found


@functools.cache
def _union() -> dict[str, dict[str, str]]:
    return union_structs()


def _structs(version: str | None) -> Mapping[str, Mapping[str, str]]:
    """The structs of ``version``, or (``None``) of every supported version at once."""
    return _union() if version is None else _TABLES[version].STRUCTS


# --- structure ------------------------------------------------------------------------------------

_Crumb: TypeAlias = "tuple[_Crumb, PathSegment] | None"
"""Where a value is: ``None`` for the Job itself, else (where its parent is, its key or index). The
walk extends a crumb by one pair per level instead of copying the whole path for every object; the
path is spelt out only for a violation."""


class _Checker:
    __slots__ = ()

    def check(self, value: JSON, where: _Crumb, found: list[Violation]) -> None:
        """Check ``value``, found at ``where`` (see :data:`_Crumb`)."""
        raise NotImplementedError


class _Any(_Checker):
    __slots__ = ()

    def check(self, value: JSON, where: _Crumb, found: list[Violation]) -> None:
        return


class _Scalar(_Checker):
    __slots__ = ("accepts", "expected")

    def __init__(self, expected: str, accepts: Callable[[JSON], bool]) -> None:
        self.expected = expected
        self.accepts = accepts

    def check(self, value: JSON, where: _Crumb, found: list[Violation]) -> None:
        if value is not None and not self.accepts(value):
            found.append(Violation(_path(where), f"expected {self.expected}, got {describe_value(value)}"))


def _is_int(value: JSON) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_range(bits: int) -> Callable[[JSON], bool]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return lambda value: _is_int(value) and low <= value <= high


def _is_number(value: JSON) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_quantity(value: JSON) -> bool:
    if _is_number(value):
        return True
    return isinstance(value, str) and bool(value.strip()) and _QUANTITY.match(value.strip()) is not None


_SCALARS: dict[str, _Checker] = {
    "any": _Any(),
    "string": _Scalar("a string", lambda value: isinstance(value, str)),
    "bytes": _Scalar(
        "a base64 string", lambda value: isinstance(value, str) and _BASE64.match(value) is not None
    ),
    "boolean": _Scalar("a boolean", lambda value: isinstance(value, bool)),
    "int32": _Scalar("a 32-bit integer", _int_range(32)),
    "int64": _Scalar("a 64-bit integer", _int_range(64)),
    "number": _Scalar("a number", _is_number),
    "quantity": _Scalar('a quantity (a number or a string like "500m" or "1Gi")', _is_quantity),
    "int-or-string": _Scalar(
        "an integer or a string", lambda value: isinstance(value, str) or _int_range(32)(value)
    ),
    "time": _Scalar(
        'an RFC 3339 time like "2006-01-02T15:04:05Z"',
        lambda value: isinstance(value, str) and _TIME.match(value) is not None,
    ),
}


class _List(_Checker):
    __slots__ = ("item",)

    def __init__(self, item: _Checker) -> None:
        self.item = item

    def check(self, value: JSON, where: _Crumb, found: list[Violation]) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            found.append(Violation(_path(where), f"expected a list, got {describe_value(value)}"))
            return
        item = self.item
        for index, element in enumerate(value):
            if element is None:
                found.append(Violation(_path((where, index)), "a list item may not be null"))
            else:
                item.check(element, (where, index), found)


class _Map(_Checker):
    __slots__ = ("item",)

    def __init__(self, item: _Checker) -> None:
        self.item = item

    def check(self, value: JSON, where: _Crumb, found: list[Violation]) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            found.append(Violation(_path(where), f"expected a map, got {describe_value(value)}"))
            return
        item = self.item
        for name, element in value.items():
            item.check(element, (where, name), found)


class _Struct(_Checker):
    """An API object: every field must be known and of its type; required fields must be there."""

    __slots__ = ("elsewhere", "fields", "name", "required", "strings", "version")

    def __init__(self, name: str, version: str = "") -> None:
        self.name = name
        self.version = version
        self.fields: dict[str, _Checker] = {}
        self.strings: frozenset[str] = frozenset()
        self.required: tuple[str, ...] = ()
        self.elsewhere: dict[str, tuple[str, ...]] = {}
        """Fields this version lacks that other supported versions have -> those versions."""

    def check(self, value: JSON, where: _Crumb, found: list[Violation]) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            found.append(
                Violation(_path(where), f"expected an object ({self.name}), got {describe_value(value)}")
            )
            return
        fields, strings = self.fields, self.strings
        for name, element in value.items():
            if name in strings:  # the common case, checked inline: most fields are strings
                if type(element) is not str and element is not None:
                    fields[name].check(element, (where, name), found)
                continue
            field = fields.get(name)
            if field is None:
                found.append(Violation(_path((where, name)), self._unknown(str(name))))
            elif element is not None:
                field.check(element, (where, name), found)
        for name in self.required:
            if value.get(name) is None:
                found.append(Violation(_path((where, name)), f"required ({self.name}.{name})"))

    def _unknown(self, name: str) -> str:
        versions = self.elsewhere.get(name)
        if versions:
            return (
                f"unknown field {json.dumps(name)} in {self.name} of Kubernetes {self.version} "
                f"(config kubernetes-version); Kubernetes {' and '.join(versions)} has it"
            )
        return unknown_field_message(name, self.name, self.fields)


def _path(where: _Crumb) -> Path:
    """The path a crumb stands for (built only for a violation)."""
    segments: list[PathSegment] = []
    while where is not None:
        where, segment = where
        segments.append(segment)
    return tuple(reversed(segments))


def unknown_field_message(key: str, struct: str, known: Mapping[str, object]) -> str:
    """``unknown field "nodeSelectr" in PodSpec (did you mean "nodeSelector"?)``."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f"unknown field {json.dumps(key)} in {struct}{hint}"


@functools.cache
def _compiled(version: str) -> dict[str, _Struct]:
    table = _TABLES.get(version)
    if table is None:
        supported = ", ".join(KUBERNETES_VERSIONS)
        raise ValueError(f"unsupported Kubernetes version {version!r} (supported: {supported})")
    structs = {name: _Struct(name, version) for name in table.STRUCTS}

    def resolve(expression: str) -> _Checker:
        if expression.startswith("[") and expression.endswith("]"):
            return _List(resolve(expression[1:-1]))
        if expression.startswith("{") and expression.endswith("}"):
            return _Map(resolve(expression[1:-1]))
        checker = _SCALARS.get(expression) or structs.get(expression)
        if checker is None:
            raise ValueError(f"kube_api: unknown type expression {expression!r}")
        return checker

    for name, fields in table.STRUCTS.items():
        structs[name].fields = {field: resolve(expression) for field, expression in fields.items()}
        structs[name].strings = frozenset(f for f, expression in fields.items() if expression == "string")
        structs[name].required = table.REQUIRED.get(name, ())
        structs[name].elsewhere = {
            field: tuple(v for v in KUBERNETES_VERSIONS if field in _TABLES[v].STRUCTS.get(name, {}))
            for field in _union().get(name, {})
            if field not in fields
        }
    return structs


def _root_checker(version: str) -> _Struct:
    structs = _compiled(version)  # raises for an unsupported version
    return structs[_TABLES[version].ROOT]


# --- the API server's rules for a new Job ---------------------------------------------------------


def _check_job_rules(job: dict[str, JSON], found: list[Violation]) -> None:
    if job.get("apiVersion") != "batch/v1":
        found.append(
            Violation(("apiVersion",), f'must be "batch/v1", got {describe_value(job.get("apiVersion"))}')
        )
    if job.get("kind") != "Job":
        found.append(Violation(("kind",), f'must be "Job", got {describe_value(job.get("kind"))}'))
    metadata = job.get("metadata")
    if not isinstance(metadata, dict):
        found.append(Violation(("metadata",), "required"))
        metadata = {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        found.append(Violation(("metadata", "name"), "required"))
    else:
        _dns_subdomain(name, ("metadata", "name"), found)
        if len(name) > _DNS_LABEL_MAX:
            found.append(
                Violation(
                    ("metadata", "name"),
                    f"must be at most {_DNS_LABEL_MAX} characters: the Job controller copies it into "
                    f"the pod label job-name (it has {len(name)})",
                )
            )
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and namespace:
        _dns_label(namespace, ("metadata", "namespace"), found)
    _metadata_maps(metadata, ("metadata",), found)
    spec = job.get("spec")
    if not isinstance(spec, dict):
        found.append(Violation(("spec",), "required"))
        return
    template = spec.get("template")
    if not isinstance(template, dict):
        return  # reported as required by the structure pass
    template_metadata = template.get("metadata")
    if isinstance(template_metadata, dict):
        _metadata_maps(template_metadata, (*_TEMPLATE, "metadata"), found)
    pod = template.get("spec")
    if not isinstance(pod, dict):
        found.append(Violation(_POD, "required"))
        return
    _check_pod(pod, found)


def _check_pod(pod: dict[str, JSON], found: list[Violation]) -> None:
    restart = pod.get("restartPolicy")
    if restart not in _RESTART_POLICIES:
        shown = "unset (Always)" if restart is None else describe_value(restart)
        found.append(
            Violation((*_POD, "restartPolicy"), f"a Job's pod must restart Never or OnFailure, not {shown}")
        )
    volumes = _named(pod.get("volumes"))
    volume_names: set[str] = set()
    for index, volume in volumes:
        path = (*_POD, "volumes", index)
        name = volume.get("name")
        if isinstance(name, str):
            _dns_label(name, (*path, "name"), found)
            if name in volume_names:
                found.append(Violation((*path, "name"), f"duplicate volume name {json.dumps(name)}"))
            volume_names.add(name)
        sources = [key for key, value in volume.items() if key != "name" and value is not None]
        if len(sources) > 1:  # none at all is fine: the API server defaults it to an emptyDir
            found.append(
                Violation(path, f"a volume may have only one source, got {', '.join(sorted(sources))}")
            )
    containers = pod.get("containers")
    if not containers:
        found.append(Violation((*_POD, "containers"), "a pod needs at least one container"))
    if pod.get("ephemeralContainers"):
        found.append(Violation((*_POD, "ephemeralContainers"), _EPHEMERAL_IN_TEMPLATE))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for index, container in _named(pod.get(key)):
            _check_container(container, (*_POD, key, index), seen, volume_names, found)
            _check_container_restart_policy(container, (*_POD, key, index), key == "initContainers", found)


def _check_container_restart_policy(
    container: dict[str, JSON], path: Path, init: bool, found: list[Violation]
) -> None:
    """A container's own ``restartPolicy`` (1.29+; the structure pass refuses it before): only an init
    container may set it, and only to ``Always`` (a native sidecar)."""
    policy = container.get("restartPolicy")
    if policy is None:
        return
    if not init:
        found.append(
            Violation(
                (*path, "restartPolicy"),
                "only init containers may set restartPolicy (Always makes one a native sidecar)",
            )
        )
    elif policy not in _INIT_CONTAINER_RESTART_POLICIES:
        found.append(
            Violation(
                (*path, "restartPolicy"),
                f'an init container\'s restartPolicy must be "Always", got {describe_value(policy)}',
            )
        )


def _check_container(
    container: dict[str, JSON],
    path: Path,
    seen: set[str],
    volume_names: set[str],
    found: list[Violation],
) -> None:
    name = container.get("name")
    if isinstance(name, str):
        _dns_label(name, (*path, "name"), found)
        if name and name in seen:
            found.append(Violation((*path, "name"), f"duplicate container name {json.dumps(name)}"))
        seen.add(name)
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        found.append(Violation((*path, "image"), "required: a container needs an image"))
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in _PULL_POLICIES:
        found.append(
            Violation(
                (*path, "imagePullPolicy"),
                f"must be one of {', '.join(_PULL_POLICIES)}, got {describe_value(policy)}",
            )
        )
    env = container.get("env")
    if isinstance(env, list):
        _check_env(env, path, found)
    for index, source in _named(container.get("envFrom")):
        prefix = source.get("prefix")
        if isinstance(prefix, str) and prefix and _ENV_VAR_NAME.match(prefix) is None:
            found.append(
                Violation(
                    (*path, "envFrom", index, "prefix"),
                    f"{json.dumps(prefix)} is not a valid environment variable prefix",
                )
            )
    mount_paths: set[str] = set()
    for index, mount in _named(container.get("volumeMounts")):
        mount_name = mount.get("name")
        if isinstance(mount_name, str) and mount_name not in volume_names:
            found.append(
                Violation(
                    (*path, "volumeMounts", index, "name"),
                    f"no volume named {json.dumps(mount_name)} in the pod",
                )
            )
        mount_path = mount.get("mountPath")
        if isinstance(mount_path, str):
            if not mount_path:
                found.append(Violation((*path, "volumeMounts", index, "mountPath"), "required"))
            elif mount_path in mount_paths:
                found.append(
                    Violation(
                        (*path, "volumeMounts", index, "mountPath"),
                        f"{json.dumps(mount_path)} is mounted twice",
                    )
                )
            mount_paths.add(mount_path)
    port_names: set[str] = set()
    for index, port in _named(container.get("ports")):
        port_path = (*path, "ports", index)
        number = port.get("containerPort")
        if isinstance(number, int) and not 1 <= number <= _PORT_MAX:
            found.append(Violation((*port_path, "containerPort"), f"must be 1-{_PORT_MAX}, got {number}"))
        host_port = port.get("hostPort")
        if isinstance(host_port, int) and host_port != 0 and not 1 <= host_port <= _PORT_MAX:
            found.append(Violation((*port_path, "hostPort"), f"must be 1-{_PORT_MAX}, got {host_port}"))
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            found.append(
                Violation(
                    (*port_path, "protocol"),
                    f"must be one of {', '.join(_PROTOCOLS)}, got {describe_value(protocol)}",
                )
            )
        port_name = port.get("name")
        if isinstance(port_name, str) and port_name:
            if (
                len(port_name) > _PORT_NAME_MAX
                or _PORT_NAME.match(port_name) is None
                or "--" in port_name
                or not any(c.isalpha() for c in port_name)
            ):
                found.append(
                    Violation(
                        (*port_path, "name"),
                        f"{json.dumps(port_name)} is not a valid port name (at most {_PORT_NAME_MAX} "
                        "lowercase letters, digits and '-', with a letter)",
                    )
                )
            elif port_name in port_names:
                found.append(Violation((*port_path, "name"), f"duplicate port name {json.dumps(port_name)}"))
            port_names.add(port_name)


_VALID_ENV_NAMES: set[str] = set()
_VALID_ENV_NAMES_MAX = 20_000


def _valid_env_name(name: str) -> bool:
    """Whether ``name`` is an env var name the API accepts. Every job repeats the stack's few dozen
    names in each container, so the valid ones are remembered (a bounded set)."""
    if name in _VALID_ENV_NAMES:
        return True
    if _ENV_VAR_NAME.match(name) is None:
        return False
    if len(_VALID_ENV_NAMES) >= _VALID_ENV_NAMES_MAX:
        _VALID_ENV_NAMES.clear()
    _VALID_ENV_NAMES.add(name)
    return True


def _check_env(env: list[JSON], path: Path, found: list[Violation]) -> None:
    """The env names, checked one by one only when one is not already known to be valid (the longest
    list of every container: the common case first). A name that is not a string is the type check's
    to report."""
    valid = _VALID_ENV_NAMES
    for variable in env:
        if isinstance(variable, dict):
            name = variable.get("name")
            if type(name) is str and name not in valid:
                _check_env_names(env, path, found)
                return


def _check_env_names(env: list[JSON], path: Path, found: list[Violation]) -> None:
    for index, variable in _named(env):
        name = variable.get("name")
        if isinstance(name, str) and not _valid_env_name(name):
            found.append(
                Violation(
                    (*path, "env", index, "name"),
                    f"{json.dumps(name)} is not a valid environment variable name "
                    "(letters, digits, '_', '-' and '.', not starting with a digit)",
                )
            )


def _named(items: JSON) -> Iterator[tuple[int, dict[str, JSON]]]:
    """The object items of a list (the structure pass reports anything else)."""
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield index, item


def _metadata_maps(metadata: dict[str, JSON], path: Path, found: list[Violation]) -> None:
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            _qualified_name(str(key), (*path, "labels", key), "label", found)
            if isinstance(value, str) and not is_label_value(value):
                found.append(
                    Violation(
                        (*path, "labels", key),
                        f"{json.dumps(value)} is not a valid label value (at most {LABEL_VALUE_MAX} "
                        "letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
                    )
                )
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        size = 0
        for key, value in annotations.items():
            _qualified_name(str(key).lower(), (*path, "annotations", key), "annotation", found)
            size += len(str(key)) + (len(value.encode()) if isinstance(value, str) else 0)
        if size > _ANNOTATIONS_MAX_BYTES:
            found.append(
                Violation(
                    (*path, "annotations"),
                    f"annotations may hold at most {_ANNOTATIONS_MAX_BYTES} bytes, got {size}",
                )
            )


def _qualified_name(key: str, path: Path, what: str, found: list[Violation]) -> None:
    prefix, slash, name = key.rpartition("/")
    problem = None
    if slash and (not prefix or len(prefix) > _DNS_SUBDOMAIN_MAX or _DNS_SUBDOMAIN.match(prefix) is None):
        problem = f"its prefix {json.dumps(prefix)} must be a DNS subdomain (lowercase, like example.com)"
    elif not name or len(name) > _DNS_LABEL_MAX or _QUALIFIED_NAME_PART.match(name) is None:
        problem = (
            f"the name after any prefix must be 1-{_DNS_LABEL_MAX} letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    if problem is not None:
        found.append(Violation(path, f"{json.dumps(key)} is not a valid {what} key: {problem}"))


def _dns_label(value: str, path: Path, found: list[Violation]) -> None:
    if len(value) > _DNS_LABEL_MAX or _DNS_LABEL.match(value) is None:
        found.append(
            Violation(
                path,
                f"{json.dumps(value)} is not a valid name: at most {_DNS_LABEL_MAX} lowercase letters, "
                "digits and '-', starting and ending with a letter or digit (RFC 1123 label)",
            )
        )


def _dns_subdomain(value: str, path: Path, found: list[Violation]) -> None:
    if len(value) > _DNS_SUBDOMAIN_MAX or _DNS_SUBDOMAIN.match(value) is None:
        found.append(
            Violation(
                path,
                f"{json.dumps(value)} is not a valid name: lowercase letters, digits, '-' and '.', starting "
                "and ending with a letter or digit (RFC 1123 subdomain)",
            )
        )


# --- policy patches, checked when policies load ----------------------------------------------------


def patch_field_problems(
    value: JSON, type_expression: str, version: str | None = None
) -> list[tuple[Path, str]]:
    """Unknown fields in a patch (or defaults, or a JSON-patch value) written for an object of
    ``type_expression`` (``Job``, ``Container``): ``(path inside value, message)`` pairs.

    Only what the policy spells out is checked: computed values (``${{ }}`` strings, ``...${{ }}``
    splices) are judged on the built Job, and strategic-merge directives (``$patch``,
    ``$retainKeys``, ``$setElementOrder/...``, ``$deleteFromPrimitiveList/...``) are not fields.

    ``version`` ``None`` (what policies are checked with when they load) accepts a field any supported
    version has: a policy does not know which version it will run against, and the built Job is
    checked against the configured one exactly."""
    problems: list[tuple[Path, str]] = []
    _walk_patch(value, type_expression, (), _structs(version), problems)
    return problems


def pointer_problems(
    pointer: str, type_expression: str, version: str | None = None
) -> tuple[str | None, str | None]:
    """For a JSON pointer into an object of ``type_expression``: (the type expression it reaches or
    ``None``, the problem with it or ``None``). ``-`` and indexes step into lists; ``version`` as for
    :func:`patch_field_problems`."""
    structs = _structs(version)
    current = type_expression
    if pointer == "":
        return current, None
    for raw in pointer.split("/")[1:]:
        segment = raw.replace("~1", "/").replace("~0", "~")
        if current.startswith("["):
            if segment != "-" and not segment.isdigit():
                return None, f"{json.dumps(segment)} is not a list index"
            current = current[1:-1]
        elif current.startswith("{"):
            current = current[1:-1]
        elif current in structs:
            fields = structs[current]
            if segment not in fields:
                return None, unknown_field_message(segment, current, fields)
            current = fields[segment]
        else:
            return None, None  # a scalar or ``any``: nothing more is known
    return current, None


def _walk_patch(
    value: JSON,
    expression: str,
    path: Path,
    structs: Mapping[str, Mapping[str, str]],
    problems: list[tuple[Path, str]],
) -> None:
    if isinstance(value, str) or value is None:
        return
    if expression.startswith("[") and isinstance(value, list):
        for index, item in enumerate(value):
            _walk_patch(item, expression[1:-1], (*path, index), structs, problems)
    elif expression.startswith("{") and isinstance(value, dict):
        for key, item in value.items():
            _walk_patch(item, expression[1:-1], (*path, key), structs, problems)
    elif expression in structs and isinstance(value, dict):
        fields = structs[expression]
        for key, item in value.items():
            name = str(key)
            if name.startswith("$"):
                continue
            if name not in fields:
                problems.append(((*path, name), unknown_field_message(name, expression, fields)))
            else:
                _walk_patch(item, fields[name], (*path, name), structs, problems)
