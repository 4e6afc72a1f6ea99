"""``secretReferences(podSpec)``: every way a pod spec refers to a Kubernetes Secret, as data.

Guardrails about Secrets ("only these pipelines may use that Secret", "no build may read the
controller's token") are only as good as the list of places they look at, and Kubernetes has many:
env ``valueFrom.secretKeyRef`` and ``envFrom.secretRef`` in every kind of container, ``secret`` and
``projected`` volumes, the credentials of network volumes that the kubelet reads and sends to a
server the pod names (``cephfs``, ``rbd``, ``iscsi``, ``flexVolume``, ``csi``...), and
``imagePullSecrets``. One helper lists them all, so a policy cannot forget one; every field name
here is the Kubernetes API's (core/v1 PodSpec as of v1.31).

Each reference is ``{"secret": name, "keys": [...] | null, "where": "<path>"}``; ``keys`` is the list
of keys the reference reads, or ``null`` when it can read every key of the Secret (``envFrom``, a
volume without ``items``, a driver's credentials).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from engine.model.jsonvalue import JSON

# ``type(x) is dict or isinstance(x, Mapping)``: JSON maps are dicts, and the ABC check alone costs
# more than the rest of the walk over a pod's few hundred env entries.
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# Volume sources whose credentials are a Secret reference: the field holding it, and how it names it.
_CREDENTIAL_SOURCES: dict[str, tuple[str, str]] = {
    "azureFile": ("", "secretName"),
    "cephfs": ("secretRef", "name"),
    "cinder": ("secretRef", "name"),
    "csi": ("nodePublishSecretRef", "name"),
    "flexVolume": ("secretRef", "name"),
    "iscsi": ("secretRef", "name"),
    "rbd": ("secretRef", "name"),
    "scaleIO": ("secretRef", "name"),
    "storageos": ("secretRef", "name"),
}


def secret_references(pod_spec: JSON) -> list[dict[str, JSON]]:
    """Every Secret ``pod_spec`` refers to, in spec order (see the module docstring)."""
    if not (type(pod_spec) is dict or isinstance(pod_spec, Mapping)):
        return []
    return list(_references(pod_spec))


def _references(pod: Mapping[str, JSON]) -> Iterator[dict[str, JSON]]:
    for list_key in _CONTAINER_LISTS:
        for index, container in enumerate(_list(pod.get(list_key))):
            if not (type(container) is dict or isinstance(container, Mapping)):
                continue
            where = f"{list_key}[{_name(container, index)}]"
            # Nearly every entry is a plain value: pick out the few with a valueFrom first.
            env = _list(container.get("env"))
            sourced = [e for e in env if (type(e) is dict or isinstance(e, Mapping)) and e.get("valueFrom")]
            for entry in sourced:
                ref = _get(entry["valueFrom"], "secretKeyRef")
                if type(ref) is dict or isinstance(ref, Mapping):
                    key = ref.get("key")
                    yield _ref(
                        ref.get("name"),
                        [key] if isinstance(key, str) else None,
                        f"{where}.env[{_name(entry, 0)}]",
                    )
            for position, source in enumerate(_list(container.get("envFrom"))):
                ref = _get(source, "secretRef")
                if type(ref) is dict or isinstance(ref, Mapping):
                    yield _ref(ref.get("name"), None, f"{where}.envFrom[{position}]")
    for index, volume in enumerate(_list(pod.get("volumes"))):
        if not (type(volume) is dict or isinstance(volume, Mapping)):
            continue
        where = f"volumes[{_name(volume, index)}]"
        secret = volume.get("secret")
        if type(secret) is dict or isinstance(secret, Mapping):
            yield _ref(secret.get("secretName"), _item_keys(secret), f"{where}.secret")
        projected = volume.get("projected")
        if type(projected) is dict or isinstance(projected, Mapping):
            for position, source in enumerate(_list(projected.get("sources"))):
                ref = _get(source, "secret")
                if type(ref) is dict or isinstance(ref, Mapping):
                    yield _ref(
                        ref.get("name"), _item_keys(ref), f"{where}.projected.sources[{position}].secret"
                    )
        for source_key, (holder, field) in _CREDENTIAL_SOURCES.items():
            source = volume.get(source_key)
            if not (type(source) is dict or isinstance(source, Mapping)):
                continue
            ref = source.get(holder) if holder else source
            if (type(ref) is dict or isinstance(ref, Mapping)) and ref.get(field) is not None:
                yield _ref(ref.get(field), None, f"{where}.{source_key}")
    for index, pull_secret in enumerate(_list(pod.get("imagePullSecrets"))):
        if type(pull_secret) is dict or isinstance(pull_secret, Mapping):
            yield _ref(pull_secret.get("name"), None, f"imagePullSecrets[{index}]")


def _ref(name: JSON, keys: list[str] | None, where: str) -> dict[str, JSON]:
    return {"secret": name if isinstance(name, str) else "", "keys": keys, "where": where}


def _item_keys(source: Mapping[str, JSON]) -> list[str] | None:
    items = _list(source.get("items"))
    if not items:
        return None
    keys = [item.get("key") for item in items if (type(item) is dict or isinstance(item, Mapping))]
    return [key for key in keys if isinstance(key, str)] if all(isinstance(k, str) for k in keys) else None


def _get(value: JSON, *path: str) -> JSON:
    for key in path:
        if not (type(value) is dict or isinstance(value, Mapping)):
            return None
        value = value.get(key)
    return value


def _list(value: JSON) -> list[JSON]:
    return value if isinstance(value, list) else []


def _name(item: JSON, index: int) -> str:
    name = item.get("name") if (type(item) is dict or isinstance(item, Mapping)) else None
    return name if isinstance(name, str) and name else str(index)
