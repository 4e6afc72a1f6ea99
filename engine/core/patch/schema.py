"""Which fields a strategic merge patch merges by key, as Kubernetes v1.20 declares them.

Kubernetes decides how a strategic merge patch treats a list from the Go struct tags of its API types
(``patchStrategy:"merge"`` and ``patchMergeKey:"name"``): tagged lists merge element by element,
every other list is replaced whole. The tables below restate those tags for ``batch/v1`` Job and the
types it contains, as of Kubernetes v1.20.2 (the API server this project targets), so the engine
produces what ``kubectl patch --type strategic`` would. Only fields that matter to the merge are
listed: keyed and set-like lists, every atomic list (so a reader sees it is atomic on purpose), and
the object fields that lead to them. A field missing here merges like a plain JSON map, or is
replaced whole if it is a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """How a strategic merge treats one field of an object.

    ``merge_list`` marks a list with ``patchStrategy: merge``: objects in it are matched by
    ``merge_key``; without a merge key the list holds primitives merged as an ordered set.
    ``retain_keys`` mirrors the ``retainKeys`` strategy (it only matters to patch generators; a
    ``$retainKeys`` directive is honoured wherever it appears). ``schema`` describes the value when
    it is an object, or each element of a list of objects.
    """

    merge_list: bool = False
    merge_key: str | None = None
    retain_keys: bool = False
    schema: TypeSchema | None = None


@dataclass(frozen=True, slots=True)
class TypeSchema:
    """One Kubernetes object type, reduced to what a strategic merge needs to know about it."""

    name: str
    fields: Mapping[str, FieldSchema]

    def field(self, key: str) -> FieldSchema | None:
        """The declared treatment of ``key``, or ``None`` for a field merged as plain JSON."""
        return self.fields.get(key)


def _type(name: str, **fields: FieldSchema) -> TypeSchema:
    return TypeSchema(name, MappingProxyType(fields))


def _object(schema: TypeSchema) -> FieldSchema:
    """An object field whose own fields need a schema."""
    return FieldSchema(schema=schema)


def _atomic(schema: TypeSchema | None = None) -> FieldSchema:
    """A list without a patch strategy: a patch replaces it whole."""
    return FieldSchema(schema=schema)


def _keyed(merge_key: str, schema: TypeSchema | None = None, *, retain_keys: bool = False) -> FieldSchema:
    """A list of objects merged element by element, matched on ``merge_key``."""
    return FieldSchema(merge_list=True, merge_key=merge_key, retain_keys=retain_keys, schema=schema)


def _set() -> FieldSchema:
    """A list of primitives with ``patchStrategy: merge``: patch values are added, order kept."""
    return FieldSchema(merge_list=True)


OBJECT_META = _type(
    "ObjectMeta",
    ownerReferences=_keyed("uid"),
    finalizers=_set(),
    managedFields=_atomic(),
)

LABEL_SELECTOR = _type("LabelSelector", matchExpressions=_atomic())

_EXEC_ACTION = _type("ExecAction", command=_atomic())
_HTTP_GET_ACTION = _type("HTTPGetAction", httpHeaders=_atomic())
_HANDLER = _type("Handler", exec=_object(_EXEC_ACTION), httpGet=_object(_HTTP_GET_ACTION))
_PROBE = _type("Probe", exec=_object(_EXEC_ACTION), httpGet=_object(_HTTP_GET_ACTION))
_LIFECYCLE = _type("Lifecycle", postStart=_object(_HANDLER), preStop=_object(_HANDLER))
_CAPABILITIES = _type("Capabilities", add=_atomic(), drop=_atomic())
_SECURITY_CONTEXT = _type("SecurityContext", capabilities=_object(_CAPABILITIES))


def _container_type(name: str, *, ports: FieldSchema) -> TypeSchema:
    return _type(
        name,
        command=_atomic(),
        args=_atomic(),
        ports=ports,
        envFrom=_atomic(),
        env=_keyed("name"),
        volumeMounts=_keyed("mountPath"),
        volumeDevices=_keyed("devicePath"),
        livenessProbe=_object(_PROBE),
        readinessProbe=_object(_PROBE),
        startupProbe=_object(_PROBE),
        lifecycle=_object(_LIFECYCLE),
        securityContext=_object(_SECURITY_CONTEXT),
    )


CONTAINER = _container_type("Container", ports=_keyed("containerPort"))
EPHEMERAL_CONTAINER = _container_type("EphemeralContainer", ports=_atomic())
"""In v1.20 ``EphemeralContainerCommon.ports`` has no patch strategy (ports are not allowed there)."""

_KEY_TO_PATH_ITEMS = _type("ItemsSource", items=_atomic())
_PVC_SPEC = _type("PersistentVolumeClaimSpec", accessModes=_atomic(), selector=_object(LABEL_SELECTOR))
_PVC_TEMPLATE = _type("PersistentVolumeClaimTemplate", metadata=_object(OBJECT_META), spec=_object(_PVC_SPEC))
_EPHEMERAL_VOLUME = _type("EphemeralVolumeSource", volumeClaimTemplate=_object(_PVC_TEMPLATE))

VOLUME = _type(
    "Volume",
    secret=_object(_KEY_TO_PATH_ITEMS),
    configMap=_object(_KEY_TO_PATH_ITEMS),
    downwardAPI=_object(_KEY_TO_PATH_ITEMS),
    projected=_object(_type("ProjectedVolumeSource", sources=_atomic())),
    iscsi=_object(_type("ISCSIVolumeSource", portals=_atomic())),
    rbd=_object(_type("RBDVolumeSource", monitors=_atomic())),
    cephfs=_object(_type("CephFSVolumeSource", monitors=_atomic())),
    fc=_object(_type("FCVolumeSource", targetWWNs=_atomic(), wwids=_atomic())),
    ephemeral=_object(_EPHEMERAL_VOLUME),
)

_NODE_SELECTOR = _type("NodeSelector", nodeSelectorTerms=_atomic())
_NODE_AFFINITY = _type(
    "NodeAffinity",
    requiredDuringSchedulingIgnoredDuringExecution=_object(_NODE_SELECTOR),
    preferredDuringSchedulingIgnoredDuringExecution=_atomic(),
)
_POD_AFFINITY = _type(
    "PodAffinity",
    requiredDuringSchedulingIgnoredDuringExecution=_atomic(),
    preferredDuringSchedulingIgnoredDuringExecution=_atomic(),
)
_AFFINITY = _type(
    "Affinity",
    nodeAffinity=_object(_NODE_AFFINITY),
    podAffinity=_object(_POD_AFFINITY),
    podAntiAffinity=_object(_POD_AFFINITY),
)
_POD_SECURITY_CONTEXT = _type("PodSecurityContext", supplementalGroups=_atomic(), sysctls=_atomic())
_POD_DNS_CONFIG = _type("PodDNSConfig", nameservers=_atomic(), searches=_atomic(), options=_atomic())

POD_SPEC = _type(
    "PodSpec",
    volumes=_keyed("name", VOLUME, retain_keys=True),
    initContainers=_keyed("name", CONTAINER),
    containers=_keyed("name", CONTAINER),
    ephemeralContainers=_keyed("name", EPHEMERAL_CONTAINER),
    securityContext=_object(_POD_SECURITY_CONTEXT),
    imagePullSecrets=_keyed("name"),
    affinity=_object(_AFFINITY),
    tolerations=_atomic(),
    hostAliases=_keyed("ip", _type("HostAlias", hostnames=_atomic())),
    dnsConfig=_object(_POD_DNS_CONFIG),
    readinessGates=_atomic(),
    topologySpreadConstraints=_keyed(
        "topologyKey", _type("TopologySpreadConstraint", labelSelector=_object(LABEL_SELECTOR))
    ),
)

POD_TEMPLATE_SPEC = _type("PodTemplateSpec", metadata=_object(OBJECT_META), spec=_object(POD_SPEC))

JOB_SPEC = _type("JobSpec", selector=_object(LABEL_SELECTOR), template=_object(POD_TEMPLATE_SPEC))

JOB = _type(
    "Job",
    metadata=_object(OBJECT_META),
    spec=_object(JOB_SPEC),
    status=_object(_type("JobStatus", conditions=_keyed("type"))),
)

_BY_KIND: Mapping[str, TypeSchema] = MappingProxyType(
    {"Job": JOB, "PodSpec": POD_SPEC, "Container": CONTAINER, "EphemeralContainer": EPHEMERAL_CONTAINER}
)


def schema_for(kind: str) -> TypeSchema:
    """The schema a rule's patch targets, by kind name; unknown kinds are a clear ``ValueError``."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        known = ", ".join(sorted(_BY_KIND))
        raise ValueError(f"no strategic merge schema for kind {kind!r} (known: {known})") from None
