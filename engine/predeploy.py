"""The pre-deploy check: validate what a rendered chart would hand the controller, before it deploys.

``helm template ... | engine validate --from-manifests -`` reads the rendered objects and does what
``engine run`` does at start-up with them, without a cluster: for every controller container (one
whose args start with ``run``) it finds the config file the container would read (env ``CONFIG``, the
volume mounted there, the ConfigMap behind it), resolves it with the container's environment exactly
as the controller would (flag > env > file; env from literal values and from the Secrets and
ConfigMaps it loads, when they are rendered too), checks the keys the controller requires, and loads
the policies mounted at each ``--policies`` directory after the default set. Every problem is one line
naming the object and key (``ConfigMap ci-config config.yaml:3:1: max-inflight: unknown key``).

A Secret or ConfigMap that is not in the manifests (``agentStackSecret``, ``policiesConfigMap``) cannot
be checked; the check says so instead of guessing, and treats the keys it would provide as unknown
(the controller's required-key check is then left to start-up).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.core.compiler import PolicyError
from engine.inputs import InputError, read_config_yaml
from engine.model.config import FLAG_KEYS, ConfigError, env_var_name, resolve_config
from engine.policy.loader import POLICY_SUFFIXES, load_policy_texts

CONFIG_ENV = "CONFIG"
_ENV_KEYS = {env_var_name(key) for key in FLAG_KEYS}


@dataclass
class PredeployReport:
    """What the check found: problems (exit 2 when any), notes (what could not be checked), and one
    summary line per controller checked."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.checked)


def check_manifests(text: str, source: str) -> PredeployReport:
    """Check the controller config and policies in a stream of rendered Kubernetes objects."""
    report = PredeployReport()
    try:
        objects = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        report.problems.append(f"{where}: not valid YAML: {exc.problem}")
        return report
    except yaml.YAMLError as exc:
        report.problems.append(f"{source}: not valid YAML: {exc}")
        return report
    index = _Objects(objects)
    controllers = list(_controller_containers(objects))
    if not controllers:
        report.problems.append(
            f"{source}: no controller found (a Deployment container whose args start with `run`)"
        )
    for deployment, container in controllers:
        _check_controller(deployment, container, index, report)
    return report


class _Objects:
    """The rendered objects by kind and name (namespaces are ignored: one release, one namespace)."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self._by_kind: dict[tuple[str, str], Mapping[str, Any]] = {}
        for obj in objects:
            name = (obj.get("metadata") or {}).get("name")
            if isinstance(name, str):
                self._by_kind[(str(obj.get("kind")), name)] = obj

    def get(self, kind: str, name: str) -> Mapping[str, Any] | None:
        return self._by_kind.get((kind, name))


def _controller_containers(
    objects: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            args = container.get("args") or []
            if isinstance(container, dict) and args and args[0] == "run":
                yield obj, container


def _check_controller(
    deployment: Mapping[str, Any],
    container: Mapping[str, Any],
    index: _Objects,
    report: PredeployReport,
) -> None:
    name = f"Deployment {deployment['metadata'].get('name')}"
    pod = deployment["spec"]["template"]["spec"]
    env, complete = _environment(container, index, report, name)
    args = [str(arg) for arg in container.get("args") or []]
    flags, policy_dirs = _flags(args[1:])
    config_path = env.get(CONFIG_ENV) or _flag_value(args[1:], ("--config", "-f"))
    file_data: dict[str, object] | None = None
    config_source = f"{name}: no config file"
    if config_path:
        found = _mounted_file(pod, container, config_path, index)
        if isinstance(found, str):
            report.problems.append(f"{name}: config file {config_path}: {found}")
            return
        config_map, key, text = found
        config_source = f"ConfigMap {config_map} {key}"
        try:
            file_data = read_config_yaml(text, config_source)
        except InputError as exc:
            report.problems.extend(exc.problems)
            return
    try:
        config = resolve_config(file_data, env, flags, config_source)
    except ConfigError as exc:
        report.problems.extend(exc.problems)
        return
    missing = config.missing_required_for_controller()
    if missing and complete:
        report.problems.extend(f"{config_source}: {problem}" for problem in missing)
    elif missing:
        report.notes.append(
            f"{name}: not checked whether the Secrets or ConfigMaps that are not rendered supply "
            + ", ".join(problem.split(":")[0] for problem in missing)
        )
    texts: list[tuple[str, str]] = []
    for directory in policy_dirs:
        found_files = _mounted_directory(pod, container, directory, index)
        if isinstance(found_files, str):
            report.notes.append(
                f"{name}: policies at {directory}: {found_files}; only the default set was checked"
            )
            continue
        texts.extend(found_files)
    try:
        policies = load_policy_texts(texts, profile=config.profile)
    except PolicyError as exc:
        report.problems.extend(exc.problems)
        return
    report.checked.append(
        f"{name}: config {config_source} is valid for the controller (id {config.controller_id()}, "
        f"mode {config.mode().name}); {len(policies)} policies load ({len(texts)} files mounted)"
    )


def _environment(
    container: Mapping[str, Any], index: _Objects, report: PredeployReport, owner: str
) -> tuple[dict[str, str], bool]:
    """The container's environment as far as the manifests tell, and whether they tell all of it."""
    env: dict[str, str] = {}
    complete = True
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = source.get(key)
            if not isinstance(ref, dict):
                continue
            obj = index.get(kind, str(ref.get("name")))
            if obj is None:
                complete = False
                report.notes.append(f"{owner}: {kind} {ref.get('name')} is not in the manifests")
                continue
            for name, value in _data(obj, kind, report).items():
                env[prefix + name] = value
    for variable in container.get("env") or []:
        name = variable.get("name")
        if not isinstance(name, str):
            continue
        if "value" in variable:
            env[name] = str(variable.get("value") or "")
        elif variable.get("valueFrom") is not None and (name in _ENV_KEYS or name == CONFIG_ENV):
            complete = False
            report.notes.append(f"{owner}: env {name} comes from a reference the check cannot follow")
    return env, complete


def _data(obj: Mapping[str, Any], kind: str, report: PredeployReport) -> dict[str, str]:
    data: dict[str, str] = {}
    for name, value in (obj.get("data") or {}).items():
        if kind == "Secret":
            try:
                data[str(name)] = base64.b64decode(str(value), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                report.problems.append(f"Secret {obj['metadata']['name']} {name}: not base64 text")
        else:
            data[str(name)] = str(value)
    for name, value in (obj.get("stringData") or {}).items():
        data[str(name)] = str(value)
    return data


def _flags(args: Sequence[str]) -> tuple[dict[str, object], list[str]]:
    """Config flags (``--max-in-flight 5`` or ``--max-in-flight=5``) and ``--policies`` directories."""
    flags: dict[str, object] = {}
    policy_dirs: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        name, has_value, value = arg.removeprefix("--").partition("=")
        if arg.startswith("--") and not has_value:
            following = args[position + 1] if position + 1 < len(args) else "--"
            if following.startswith("--"):
                value = "true"  # a switch such as --debug
            else:
                value = following
                position += 1
        if name == "policies":
            policy_dirs.append(value)
        elif arg.startswith("--") and name in FLAG_KEYS:
            flags[name] = value
        position += 1
    return flags, policy_dirs


def _flag_value(args: Sequence[str], names: tuple[str, ...]) -> str | None:
    for position, arg in enumerate(args):
        if arg in names and position + 1 < len(args):
            return args[position + 1]
    return None


def _volume(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for volume in pod.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("name") == name:
            return volume
    return None


def _mounted_file(
    pod: Mapping[str, Any], container: Mapping[str, Any], path: str, index: _Objects
) -> tuple[str, str, str] | str:
    """``(ConfigMap name, key, text)`` of the file at ``path`` in the container, or why not."""
    for mount in container.get("volumeMounts") or []:
        mount_path = str(mount.get("mountPath", "")).rstrip("/")
        sub_path = mount.get("subPath")
        if sub_path and mount_path == path:
            key = str(sub_path)
        elif not sub_path and posixpath.dirname(path) == mount_path:
            key = posixpath.basename(path)
        else:
            continue
        volume = _volume(pod, str(mount.get("name")))
        config_map = (volume or {}).get("configMap")
        if not isinstance(config_map, dict):
            return "it is not mounted from a ConfigMap"
        obj = index.get("ConfigMap", str(config_map.get("name")))
        if obj is None:
            return f"ConfigMap {config_map.get('name')} is not in the manifests"
        data = obj.get("data") or {}
        if key not in data:
            return f"ConfigMap {config_map.get('name')} has no key {key}"
        return str(config_map.get("name")), key, str(data[key])
    return "no volume is mounted there"


def _mounted_directory(
    pod: Mapping[str, Any], container: Mapping[str, Any], path: str, index: _Objects
) -> list[tuple[str, str]] | str:
    """``(file label, text)`` of each policy file in the directory, as the loader would read them."""
    for mount in container.get("volumeMounts") or []:
        if str(mount.get("mountPath", "")).rstrip("/") != path.rstrip("/") or mount.get("subPath"):
            continue
        volume = _volume(pod, str(mount.get("name")))
        config_map = (volume or {}).get("configMap")
        if not isinstance(config_map, dict):
            return "not mounted from a ConfigMap"
        name = str(config_map.get("name"))
        obj = index.get("ConfigMap", name)
        if obj is None:
            return f"ConfigMap {name} is not in the manifests"
        return [
            (f"ConfigMap {name} {key}", str(text))
            for key, text in sorted((obj.get("data") or {}).items())
            if not str(key).startswith(".") and str(key).endswith(POLICY_SUFFIXES)
        ]
    return "no volume is mounted there"
