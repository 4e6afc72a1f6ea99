"""The controller config: every key of upstream agent-stack-k8s v0.20.2 (reference §1.3-1.8), plus
``pod-pending-timeout``, ``default-termination-grace-period-seconds``, ``http-timeout`` and
``pagination-depth-limit`` from later releases (§11.2).

This module is pure: it validates data someone else read (a YAML file, the environment, CLI flags)
and never reads anything itself.

Keys, types and defaults are upstream's, spelled exactly as upstream's file keys: kebab-case at the
top level and in ``agent-config`` (where a few are camelCase: ``hooksVolume``, ``pluginsVolume``,
``signingJWKSVolume``, ``verificationJWKSVolume``), camelCase in ``default-*-params``. Python
attributes are the snake_case of the same names.

Reading rules (reference §1.2 and the [BUG] fixes of later releases):

* Strict: an unknown key anywhere, including inside the Kubernetes objects (``pod-spec-patch``,
  volumes, ``envFrom``), is an error naming its full path (``agent-config.no-htp2: unknown key``).
  Every problem is reported, one ``SOURCE: key.path: message`` line each (:class:`ConfigError`).
* A key whose value is ``null`` is treated as absent (its default applies).
* Durations are Go duration strings (``5m``, ``1h30m``, ``300ms``) or a number of seconds.
  ``poll-interval`` is at least 1s (upstream clamped the wrong way); ``stale-job-data-timeout``,
  ``http-timeout``, ``image-pull-backoff-grace-period`` and ``job-cancel-checker-poll-interval`` fall
  back to their defaults when ``<= 0``; ``job-creation-concurrency <= 0`` and
  ``pagination-depth-limit <= 0`` become 5. Other durations must not be negative.
* Lists of strings (``tags``, ``additional-redacted-vars``, ``experiment``...) also accept one
  comma-separated string, as upstream's decoder does (``TAGS=queue=a,os=linux``). ``tags`` entries
  must be ``key=value`` and include ``queue``.
* Booleans and integers accept their string forms (``"true"``, ``"25"``), as environment values are
  strings; a boolean is never accepted as an integer.
* ``pod-spec-patch`` may not set a container's ``command`` or ``args`` (upstream's rule); volumes
  must have a ``name`` (the policies mount them by name).
* Precedence (:func:`resolve_config`): CLI flag > environment variable > file > default, for the
  keys that have a flag (:data:`FLAG_KEYS`); the environment variable is the key upper-cased with
  ``-`` → ``_`` (``max-in-flight`` → ``MAX_IN_FLIGHT``), no prefix; an empty variable counts as unset.
  The structured keys come only from the file.

What policies see as ``config`` (:meth:`ControllerConfig.expression_view`):

* every key in lowerCamelCase: each ``-`` is dropped and the next letter upper-cased
  (``agent-token-secret`` → ``agentTokenSecret``, ``agent-config`` → ``agentConfig``, ``no-http2`` →
  ``noHttp2``, ``signing-jwks-file`` → ``signingJwksFile``, ``pod-spec-patch`` → ``podSpecPatch``);
  keys that are already camelCase (``hooksVolume``, ``signingJWKSVolume``, ``cleanFlags``) unchanged;
* durations as float seconds (``jobTtl: 600.0``), lists as lists;
* Kubernetes objects (volumes, ``envFrom``, ``gitCredentialsSecret``, ``podSpecPatch``) and the
  ``labels``/``annotations`` maps exactly as given: their keys are not config keys;
* an optional value or block that is not set is **absent** (so ``has(config.agentConfig)`` tells
  whether the block was configured); keys with a default are always present;
* ``id`` is the *effective* controller ID: the configured one, else ``<namespace>.<queue>``
  (:mod:`engine.model.controller_id`), so a dry run labels its Job as the controller does;
* the API tokens (``buildkite-token``, ``integration-test-buildkite-token``) are **not** there: a
  policy that interpolated one into a pod, a warning or a denial message would put the secret where
  pipeline authors read it (the job's log, the pod spec).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from engine.model.controller_id import controller_id
from engine.model.durations import DurationError, format_duration, parse_duration
from engine.model.image_ref import has_upper_case_name, parse_image_reference
from engine.model.jsonvalue import JSON, PathSegment, render_path
from engine.model.kube_api import DEFAULT_KUBERNETES_VERSION, KUBERNETES_VERSIONS, version_key
from engine.model.plugin import (
    check_plugin,
    describe_value,
    unknown_field_message,
    unknown_plugin_field_problems,
)
from engine.model.profiles import DEFAULT_PROFILE, PROFILES, UPSTREAM_V047
from engine.model.quantity import QuantityError, parse_quantity
from engine.model.tags import parse_tags

DEFAULT_IMAGE = "ghcr.io/buildkite/agent:3.87.1"
"""The agent image upstream v0.20.2 defaults to (it links agent v3.87.1)."""

DEFAULT_GRAPHQL_ENDPOINT = "https://graphql.buildkite.com/v1"
INTERPOSERS = ("", "buildkite", "vector", "legacy")
"""Accepted ``interposer`` values; ``""`` means the default, ``buildkite``."""

REQUIRED_FOR_CONTROLLER = ("agent-token-secret", "buildkite-token", "image", "namespace", "org")
"""Keys the controller cannot run without in the GraphQL mode (``engine test`` does not need them)."""

# --- modes: where the controller gets its jobs (GraphQL with an API token, or the Stacks API with the
# agent token alone). The keys, the selection rule and the per-mode checks live together here.

BUILDKITE_APIS = ("", "graphql", "stacks")
"""Accepted ``buildkite-api`` values; ``""`` chooses by the other keys (:meth:`ControllerConfig.mode`)."""
GRAPHQL_ONLY_KEYS = ("buildkite-token", "org", "cluster-uuid", "graphql-endpoint")
"""Keys only the GraphQL mode reads; setting one in the Stacks API mode is an error, not a no-op."""
STACKS_ONLY_KEYS = (
    "queue",
    "reservation-expiry-seconds",
    "pagination-page-size",
    "job-acquisition-tokens",
    "job-acquisition-token-lifetime-seconds",
)
"""Keys only the Stacks API mode reads; setting one in the GraphQL mode is an error."""
DEFAULT_STACK_KEY = "agent-stack-k8s"
"""The stack key when ``id`` is empty (upstream's default)."""
DEFAULT_QUEUE = "_default"
"""The Stacks API's name for a cluster's default queue (``~`` and ``-`` in ``queue`` mean it too)."""
_DEFAULT_QUEUE_ALIASES = ("~", "-", DEFAULT_QUEUE)
REQUIRED_FOR_STACKS = ("agent-token-secret", "image", "namespace")
"""Keys the controller cannot run without in the Stacks API mode: the agent token is its only credential."""


def _set_in(key: str, condition: Mapping[str, JSON]) -> dict[str, JSON]:
    return {"required": [key], "properties": {key: dict(condition)}}


_GRAPHQL_SELECTED: dict[str, JSON] = {
    "anyOf": [
        _set_in("buildkite-api", {"const": "graphql"}),
        {
            "properties": {"buildkite-api": {"const": ""}},
            "anyOf": [_set_in("buildkite-token", {"minLength": 1}), _set_in("org", {"minLength": 1})],
        },
    ]
}
"""JSON-schema form of :meth:`ControllerConfig.mode` choosing GraphQL (an absent key satisfies
``properties``, so a file without ``buildkite-api`` chooses by the token and ``org``)."""


@dataclass(frozen=True)
class ControllerMode:
    """One way the controller gets its jobs from Buildkite, and the config keys it cannot run without.

    ``selected_by`` is a JSON-schema condition on the config file that holds when the file is in this
    mode (``{}``: always); the chart's values schema is generated from it (``scripts/gen_chart_schema.py``),
    so adding a mode here is what makes ``helm template`` require that mode's keys. ``forbidden`` are
    the other mode's keys, refused when set (a string key counts as set when it is not empty).
    """

    name: str
    description: str
    required: tuple[str, ...]
    selected_by: Mapping[str, JSON]
    forbidden: tuple[str, ...] = ()
    checks: Mapping[str, JSON] = dataclasses.field(default_factory=dict)
    """More JSON-schema conditions a file in this mode must meet (the chart schema adds them)."""


CONTROLLER_MODES: tuple[ControllerMode, ...] = (
    ControllerMode(
        "graphql",
        "polls Buildkite's GraphQL API for scheduled jobs with an API token (buildkite-token)",
        REQUIRED_FOR_CONTROLLER,
        _GRAPHQL_SELECTED,
        STACKS_ONLY_KEYS,
        {
            "properties": {
                "tags": {
                    "anyOf": [
                        {"type": "array", "contains": {"type": "string", "pattern": "^queue="}},
                        {"type": "string", "pattern": r"(^|,)\s*queue="},
                    ],
                    "description": "the GraphQL mode polls by the queue tag: tags must include queue",
                }
            }
        },
    ),
    ControllerMode(
        "stacks",
        "lists, reserves and fails jobs through Buildkite's Stacks API with the cluster's agent token alone",
        REQUIRED_FOR_STACKS,
        {"not": _GRAPHQL_SELECTED},
        GRAPHQL_ONLY_KEYS,
    ),
)
"""Every mode; the first whose condition holds is the config's mode (:meth:`ControllerConfig.mode`)."""
MODES: Mapping[str, ControllerMode] = {mode.name: mode for mode in CONTROLLER_MODES}
_MODE_TITLES = {"graphql": "GraphQL", "stacks": "Stacks API"}

NO_COMMAND_MODIFICATION = (
    "modifying container commands or args via podSpecPatch is not supported. "
    "Specify the command in the job's command field instead"
)
REDACTED = "[REDACTED]"
_SECRET_KEYS = ("buildkite-token", "integration-test-buildkite-token")


class ConfigError(ValueError):
    """A config that cannot be used. Each problem is one ``SOURCE: key.path: message`` line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --- value types ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """Field metadata: the type name the generated reference table shows."""

    label: str


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "expected an integer")
    return value


def _string_list(value: Any) -> Any:
    """Upstream decodes ``"a,b"`` into ``["a", "b"]`` wherever a list of strings is expected."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


_GO_DURATION_PATTERN = r"^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$"

Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _GO_DURATION_PATTERN},
                {"type": "number", "description": "seconds"},
            ]
        }
    ),
    _Kind("duration"),
]
"""Seconds, read from a Go duration string or a number of seconds; written back as a Go string."""

Integer = Annotated[int, BeforeValidator(_integer), _Kind("integer")]
StringList = Annotated[
    tuple[str, ...],
    BeforeValidator(_string_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "string", "description": "comma-separated"},
            ]
        }
    ),
    _Kind("list of strings"),
]


def _kubernetes_check(kind: str) -> Callable[[Any], Any]:
    """An after-validator checking a value against Kubernetes' own type for ``kind``.

    The checks are those of the kubernetes plugin (``engine.model.plugin``, generated from the
    Kubernetes definitions): the value is placed where the plugin has a field of that type, and the
    problems found there are reported relative to the value itself.
    """
    wrap, prefix = _KUBERNETES_SLOTS[kind]

    def check(value: Any) -> Any:
        problems = _kubernetes_problems(wrap(value), prefix)
        if kind == "Volume" and isinstance(value, dict) and not value.get("name"):
            problems.append((".name", "required: a volume needs a name to be mounted"))
        if problems:
            raise PydanticCustomError(
                "kubernetes_object", "invalid Kubernetes object", {"problems": problems}
            )
        return value

    return check


_KUBERNETES_SLOTS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "PodSpec": (lambda value: {"podSpecPatch": value}, "podSpecPatch"),
    "Volume": (lambda value: {"checkout": {"gitMirrors": {"volume": value}}}, "checkout.gitMirrors.volume"),
    "SecretVolumeSource": (
        lambda value: {"checkout": {"gitCredentialsSecret": value}},
        "checkout.gitCredentialsSecret",
    ),
    "[EnvFromSource]": (lambda value: {"gitEnvFrom": list(value)}, "gitEnvFrom"),
    "[VolumeMount]": (lambda value: {"extraVolumeMounts": list(value)}, "extraVolumeMounts"),
    "ResourceRequirements": (
        lambda value: {"podSpec": {"containers": [{"name": "c", "resources": value}]}},
        "podSpec.containers[0].resources",
    ),
}
_PROBLEM = re.compile(r'^((?:\.[^.\[\]:"]+|\[\d+\]|\["[^"]*"\])*): (.*)$', re.DOTALL)


def _kubernetes_problems(document: Any, prefix: str) -> list[tuple[str, str]]:
    """``(sub-path, message)`` pairs for the value at ``prefix`` inside ``document``."""
    found: list[tuple[str, str]] = []
    for problem in check_plugin(document, head=True):
        match = _PROBLEM.match(problem.removeprefix(prefix))
        found.append((match.group(1), match.group(2)) if match else ("", problem))
    found.extend(
        (path.removeprefix(prefix), message.replace("unknown field", "unknown key", 1))
        for path, message in unknown_plugin_field_problems(document, head=True)
    )
    return found


_KUBERNETES_REF = "x-kubernetes-definition"
"""Placeholder for ``$ref: #/$defs/<name>`` (pydantic resolves real ``$ref`` s itself); see
:func:`config_json_schema`."""

Volume = Annotated[
    dict[str, JSON],
    AfterValidator(_kubernetes_check("Volume")),
    WithJsonSchema(
        {
            _KUBERNETES_REF: "Volume",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
        }
    ),
    _Kind("Kubernetes Volume"),
]
_NO_COMMAND_MODIFICATION_SCHEMA: dict[str, JSON] = {
    "properties": {
        "containers": {
            "items": {
                "properties": {"command": {"maxItems": 0}, "args": {"maxItems": 0}},
                "description": NO_COMMAND_MODIFICATION,
            }
        }
    }
}
PodSpec = Annotated[
    dict[str, JSON],
    AfterValidator(_kubernetes_check("PodSpec")),
    WithJsonSchema({_KUBERNETES_REF: "PodSpec", **_NO_COMMAND_MODIFICATION_SCHEMA}),
    _Kind("Kubernetes PodSpec"),
]
SecretVolumeSource = Annotated[
    dict[str, JSON],
    AfterValidator(_kubernetes_check("SecretVolumeSource")),
    WithJsonSchema({_KUBERNETES_REF: "SecretVolumeSource"}),
    _Kind("Kubernetes SecretVolumeSource"),
]
EnvFromList = Annotated[
    tuple[dict[str, JSON], ...],
    AfterValidator(_kubernetes_check("[EnvFromSource]")),
    WithJsonSchema({"type": "array", "items": {_KUBERNETES_REF: "EnvFromSource"}}),
    _Kind("list of Kubernetes EnvFromSource"),
]
VolumeMountList = Annotated[
    tuple[dict[str, JSON], ...],
    AfterValidator(_kubernetes_check("[VolumeMount]")),
    WithJsonSchema({"type": "array", "items": {_KUBERNETES_REF: "VolumeMount"}}),
    _Kind("list of Kubernetes VolumeMount"),
]
ResourceRequirements = Annotated[
    dict[str, JSON],
    AfterValidator(_kubernetes_check("ResourceRequirements")),
    WithJsonSchema({_KUBERNETES_REF: "ResourceRequirements"}),
    _Kind("Kubernetes ResourceRequirements"),
]
KUBERNETES_TYPES = (
    "PodSpec",
    "Volume",
    "SecretVolumeSource",
    "EnvFromSource",
    "VolumeMount",
    "ResourceRequirements",
)
"""The Kubernetes definitions the config schema refers to (``#/$defs/<name>``)."""


def _interposer(value: Any) -> Any:
    if isinstance(value, str) and value not in INTERPOSERS:
        valid = ", ".join(json.dumps(v) for v in sorted(INTERPOSERS))
        shown = json.dumps(value, ensure_ascii=False)
        raise ValueError(f"invalid command interposer {shown} (valid: {valid})")
    return value


Interposer = Annotated[
    str,
    AfterValidator(_interposer),
    WithJsonSchema({"type": "string", "enum": list(INTERPOSERS)}),
    _Kind("interposer: buildkite, vector or legacy"),
]


def _buildkite_api(value: Any) -> Any:
    if isinstance(value, str) and value not in BUILDKITE_APIS:
        valid = ", ".join(json.dumps(v) for v in BUILDKITE_APIS if v)
        raise ValueError(f"unknown Buildkite API {json.dumps(value, ensure_ascii=False)} (valid: {valid})")
    return value


BuildkiteApi = Annotated[
    str,
    AfterValidator(_buildkite_api),
    WithJsonSchema({"type": "string", "enum": list(BUILDKITE_APIS)}),
    _Kind("stacks, graphql or empty"),
]


def _kubernetes_version(value: Any) -> Any:
    """``1.20``, ``"1.20"``, ``"v1.20.2"`` -> ``"1.20"``; a YAML ``1.20`` arrives as the float 1.2."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value:.2f}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        normalised = value.removeprefix("v")
        parts = normalised.split(".")
        if len(parts) >= 2:
            normalised = ".".join(parts[:2])
        if normalised in KUBERNETES_VERSIONS:
            return normalised
        supported = ", ".join(KUBERNETES_VERSIONS)
        raise ValueError(f"unsupported Kubernetes version {json.dumps(value)} (supported: {supported})")
    return value


KubernetesVersion = Annotated[
    str,
    BeforeValidator(_kubernetes_version),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": "^v?("
                    + "|".join(re.escape(v) for v in KUBERNETES_VERSIONS)
                    + r")(\.[0-9]+)?$",
                },
                {"type": "number", "enum": [float(v) for v in KUBERNETES_VERSIONS]},
            ]
        }
    ),
    _Kind(f"Kubernetes version: {', '.join(KUBERNETES_VERSIONS)}"),
]


def _at_least(minimum: float) -> AfterValidator:
    return AfterValidator(lambda value: max(value, minimum))


def _default_unless_positive(default: float) -> AfterValidator:
    return AfterValidator(lambda value: value if value > 0 else default)


def _not_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _graphql_endpoint(value: str) -> str:
    return value or DEFAULT_GRAPHQL_ENDPOINT


_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*\.?")


def _host_port(value: str) -> str:
    """Upstream's ``hostname_port`` rule: ``host:port`` with an RFC 1123 host (may be empty) and a
    port 1-65535; a bracketed IPv6 host (``[::1]:6060``) is also accepted."""
    if value == "":
        return value
    host, separator, port = value.rpartition(":")
    valid_port = port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
    if host.startswith("[") and host.endswith("]"):
        valid_host = re.fullmatch(r"[0-9A-Fa-f:.]+", host[1:-1]) is not None
    else:
        valid_host = host == "" or _HOSTNAME.fullmatch(host) is not None
    if not (separator and valid_port and valid_host):
        raise ValueError(f'{json.dumps(value)} is not host:port (e.g. ":6060" or "localhost:6060")')
    return value


def _tags(value: tuple[str, ...]) -> tuple[str, ...]:
    _, invalid = parse_tags(value)
    if invalid:
        shown = ", ".join(json.dumps(tag, ensure_ascii=False) for tag in invalid)
        raise ValueError(f"entries must be key=value, not {shown}")
    return value


_NON_NEGATIVE_DURATION_PATTERN = _GO_DURATION_PATTERN.replace("^[-+]?", "^[+]?")

NonNegativeDuration = Annotated[
    Duration,
    AfterValidator(_not_negative),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _NON_NEGATIVE_DURATION_PATTERN},
                {"type": "number", "minimum": 0, "description": "seconds"},
            ]
        }
    ),
]
PositiveInteger = Annotated[
    Integer, AfterValidator(_positive), WithJsonSchema({"type": "integer", "minimum": 1})
]
_TAG_PATTERN = r"^[^=]+=.*$"

Tags = Annotated[
    StringList,
    AfterValidator(_tags),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string", "pattern": _TAG_PATTERN}},
                {"type": "string", "description": "comma-separated"},
            ]
        }
    ),
]
HostPort = Annotated[
    str,
    AfterValidator(_host_port),
    WithJsonSchema({"type": "string", "pattern": r"^$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$"}),
]


# --- the model --------------------------------------------------------------------------------------


PROFILE_EXTRA = "x-profile"
"""Schema extra marking a key that only the named profile's policies read."""


def _key(
    alias: str,
    default: Any,
    description: str,
    *,
    env: bool = False,
    profile: str | None = None,
    **constraints: Any,
) -> Any:
    """A config key: its file name, default and description; ``env`` marks keys with a flag/env var,
    ``profile`` keys only that profile's policies read."""
    extra: dict[str, JsonValue] | None = None
    if env:
        extra = {"x-flag": f"--{alias}", "x-env": env_var_name(alias)}
    if profile is not None:
        extra = {**(extra or {}), PROFILE_EXTRA: profile}
    return Field(
        default=default, alias=alias, description=description, json_schema_extra=extra, **constraints
    )


def _head_key(alias: str, default: Any, description: str, *, env: bool = False, **constraints: Any) -> Any:
    """A key of agent-stack-k8s v0.21-v0.47 that the upstream-v0.47 profile's policies read (the
    default profile ignores it, and says so: :meth:`ControllerConfig.notices`)."""
    return _key(alias, default, description, env=env, profile=UPSTREAM_V047, **constraints)


_ENV_OVERRIDES = {"id": "BUILDKITE_K8S_STACK_CONTROLLER_ID"}  # upstream's name; a bare ID would clash


def env_var_name(key: str) -> str:
    """The environment variable for a flag key: ``max-in-flight`` → ``MAX_IN_FLIGHT``."""
    return _ENV_OVERRIDES.get(key, key.upper().replace("-", "_"))


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdditionalHook(_Block):
    """One ``agent-config.additional-hooks`` entry: a volume of hooks and where it is mounted."""

    path: Annotated[str, Field(min_length=1)] = _key(
        "path", ..., "Where the volume is mounted (and listed in BUILDKITE_ADDITIONAL_HOOKS_PATHS)."
    )
    volume: Volume = _key("volume", ..., "The volume holding the hooks (a name is required).")


class AgentConfig(_Block):
    """Settings for the agent in every pod (reference §1.4). Unset fields emit nothing."""

    endpoint: str | None = _key("endpoint", None, "Agent API endpoint (BUILDKITE_AGENT_ENDPOINT).")
    no_http2: bool | None = _key("no-http2", None, "Disable HTTP/2 for the agent (BUILDKITE_NO_HTTP2).")
    experiment: StringList | None = _key(
        "experiment", None, "Agent experiments to enable (BUILDKITE_AGENT_EXPERIMENT, comma-joined)."
    )
    shell: str | None = _key("shell", None, "Shell the bootstrap runs commands with (BUILDKITE_SHELL).")
    no_color: bool | None = _key(
        "no-color", None, "Disable coloured agent output (BUILDKITE_AGENT_NO_COLOR)."
    )
    strict_single_hooks: bool | None = _key(
        "strict-single-hooks", None, "Run only one hook of each kind (BUILDKITE_STRICT_SINGLE_HOOKS)."
    )
    no_multipart_artifact_upload: bool | None = _key(
        "no-multipart-artifact-upload",
        None,
        "Disable multipart artifact uploads (BUILDKITE_NO_MULTIPART_ARTIFACT_UPLOAD).",
    )
    trace_context_encoding: str | None = _key(
        "trace-context-encoding", None, "Trace context encoding (BUILDKITE_TRACE_CONTEXT_ENCODING)."
    )
    disable_warnings_for: StringList | None = _key(
        "disable-warnings-for",
        None,
        "Warnings to silence (BUILDKITE_AGENT_DISABLE_WARNINGS_FOR, comma-joined).",
    )
    debug_signing: bool | None = _key(
        "debug-signing", None, "Log pipeline signing details (BUILDKITE_AGENT_DEBUG_SIGNING)."
    )
    no_pty: bool | None = _key(
        "no-pty",
        None,
        "Do not run commands in a PTY (agent: BUILDKITE_NO_PTY; bootstrap: BUILDKITE_PTY negated).",
    )
    no_command_eval: bool | None = _key(
        "no-command-eval",
        None,
        "Forbid running arbitrary commands (agent: BUILDKITE_NO_COMMAND_EVAL; bootstrap: "
        "BUILDKITE_COMMAND_EVAL negated).",
    )
    no_local_hooks: bool | None = _key(
        "no-local-hooks",
        None,
        "Forbid repository hooks (agent: BUILDKITE_NO_LOCAL_HOOKS; bootstrap: BUILDKITE_LOCAL_HOOKS_ENABLED "
        "negated).",
    )
    no_plugins: bool | None = _key(
        "no-plugins",
        None,
        "Forbid plugins (agent: BUILDKITE_NO_PLUGINS; bootstrap: BUILDKITE_PLUGINS_ENABLED negated).",
    )
    plugin_validation: bool | None = _key(
        "plugin-validation",
        None,
        "Validate plugin configs (agent: BUILDKITE_NO_PLUGIN_VALIDATION negated; bootstrap: "
        "BUILDKITE_PLUGIN_VALIDATION).",
    )
    hooks_path: str | None = _key(
        "hooks-path",
        None,
        "Agent hooks directory (BUILDKITE_HOOKS_PATH); /buildkite/hooks when hooksVolume is set.",
    )
    hooks_volume: Volume | None = _key(
        "hooksVolume",
        None,
        "Volume holding agent hooks, mounted at hooks-path in the agent, checkout and command containers.",
    )
    plugins_path: str | None = _key(
        "plugins-path",
        None,
        "Agent plugins directory (BUILDKITE_PLUGINS_PATH); /buildkite/plugins when pluginsVolume is set.",
    )
    plugins_volume: Volume | None = _key(
        "pluginsVolume",
        None,
        "Volume holding plugins, mounted at plugins-path in the agent, checkout and command containers.",
    )
    signing_jwks_file: str | None = _key(
        "signing-jwks-file",
        None,
        "Pipeline signing key file for command containers (BUILDKITE_AGENT_JWKS_FILE); relative to "
        "/buildkite/signing-jwks when signingJWKSVolume is set.",
    )
    signing_jwks_key_id: str | None = _key(
        "signing-jwks-key-id", None, "Key ID to sign with (BUILDKITE_AGENT_JWKS_KEY_ID, command containers)."
    )
    signing_jwks_volume: Volume | None = _key(
        "signingJWKSVolume", None, "Volume holding the signing key, mounted in command containers."
    )
    verification_jwks_file: str | None = _key(
        "verification-jwks-file",
        None,
        "Key file the agent verifies job signatures with (BUILDKITE_AGENT_VERIFICATION_JWKS_FILE); "
        "relative to /buildkite/verification-jwks when verificationJWKSVolume is set.",
    )
    verification_failure_behavior: str | None = _key(
        "verification-failure-behavior",
        None,
        "What the agent does with an unsigned job (BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR); "
        "warn when neither this nor verification-jwks-file is set.",
    )
    verification_jwks_volume: Volume | None = _key(
        "verificationJWKSVolume", None, "Volume holding the verification key, mounted in the agent container."
    )
    # --- agent-config keys of agent-stack-k8s v0.41-v0.47 (reference §11.2); profile upstream-v0.47 ---
    tracing_backend: str | None = _head_key(
        "tracing-backend", None, "Agent tracing backend, e.g. opentelemetry (BUILDKITE_TRACING_BACKEND)."
    )
    tracing_service_name: str | None = _head_key(
        "tracing-service-name", None, "Service name in traces (BUILDKITE_TRACING_SERVICE_NAME)."
    )
    tracing_propagate_traceparent: bool | None = _head_key(
        "tracing-propagate-traceparent",
        None,
        "Propagate the traceparent of the job (BUILDKITE_TRACING_PROPAGATE_TRACEPARENT).",
    )
    git_skip_fetch_existing_commits: bool | None = _head_key(
        "git-skip-fetch-existing-commits",
        None,
        "Skip git fetch when the commit is already checked out (BUILDKITE_GIT_SKIP_FETCH_EXISTING_COMMITS).",
    )
    container_start_timeout: NonNegativeDuration | None = _head_key(
        "container-start-timeout",
        None,
        "How long the agent waits for the checkout and command containers to connect before it fails the "
        "job (BUILDKITE_KUBERNETES_CONTAINER_START_TIMEOUT; the agent's default is 5m).",
    )
    additional_hooks_paths: StringList | None = _head_key(
        "additional-hooks-paths",
        None,
        "Directories of hooks already in the images, run after the standard hooks "
        "(BUILDKITE_ADDITIONAL_HOOKS_PATHS, before the additional-hooks paths).",
    )
    additional_hooks: Annotated[tuple[AdditionalHook, ...], _Kind("list of {path, volume}")] | None = (
        _head_key(
            "additional-hooks",
            None,
            "Hook volumes: each volume is added to the pod and mounted at its path in the agent, checkout "
            "and command containers, and the path is added to BUILDKITE_ADDITIONAL_HOOKS_PATHS.",
        )
    )


class GitMirrors(_Block):
    """Git mirror settings for the checkout container."""

    path: str | None = _key(
        "path",
        None,
        "Mirror directory (BUILDKITE_GIT_MIRRORS_PATH); /buildkite/git-mirrors when a volume is set.",
    )
    volume: Volume | None = _key("volume", None, "Volume holding the mirrors, mounted at path in checkout.")
    clone_flags: str | None = _key(
        "cloneFlags", None, "Flags for cloning mirrors (BUILDKITE_GIT_CLONE_MIRROR_FLAGS)."
    )
    lock_timeout: Integer | None = _key(
        "lockTimeout", None, "Seconds to wait for a mirror lock (BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT, if > 0)."
    )
    skip_update: bool | None = _key(
        "skipUpdate", None, "Do not update existing mirrors (BUILDKITE_GIT_MIRRORS_SKIP_UPDATE)."
    )


class CheckoutParams(_Block):
    """Defaults for the checkout container (reference §1.5); a step's ``checkout`` adds to them."""

    skip: bool | None = _key("skip", None, "Run no checkout container at all.")
    clean_flags: str | None = _key("cleanFlags", None, "git clean flags (BUILDKITE_GIT_CLEAN_FLAGS).")
    clone_flags: str | None = _key("cloneFlags", None, "git clone flags (BUILDKITE_GIT_CLONE_FLAGS).")
    fetch_flags: str | None = _key("fetchFlags", None, "git fetch flags (BUILDKITE_GIT_FETCH_FLAGS).")
    no_submodules: bool | None = _key(
        "noSubmodules", None, "Skip git submodules (BUILDKITE_GIT_SUBMODULES = the negated value)."
    )
    submodule_clone_config: StringList | None = _key(
        "submoduleCloneConfig",
        None,
        "git config for cloning submodules (BUILDKITE_GIT_SUBMODULE_CLONE_CONFIG, comma-joined).",
    )
    git_mirrors: GitMirrors | None = _key("gitMirrors", None, "Git mirror settings.")
    git_credentials_secret: SecretVolumeSource | None = _key(
        "gitCredentialsSecret",
        None,
        "Secret with a .git-credentials file, used through git's store credential helper.",
    )
    env_from: EnvFromList | None = _key("envFrom", None, "Env sources added to the checkout container.")
    checkout_flags: str | None = _head_key(
        "checkoutFlags", None, "git checkout flags (BUILDKITE_GIT_CHECKOUT_FLAGS)."
    )
    extra_volume_mounts: VolumeMountList | None = _head_key(
        "extraVolumeMounts", None, "Volume mounts added to the checkout container."
    )


class CommandParams(_Block):
    """Defaults for command containers (reference §1.6)."""

    interposer: Interposer | None = _key(
        "interposer",
        None,
        "How command + args become BUILDKITE_COMMAND: buildkite (default; command items are lines, args "
        "quoted onto the last), vector (every item shell-quoted) or legacy (joined unquoted).",
    )
    env_from: EnvFromList | None = _key("envFrom", None, "Env sources added to every command container.")
    extra_volume_mounts: VolumeMountList | None = _head_key(
        "extraVolumeMounts", None, "Volume mounts added to every command container."
    )


class SidecarParams(_Block):
    """Defaults for sidecar containers (reference §1.7)."""

    env_from: EnvFromList | None = _key("envFrom", None, "Env sources added to every sidecar.")
    extra_volume_mounts: VolumeMountList | None = _head_key(
        "extraVolumeMounts", None, "Volume mounts added to every sidecar."
    )


class Metadata(_Block):
    """Labels and annotations for every Job and its pod (reference §1.8); a step's own win per key."""

    labels: dict[str, str] | None = _key("labels", None, "Labels added to the Job and its pod template.")
    annotations: dict[str, str] | None = _key(
        "annotations", None, "Annotations added to the Job and its pod template."
    )


# --- keys of agent-stack-k8s v0.21-v0.47 (reference §11.2) --------------------------------------------
#
# Kept in their own block (the mixin below) so the keys of other controller modes merge beside them.
# The ones the upstream-v0.47 profile's policies read are marked with _head_key; with the default
# profile they are accepted and ignored, with a notice. Runtime keys this controller does not act on
# are accepted with a notice too (NO_EFFECT). Cross-key rules are in _head_key_problems.

PULL_POLICIES = ("", "Always", "IfNotPresent", "Never")
LOG_FORMATS = ("logfmt", "json", "text")
"""upstream's two, and ``text``: this project's name for logfmt-style lines."""
LOG_LEVELS = ("debug", "info", "warn", "error")
JOB_NAME_MAX = 63
JOB_UUID_LENGTH = 36
JOB_PREFIX_MAX = JOB_NAME_MAX - JOB_UUID_LENGTH
"""A Job's name becomes its pods' ``job-name`` label, at most 63 characters: the prefix gets 27."""
_JOB_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]*)?$")


def _one_of(values: tuple[str, ...], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in values:
            shown = ", ".join(json.dumps(v) for v in values)
            raise ValueError(f"invalid {what} {json.dumps(value, ensure_ascii=False)} (valid: {shown})")
        return value

    return AfterValidator(check)


def _quantity_string(value: Any) -> Any:
    try:
        parse_quantity(value)
    except QuantityError as exc:
        raise ValueError(str(exc)) from None
    return value


def _job_prefix(value: str) -> str:
    if not value:
        raise ValueError("required: Jobs are named <job-prefix><job uuid>")
    if len(value) > JOB_PREFIX_MAX or _JOB_PREFIX.match(value) is None:
        raise ValueError(
            f"{json.dumps(value)} cannot start a Job name: at most {JOB_PREFIX_MAX} lowercase letters, "
            f"digits, '-' and '.', starting with a letter or digit (the {JOB_UUID_LENGTH}-character job "
            f"uuid follows, and the name must fit the {JOB_NAME_MAX}-character job-name label)"
        )
    return value


PullPolicy = Annotated[
    str,
    _one_of(PULL_POLICIES, "image pull policy"),
    WithJsonSchema({"type": "string", "enum": list(PULL_POLICIES)}),
    _Kind("pull policy: Always, IfNotPresent, Never or empty"),
]
LogFormat = Annotated[
    str,
    _one_of(LOG_FORMATS, "log format"),
    WithJsonSchema({"type": "string", "enum": list(LOG_FORMATS)}),
    _Kind("logfmt (or text) or json"),
]
LogLevel = Annotated[
    str,
    _one_of(LOG_LEVELS, "log level"),
    WithJsonSchema({"type": "string", "enum": list(LOG_LEVELS)}),
    _Kind("debug, info, warn or error"),
]
ProfileName = Annotated[
    str,
    _one_of(tuple(PROFILES), "profile"),
    WithJsonSchema({"type": "string", "enum": list(PROFILES)}),
    _Kind(f"profile: {', '.join(PROFILES)}"),
]
QuantityString = Annotated[
    str,
    BeforeValidator(
        lambda value: str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    ),
    AfterValidator(_quantity_string),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}]}),
    _Kind("Kubernetes quantity"),
]
JobPrefix = Annotated[
    str,
    AfterValidator(_job_prefix),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": JOB_PREFIX_MAX, "pattern": _JOB_PREFIX.pattern}
    ),
]


class ResourceClass(_Block):
    """One ``resource-classes`` entry (agent-stack-k8s v0.31+, ``podResource`` v0.42+): what a job
    asking for it with the agent tag ``resource_class`` gets."""

    resource: ResourceRequirements | None = _key(
        "resource", None, "Requests and limits merged key by key into every command container's resources."
    )
    pod_resource: ResourceRequirements | None = _key(
        "podResource",
        None,
        "Pod-level resources (spec.resources; Kubernetes 1.34+, kubernetes-version 1.34).",
    )
    node_selector: dict[str, str] | None = _key("nodeSelector", None, "Merged into the pod's nodeSelector.")


class _UpstreamHeadKeys(_Block):
    """The top-level keys agent-stack-k8s added in v0.21-v0.47 (reference §11.2), except the ones of the
    Stacks API mode (queue, reservation-expiry-seconds, pagination, query-reset-interval, http-timeout)."""

    profile: ProfileName = _key(
        "profile",
        DEFAULT_PROFILE,
        "Which agent-stack-k8s release the pods are built like: default (v0.20.2, with the defects later "
        f"releases fixed) or {UPSTREAM_V047} (v0.47.0; loads policies/profiles/{UPSTREAM_V047} after the "
        "default policies and needs kubernetes-version 1.29 or later). File only: a PROFILE environment "
        "variable means other things to other programs.",
    )
    job_prefix: JobPrefix = _head_key(
        "job-prefix", "buildkite-", "Name prefix of every Job: <job-prefix><job uuid>.", env=True
    )
    job_active_deadline_seconds: PositiveInteger = _head_key(
        "job-active-deadline-seconds",
        21600,
        "The Job's activeDeadlineSeconds (a step's jobActiveDeadlineSeconds > 0 wins).",
        env=True,
    )
    default_image_pull_policy: PullPolicy = _head_key(
        "default-image-pull-policy",
        "",
        "Pull policy of containers that set none (and of agent, checkout, copy-agent); empty: Always, or "
        "IfNotPresent for an image pinned by digest.",
        env=True,
    )
    default_image_check_pull_policy: PullPolicy = _head_key(
        "default-image-check-pull-policy",
        "",
        "Pull policy of the imagecheck-* init containers for images whose containers set none; empty: "
        "default-image-pull-policy, else as above.",
        env=True,
    )
    skip_image_check_containers: bool = _head_key(
        "skip-image-check-containers",
        False,
        "Add no imagecheck-* init containers (image references are still checked).",
        env=True,
    )
    image_check_container_cpu_limit: QuantityString = _head_key(
        "image-check-container-cpu-limit", "200m", "CPU limit of each imagecheck-* container.", env=True
    )
    image_check_container_memory_limit: QuantityString = _head_key(
        "image-check-container-memory-limit",
        "128Mi",
        "Memory limit of each imagecheck-* container.",
        env=True,
    )
    allow_pod_spec_patch_unsafe_command_modification: bool = _head_key(
        "allow-pod-spec-patch-unsafe-command-modification",
        False,
        "Let pod-spec-patch and a step's podSpecPatch change the command or args of the agent, checkout, "
        "copy-agent and imagecheck-* containers (a command container's change always becomes its "
        "BUILDKITE_COMMAND).",
        env=True,
    )
    workspace_mount_sub_path_expr: str = _head_key(
        "workspace-mount-sub-path-expr",
        "",
        "subPathExpr of every /workspace mount (e.g. $(POD_NAME) to share one volume).",
    )
    resource_classes: Annotated[dict[str, ResourceClass], _Kind("map of name to resource class")] | None = (
        _head_key(
            "resource-classes",
            None,
            "Named resource classes a job selects with the agent tag resource_class (agents: "
            "{resource_class: NAME}).",
        )
    )
    default_resource_class_name: str = _head_key(
        "default-resource-class-name",
        "",
        "The resource class of jobs without a resource_class tag; must name one of resource-classes.",
    )
    enable_completion_watcher: bool = _key(
        "enable-completion-watcher",
        True,
        "Stop the pod's other containers (a deadline on the Job) once the agent container has finished.",
        env=True,
    )
    enable_queue_pause: bool = _key(
        "enable-queue-pause",
        False,
        "Accepted for compatibility: upstream has ignored it since v0.28.0, and so does this controller.",
        env=True,
    )
    work_queue_limit: Integer = _key(
        "work-queue-limit",
        1000000,
        "Most jobs waiting for a max-in-flight token (upstream's priority work queue).",
        env=True,
        ge=1,
    )
    k8s_client_rate_limiter_qps: Integer = _key(
        "k8s-client-rate-limiter-qps",
        10,
        "Kubernetes client requests per second (upstream's client).",
        env=True,
        ge=0,
    )
    k8s_client_rate_limiter_burst: Integer = _key(
        "k8s-client-rate-limiter-burst", 20, "Kubernetes client burst (upstream's client).", env=True, ge=0
    )
    log_format: LogFormat = _key("log-format", "logfmt", "Log format: logfmt (text) or json.", env=True)
    log_level: LogLevel = _key("log-level", "info", "Log level; debug: true forces debug.", env=True)
    no_color: bool = _key(
        "no-color", False, "No colours in the log (this controller never colours it).", env=True
    )
    log_http_payloads: bool = _key(
        "log-http-payloads",
        False,
        "Accepted for compatibility; this controller never logs HTTP payloads (they may hold secrets).",
        env=True,
    )
    integration_test_buildkite_token: str = _key(
        "integration-test-buildkite-token",
        "",
        "Upstream's test-harness token; accepted and unused.",
        env=True,
    )


NO_EFFECT: dict[str, str] = {
    "enable-queue-pause": "accepted, but it does nothing: agent-stack-k8s has ignored it since v0.28.0",
    "work-queue-limit": "accepted, but this controller has no priority work queue to limit",
    "k8s-client-rate-limiter-qps": "accepted, but this controller's Kubernetes client does not rate-limit",
    "k8s-client-rate-limiter-burst": "accepted, but this controller's Kubernetes client does not rate-limit",
    "log-http-payloads": "accepted, but this controller never logs HTTP payloads",
    "integration-test-buildkite-token": "accepted, but only upstream's test harness uses it",
}
"""Keys accepted so upstream configs load unchanged, and the notice given when one is set."""


def _head_key_problems(config: ControllerConfig) -> list[tuple[tuple[PathSegment, ...], str]]:
    """The rules between keys (reference §11.1), as ``(path, message)``."""
    problems: list[tuple[tuple[PathSegment, ...], str]] = []
    head = config.profile == UPSTREAM_V047
    profile = PROFILES[config.profile]
    minimum = profile.minimum_kubernetes_version
    if minimum is not None and version_key(config.kubernetes_version) < version_key(minimum):
        supported = ", ".join(v for v in KUBERNETES_VERSIONS if version_key(v) >= version_key(minimum))
        problems.append(
            (
                ("kubernetes-version",),
                f"profile {config.profile} needs kubernetes-version {minimum} or later (its sidecars are "
                f"native: init containers with restartPolicy Always); supported: {supported}",
            )
        )
    name = config.default_resource_class_name
    if name and not config.resource_classes:
        problems.append(
            (
                ("default-resource-class-name",),
                f"default-resource-class-name {json.dumps(name)} specified but no resource-classes defined",
            )
        )
    elif name and config.resource_classes is not None and name not in config.resource_classes:
        problems.append(
            (
                ("default-resource-class-name",),
                f"default-resource-class-name {json.dumps(name)} not found in resource-classes "
                f"(defined: {', '.join(sorted(config.resource_classes))})",
            )
        )
    if head:
        reference = parse_image_reference(config.image)
        if not reference.valid:
            problems.append((("image",), f"{reference.error} {json.dumps(config.image)}"))
    patch = config.pod_spec_patch or {}
    unsafe = head and config.allow_pod_spec_patch_unsafe_command_modification
    containers = patch.get("containers")
    for index, container in enumerate(containers if isinstance(containers, list) else ()):
        if not isinstance(container, dict):
            continue
        image = container.get("image")
        if head and isinstance(image, str) and has_upper_case_name(image):
            problems.append(
                (
                    ("pod-spec-patch", "containers", index, "image"),
                    f"{json.dumps(image)}: image names must be lowercase",
                )
            )
        if unsafe:
            continue
        for field in ("command", "args"):
            if container.get(field):
                problems.append(
                    (
                        ("pod-spec-patch", "containers", index, field),
                        NO_COMMAND_MODIFICATION
                        + (" (or set allow-pod-spec-patch-unsafe-command-modification)" if head else ""),
                    )
                )
                break
    return problems


class ControllerConfig(_UpstreamHeadKeys):
    """The whole controller config (reference §1.3 and §11.2). Build it with :func:`parse_config` or
    :func:`resolve_config`; it is immutable."""

    agent_token_secret: str = _key(
        "agent-token-secret",
        "buildkite-agent-token",
        "Kubernetes Secret (in namespace) holding BUILDKITE_AGENT_TOKEN, for pods and for failing jobs.",
        env=True,
    )
    controller_service_account: str = _key(
        "controller-service-account",
        "",
        "The controller's own ServiceAccount: build pods may not run as it (policy controller-identity). "
        "Empty: not checked.",
        env=True,
    )
    controller_secrets: StringList = _key(
        "controller-secrets",
        (),
        "Secrets of the controller (e.g. the one holding the GraphQL token) that build pods may never "
        "reference in any way (policy controller-identity). From agent-token-secret they may reference "
        "only the BUILDKITE_AGENT_TOKEN key.",
        env=True,
    )
    buildkite_token: str = _key(
        "buildkite-token",
        "",
        "Buildkite API token with GraphQL scope (required by the controller).",
        env=True,
    )
    org: str = _key("org", "", "Buildkite organization slug (required by the controller).", env=True)
    image: str = _key(
        "image",
        DEFAULT_IMAGE,
        "Agent image: supplies buildkite-agent and tini-static, and runs the agent, checkout and default "
        "command containers.",
        env=True,
    )
    tags: Tags = _key(
        "tags",
        ("queue=kubernetes",),
        "The controller's agent tags (key=value); must include queue. A job is taken when its tags are a "
        "subset.",
        env=True,
    )
    namespace: str = _key("namespace", "default", "Namespace for Jobs, Secrets and events.", env=True)
    debug: bool = _key("debug", False, "Log at debug level.", env=True)
    max_in_flight: Integer = _key(
        "max-in-flight", 25, "Most Jobs running at once; 0 means unlimited.", env=True, ge=0
    )
    job_ttl: NonNegativeDuration = _key(
        "job-ttl", 600.0, "Time a finished Job is kept (ttlSecondsAfterFinished, whole seconds).", env=True
    )
    poll_interval: Annotated[Duration, _at_least(1.0)] = _key(
        "poll-interval", 1.0, "Time between polls for scheduled jobs; at least 1s.", env=True
    )
    stale_job_data_timeout: Annotated[Duration, _default_unless_positive(10.0)] = _key(
        "stale-job-data-timeout",
        10.0,
        "How long job data from one poll is trusted, and the longest one poll may take; <= 0 means 10s.",
        env=True,
    )
    job_creation_concurrency: Annotated[Integer, _default_unless_positive(5)] = _key(
        "job-creation-concurrency",
        5,
        "Jobs handed to the scheduler at once (the monitor's workers); <= 0 means 5.",
        env=True,
    )
    http_timeout: Annotated[Duration, _default_unless_positive(10.0)] = _key(
        "http-timeout",
        10.0,
        "Longest wait for one answer from Buildkite's GraphQL or Agent REST API (a poll also ends at "
        "stale-job-data-timeout); <= 0 means 10s.",
        env=True,
    )
    pagination_depth_limit: Annotated[Integer, _default_unless_positive(5)] = _key(
        "pagination-depth-limit",
        5,
        "Most pages of 100 scheduled jobs fetched per poll (the first page, then onwards from where "
        "the previous poll stopped); <= 0 means 5.",
        env=True,
    )
    cluster_uuid: str = _key(
        "cluster-uuid", "", "Buildkite cluster UUID; empty for unclustered pipelines.", env=True
    )
    graphql_endpoint: Annotated[str, AfterValidator(_graphql_endpoint)] = _key(
        "graphql-endpoint",
        DEFAULT_GRAPHQL_ENDPOINT,
        "Buildkite GraphQL URL; empty means the default.",
        env=True,
    )
    # -- the Buildkite API mode (GraphQL or the Stacks API) and the Stacks API keys ------------------
    buildkite_api: BuildkiteApi = _key(
        "buildkite-api",
        "",
        "Where jobs come from: stacks (the Stacks API, with the agent token alone) or graphql (GraphQL, "
        "with buildkite-token). Empty: graphql when buildkite-token or org is set, else stacks.",
        env=True,
    )
    queue: str = _key(
        "queue",
        "",
        "Stacks API mode: the cluster queue key to serve; overrides the queue tag. Empty and no queue tag "
        "(or ~ or -): the cluster's default queue (_default).",
        env=True,
    )
    reservation_expiry_seconds: Integer = _key(
        "reservation-expiry-seconds",
        900,
        "Stacks API mode: how long a reserved job stays this controller's before Buildkite offers it "
        "again, if no agent acquired it; 0 leaves it to Buildkite's default.",
        env=True,
        ge=0,
        le=3600,
    )
    pagination_page_size: Integer = _key(
        "pagination-page-size",
        1000,
        "Stacks API mode: scheduled jobs per page (1-1000).",
        env=True,
        ge=1,
        le=1000,
    )
    query_reset_interval: Annotated[Duration, _default_unless_positive(10.0)] = _key(
        "query-reset-interval",
        10.0,
        "How long a poll may go on from where the previous one stopped before a walk starts again from "
        "the first page; <= 0 means 10s.",
        env=True,
    )
    job_acquisition_tokens: bool = _key(
        "job-acquisition-tokens",
        False,
        "Stacks API mode: give each pod's agent container a job acquisition token for its one job (a "
        "Secret per Job) instead of the cluster agent token, which then never reaches a build pod.",
        env=True,
    )
    job_acquisition_token_lifetime_seconds: Integer = _key(
        "job-acquisition-token-lifetime-seconds",
        0,
        "Stacks API mode: lifetime asked for each job acquisition token (1-3600); 0 leaves it to "
        "Buildkite's default (900). It ends earlier if the job's reservation does.",
        env=True,
        ge=0,
        le=3600,
    )
    profiler_address: HostPort = _key(
        "profiler-address", "", "host:port to serve profiling endpoints on; empty disables it.", env=True
    )
    prometheus_port: Integer = _key(
        "prometheus-port", 0, "Port serving GET /metrics; 0 disables it.", env=True, ge=0, le=65535
    )
    image_pull_backoff_grace_period: Annotated[Duration, _default_unless_positive(30.0)] = _key(
        "image-pull-backoff-grace-period",
        30.0,
        "Time after pod start before an image pull back-off fails the job; <= 0 means 30s.",
        env=True,
    )
    job_cancel_checker_poll_interval: Annotated[Duration, _default_unless_positive(5.0)] = _key(
        "job-cancel-checker-poll-interval",
        5.0,
        "Interval of the cancelled-job check for pending pods; <= 0 means 5s.",
        env=True,
    )
    empty_job_grace_period: NonNegativeDuration = _key(
        "empty-job-grace-period",
        30.0,
        "Time after Job start with no pod before the Job counts as stalled; 0 means immediately.",
        env=True,
    )
    id: str = _key(
        "id",
        "",
        "This controller's ID: the buildkite.com/controller-id label on its Jobs, which it watches by. "
        "Empty means one derived from the namespace and queue. A valid label value (63 characters).",
        env=True,
        max_length=63,
        pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$",
    )
    prohibit_kubernetes_plugin: bool = _key(
        "prohibit-kubernetes-plugin", False, "Fail every job that uses the kubernetes plugin.", env=True
    )
    pod_pending_timeout: NonNegativeDuration = _key(
        "pod-pending-timeout", 900.0, "Time a pod may stay Pending before its job is failed.", env=True
    )
    default_termination_grace_period_seconds: PositiveInteger = _key(
        "default-termination-grace-period-seconds",
        60,
        "Pod terminationGracePeriodSeconds unless the step sets one.",
        env=True,
    )
    kubernetes_version: KubernetesVersion = _key(
        "kubernetes-version",
        DEFAULT_KUBERNETES_VERSION,
        "Kubernetes version whose batch/v1 Job API every Job is checked against before it is created "
        f"(strict: unknown fields, types, names, labels). Supported: {', '.join(KUBERNETES_VERSIONS)}.",
    )
    job_log_warnings: bool = _key(
        "job-log-warnings",
        True,
        "Print a job's policy warnings at the top of its Buildkite log, through an agent environment hook "
        "the Job carries (needs agent v3.89.0+ for BUILDKITE_ADDITIONAL_HOOKS_PATHS).",
    )
    additional_redacted_vars: StringList = _key(
        "additional-redacted-vars",
        (),
        "Env var name patterns redacted from logs, after the agent's defaults.",
    )
    pod_spec_patch: PodSpec | None = _key(
        "pod-spec-patch",
        None,
        "Strategic merge patch applied to every pod spec, before the step's podSpecPatch; may not set "
        "command or args.",
    )
    workspace_volume: Volume | None = _key(
        "workspace-volume",
        None,
        "Volume mounted at /workspace in every container; an emptyDir named workspace if unset.",
    )
    agent_config: AgentConfig | None = _key("agent-config", None, "Settings for the agent in every pod.")
    default_checkout_params: CheckoutParams | None = _key(
        "default-checkout-params", None, "Defaults for the checkout container."
    )
    default_command_params: CommandParams | None = _key(
        "default-command-params", None, "Defaults for command containers."
    )
    default_sidecar_params: SidecarParams | None = _key(
        "default-sidecar-params", None, "Defaults for sidecar containers."
    )
    default_metadata: Metadata | None = _key(
        "default-metadata", None, "Labels and annotations for every Job and pod."
    )

    @model_validator(mode="before")
    @classmethod
    def _null_means_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = {key: value for key, value in data.items() if value is not None}
            profile = PROFILES.get(str(data.get("profile", DEFAULT_PROFILE)))
            if (
                profile is not None
                and profile.minimum_kubernetes_version
                and "kubernetes-version" not in data
            ):
                data["kubernetes-version"] = profile.minimum_kubernetes_version
            if profile is not None and profile.default_image and not data.get("image"):
                data["image"] = profile.default_image  # the agent release the upstream release links
        return data

    def notices(self) -> list[str]:
        """One ``key: message`` line per key that was set but does nothing here: a key of another
        profile, or one upstream's runtime reads and this controller does not (:data:`NO_EFFECT`)."""
        lines: list[str] = []
        for key, field in _set_fields(self, ""):
            if key in NO_EFFECT:
                lines.append(f"{key}: {NO_EFFECT[key]}")
                continue
            extra = field.json_schema_extra
            wanted = extra.get(PROFILE_EXTRA) if isinstance(extra, dict) else None
            if isinstance(wanted, str) and wanted != self.profile:
                lines.append(
                    f"{key}: only the {wanted} profile reads this key; with profile {self.profile} it "
                    "does nothing (set profile: {wanted})".replace("{wanted}", wanted)
                )
        return lines

    def expression_view(self) -> dict[str, JSON]:
        """The config as policies see it (``config.*``); see the module docstring for the mapping.

        ``id`` is the effective controller ID (:meth:`controller_id`), so a dry run labels its Job
        exactly as the controller does."""
        view = _view(self)
        for key in _SECRET_KEYS:
            view.pop(camel_case(key), None)
        view["id"] = self.controller_id()
        return view

    def controller_id(self) -> str:
        """The ``buildkite.com/controller-id`` value: ``id`` when set, else ``<namespace>.<queue>``
        (see :mod:`engine.model.controller_id`; the queue is :meth:`effective_queue`)."""
        return controller_id(self.id, self.namespace, self.effective_queue())

    def mode(self) -> ControllerMode:
        """How this controller gets its jobs: ``buildkite-api`` when set; else the GraphQL mode when a
        GraphQL token or an organization is configured (a seed-era config), else the Stacks API mode
        (an upstream v0.28+ config: the agent token alone)."""
        if self.buildkite_api:
            return MODES[self.buildkite_api]
        return MODES["graphql" if self.buildkite_token or self.org else "stacks"]

    def mode_reason(self) -> str:
        """Why :meth:`mode` chose what it chose, for the start-up log."""
        if self.buildkite_api:
            return f"buildkite-api is {self.buildkite_api}"
        if self.buildkite_token:
            return "buildkite-token is set"
        if self.org:
            return "org is set"
        return "no buildkite-token or org is set"

    def unmatched_job_tags(self) -> tuple[str, ...]:
        """Job tags left out when a job's tags are matched against the controller's: the profile's
        (the upstream-v0.47 profile's ``resource_class``) and, in the Stacks API mode, ``queue``, since
        the listing is that one queue's already. The monitor and ``engine test`` both use this."""
        ignored = PROFILES[self.profile].ignored_job_tags
        return (*ignored, "queue") if self.mode().name == "stacks" else ignored

    def effective_queue(self) -> str:
        """The queue served: the ``queue`` key (Stacks API mode), else the ``queue`` tag; in the Stacks
        API mode an empty result, ``~`` and ``-`` mean the default queue (``_default``)."""
        tags, _ = parse_tags(self.tags)
        queue = self.queue or tags.get("queue", "")
        if self.mode().name == "stacks" and (not queue or queue in _DEFAULT_QUEUE_ALIASES):
            return DEFAULT_QUEUE
        return queue

    def stack_key(self) -> str:
        """The Stacks API stack key: ``id``, else upstream's default ``agent-stack-k8s``."""
        return self.id or DEFAULT_STACK_KEY

    def mode_problems(self, given: Mapping[str, JSON]) -> list[tuple[str, str]]:
        """``(key, message)`` for each key in ``given`` (the input data) set to other than its default
        that this config's mode does not read, and for GraphQL tags without ``queue``: a key the other
        mode needs is a mistake to point out, not one to ignore."""
        mode = self.mode()
        problems: list[tuple[str, str]] = []
        fields = {str(field.alias): (name, field) for name, field in type(self).model_fields.items()}
        for key in mode.forbidden:
            name, field = fields[key]
            if given.get(key) is None or getattr(self, name) == field.default:
                continue  # absent, or the default (a full dump of a config names every key)
            other = "stacks" if mode.name == "graphql" else "graphql"
            problems.append(
                (
                    key,
                    f"only the {_MODE_TITLES[other]} mode reads this key, but the controller runs the "
                    f"{_MODE_TITLES[mode.name]} mode ({self.mode_reason()}); remove it, or set "
                    f"buildkite-api: {other}",
                )
            )
        if mode.name == "graphql":
            tags, _ = parse_tags(self.tags)
            if "queue" not in tags:
                problems.append(("tags", "missing required tag: queue (the GraphQL mode polls by it)"))
        return problems

    def missing_required_for_controller(self) -> list[str]:
        """One ``key: message`` line per key the controller needs in its mode but that is empty."""
        fields = type(self).model_fields
        required = self.mode().required
        problems = []
        for name, field in fields.items():
            if field.alias in required and not getattr(self, name):
                problems.append(
                    f"{field.alias}: required by the controller "
                    f"(set it in the config file, with --{field.alias} or {env_var_name(field.alias)})"
                )
        return problems

    def redacted(self) -> dict[str, JSON]:
        """The config with file key names and Go duration strings, secrets replaced, for logging."""
        data: dict[str, JSON] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for key in _SECRET_KEYS:
            if data.get(key):
                data[key] = REDACTED
        return data


def _set_fields(model: BaseModel, prefix: str) -> Iterator[tuple[str, FieldInfo]]:
    """The (dotted key, field) of every field explicitly set, nested blocks included."""
    fields = type(model).model_fields
    for name in sorted(model.model_fields_set, key=list(fields).index):
        field = fields[name]
        key = prefix + str(field.alias)
        yield key, field
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _set_fields(value, key + ".")


def _has_flag(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and "x-env" in extra


FLAG_KEYS: tuple[str, ...] = tuple(
    str(field.alias) for field in ControllerConfig.model_fields.values() if _has_flag(field)
)
"""The keys that are also CLI flags (``--<key>``) and environment variables (:func:`env_var_name`)."""


# --- what policies see --------------------------------------------------------------------------


def camel_case(key: str) -> str:
    """``agent-token-secret`` → ``agentTokenSecret``; a key without ``-`` is returned unchanged."""
    head, *rest = key.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _view(model: BaseModel) -> dict[str, JSON]:
    view: dict[str, JSON] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is not None:
            view[camel_case(str(field.alias))] = _view_value(value)
    return view


def _view_value(value: Any) -> JSON:
    if isinstance(value, BaseModel):
        return _view(value)
    if isinstance(value, tuple):
        return [_view_value(item) for item in value]
    if isinstance(value, dict) and any(isinstance(item, BaseModel) for item in value.values()):
        return {key: _view_value(item) for key, item in value.items()}  # names (resource classes) kept
    return value


# --- reading -------------------------------------------------------------------------------------


Locator = Callable[[tuple[PathSegment, ...]], tuple[int, int]]


class SourcedConfig(dict[str, JSON]):
    """A config file's decoded content that also knows where each value (``locate``) and each map key
    (``locate_key``) starts in the file, so problems read ``FILE:LINE:COL: key: message``. Built by
    whoever read the file (``engine.inputs.read_config_yaml``); a plain mapping works too, without
    positions."""

    def __init__(self, data: Mapping[str, JSON], locate: Locator, locate_key: Locator) -> None:
        super().__init__(data)
        self.locate = locate
        self.locate_key = locate_key


def parse_config(data: Mapping[str, JSON] | None, source: str) -> ControllerConfig:
    """Validate a config file's decoded content (``None`` for an empty file) into a config.

    Raises :class:`ConfigError` listing every problem as ``SOURCE: key.path: message`` (or
    ``SOURCE:LINE:COL: ...`` when ``data`` is a :class:`SourcedConfig`).
    """
    return _validate(data, source, {}, data if isinstance(data, SourcedConfig) else None)


def resolve_config(
    file_data: Mapping[str, JSON] | None,
    env: Mapping[str, str],
    flags: Mapping[str, JSON],
    source: str,
) -> ControllerConfig:
    """The config from a file, the environment and CLI flags: flag > env > file > default.

    ``flags`` holds only flags the user set (``None`` values are ignored), keyed by config key.
    Problems name where the bad value came from (``SOURCE``, ``env MAX_IN_FLIGHT``, ``flag --tags``).
    """
    if file_data is not None and not isinstance(file_data, Mapping):
        raise ConfigError([f"{source}: expected a map of config keys, got {describe_value(file_data)}"])
    merged: dict[str, JSON] = dict(file_data or {})
    origins: dict[str, str] = {}
    unknown_flags = [f"flag --{key}: {key}: not a config flag" for key in flags if key not in FLAG_KEYS]
    if unknown_flags:
        raise ConfigError(unknown_flags)
    for key in FLAG_KEYS:
        name = env_var_name(key)
        if flags.get(key) is not None:
            merged[key] = flags[key]
            origins[key] = f"flag --{key}"
        elif env.get(name):
            merged[key] = env[name]
            origins[key] = f"env {name}"
    return _validate(merged, source, origins, file_data if isinstance(file_data, SourcedConfig) else None)


def _validate(
    data: Mapping[str, JSON] | None,
    source: str,
    origins: Mapping[str, str],
    located: SourcedConfig | None = None,
) -> ControllerConfig:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{source}: expected a map of config keys, got {describe_value(data)}"])
    try:
        config = ControllerConfig.model_validate(data)
    except ValidationError as exc:
        lines = list(_problem_lines(exc, source, origins, located))
        if located is not None:  # in file order, as an editor shows them
            lines.sort(key=lambda line: _position_of(line, source))
        raise ConfigError(lines) from None
    lines = [
        f"{origins.get(key) or _where(source, located, (key,), key=True)}: {key}: {message}"
        for key, message in config.mode_problems(data)
    ]
    lines += [
        f"{origins.get(str(path[0])) or _where(source, located, path, key=False)}: "
        f"{render_path(path)}: {message}"
        for path, message in _head_key_problems(config)
    ]
    if lines:
        if located is not None:
            lines.sort(key=lambda line: _position_of(line, source))
        raise ConfigError(lines)
    return config


def _problem_lines(
    exc: ValidationError, source: str, origins: Mapping[str, str], located: SourcedConfig | None
) -> Iterator[str]:
    for error in exc.errors(include_url=False):
        loc = tuple(_segment(part) for part in error["loc"])
        origin = origins.get(str(loc[0])) if loc else None
        path = render_path(loc)
        if error["type"] == "kubernetes_object":
            for sub_path, message in error.get("ctx", {}).get("problems", ()):
                full = (*loc, *_parse_sub_path(sub_path))
                where = origin or _where(source, located, full, key=message.startswith("unknown key"))
                yield f"{where}: {path}{sub_path}: {message}"
        else:
            where = origin or _where(source, located, loc, key=error["type"] == "extra_forbidden")
            yield f"{where}: {path or '(top level)'}: {_message(error, loc)}"


def _where(source: str, located: SourcedConfig | None, path: tuple[PathSegment, ...], *, key: bool) -> str:
    if located is None:
        return source
    line, column = (located.locate_key if key else located.locate)(path)
    return f"{source}:{line}:{column}"


_POSITION = re.compile(r"^:(\d+):(\d+):")


def _position_of(line: str, source: str) -> tuple[int, int]:
    """Where in the file a problem line points (problems from env or flags sort first)."""
    match = _POSITION.match(line.removeprefix(source)) if line.startswith(source) else None
    return (int(match[1]), int(match[2])) if match else (0, 0)


_SUB_PATH_SEGMENT = re.compile(r'\.([^.\[\]"]+)|\[(\d+)\]|\["([^"]*)"\]')


def _parse_sub_path(sub_path: str) -> tuple[PathSegment, ...]:
    """``.containers[0].env[1]`` -> ``("containers", 0, "env", 1)`` (the inverse of ``render_path``)."""
    segments: list[PathSegment] = []
    for match in _SUB_PATH_SEGMENT.finditer(sub_path):
        name, index, quoted = match.groups()
        segments.append(int(index) if index is not None else (name if name is not None else quoted))
    return tuple(segments)


def _segment(part: str | int) -> PathSegment:
    return part if isinstance(part, int) else str(part)


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a map",
    "model_type": "a map",
    "model_attributes_type": "a map",
}


def _message(error: ErrorDetails, loc: tuple[PathSegment, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "extra_forbidden":
        return _unknown_key_message(loc)
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {describe_value(error['input'])}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {error['input']!r}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {error['input']!r}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"]


def _unknown_key_message(loc: tuple[PathSegment, ...]) -> str:
    """``unknown key`` plus ``(did you mean "max-in-flight"?)`` when a key of the same block is close."""
    model: type[BaseModel] | None = ControllerConfig
    skip = False
    for part in loc[:-1]:
        if skip:  # the name or index inside a map or list of blocks
            skip = False
            continue
        field = next((f for f in model.model_fields.values() if f.alias == part), None) if model else None
        model = _block_type(field) if field is not None else None
        nested = _collection_block(field) if field is not None and model is None else None
        if nested is not None:
            model, skip = nested[0], True
    known = [str(field.alias) for field in model.model_fields.values()] if model is not None else []
    return unknown_field_message(str(loc[-1]), known).replace("unknown field", "unknown key", 1)


# --- documentation and schema ---------------------------------------------------------------------


def config_reference_markdown() -> str:
    """A Markdown table of every key (nested keys dotted): type, default, flag/env, description."""
    lines = [
        "| Key | Type | Default | Flag / env | Description |",
        "|---|---|---|---|---|",
    ]
    for key, field in _walk_fields(ControllerConfig, ""):
        env = f"`--{key}` / `{env_var_name(key)}`" if _has_flag(field) else "file only"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {_type_label(field)} | {_default_label(field)} | {env} | {description} |")
    return "\n".join(lines) + "\n"


def _walk_fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, FieldInfo]]:
    for field in model.model_fields.values():
        key = prefix + str(field.alias)
        yield key, field
        block = _block_type(field)
        if block is not None:
            yield from _walk_fields(block, key + ".")
            continue
        nested = _collection_block(field)
        if nested is not None:
            block, separator = nested
            yield from _walk_fields(block, key + separator)


def _collection_block(field: FieldInfo) -> tuple[type[BaseModel], str] | None:
    """The block type of a list (``key[].``) or name-keyed map (``key.<name>.``) of blocks."""
    pending = [field.annotation]
    while pending:
        annotation = pending.pop()
        origin = get_origin(annotation)
        args = get_args(annotation)
        if origin in (tuple, dict) and args:
            item = args[0] if origin is tuple else args[1]
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item, "[]." if origin is tuple else ".<name>."
        pending.extend(a for a in args if a is not Ellipsis)
    return None


def _block_type(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    for candidate in getattr(annotation, "__args__", (annotation,)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _kind(field: FieldInfo) -> _Kind | None:
    """The ``_Kind`` marker of a field, whether pydantic moved it to ``metadata`` or left it inside
    ``Optional[Annotated[...]]``."""
    found = [item for item in field.metadata if isinstance(item, _Kind)]
    pending = [field.annotation]
    while pending and not found:
        annotation = pending.pop()
        if get_origin(annotation) is Annotated:
            found = [item for item in get_args(annotation)[1:] if isinstance(item, _Kind)]
        pending.extend(get_args(annotation))
    return found[0] if found else None


def _type_label(field: FieldInfo) -> str:
    kind = _kind(field)
    if kind is not None:
        return kind.label
    if _block_type(field) is not None:
        return "object"
    annotation = field.annotation
    names = [getattr(arg, "__name__", str(arg)) for arg in getattr(annotation, "__args__", (annotation,))]
    labels = {"str": "string", "bool": "boolean", "int": "integer", "dict": "map of strings"}
    return next((labels[name] for name in names if name in labels), str(annotation))


def _default_label(field: FieldInfo) -> str:
    default = field.default
    if field.is_required():
        return "required"
    if default is None:
        return "unset"
    if _kind(field) == _Kind("duration"):
        return f"`{format_duration(default)}`"
    if isinstance(default, tuple):
        return f"`{json.dumps(list(default))}`"
    return f"`{json.dumps(default)}`"


SCHEMA_DESCRIPTION = (
    "The controller config file: the keys of Buildkite agent-stack-k8s v0.20.2 (plus pod-pending-timeout "
    "and default-termination-grace-period-seconds). Keys marked x-flag/x-env can also be set with that "
    "CLI flag or environment variable, which take precedence over the file. Durations are Go duration "
    'strings ("5m", "1h30m") or seconds.'
)


def config_json_schema(kubernetes_definitions: Mapping[str, JSON]) -> dict[str, JSON]:
    """The JSON schema of the config file, self-contained.

    ``kubernetes_definitions`` are the ``$defs`` of ``schema/kubernetes-plugin.schema.json`` (generated
    from Kubernetes' own definitions); the ones the config refers to, and everything they refer to,
    are copied in. Output is deterministic for deterministic input.
    """
    schema: dict[str, JSON] = _resolve_kubernetes_refs(ControllerConfig.model_json_schema(by_alias=True))
    own: dict[str, JSON] = schema.pop("$defs", {})
    needed = _referenced_definitions(list(KUBERNETES_TYPES), kubernetes_definitions)
    clashes = sorted(set(own) & set(needed))
    if clashes:
        raise ValueError(f"config models and Kubernetes definitions share names: {', '.join(clashes)}")
    definitions = {**own, **{name: kubernetes_definitions[name] for name in needed}}
    _drop_titles(schema)
    for definition in own.values():
        _drop_titles(definition)
    for field in ControllerConfig.model_fields.values():
        if _kind(field) == _Kind("duration"):
            schema["properties"][str(field.alias)]["default"] = format_duration(field.default)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "config.schema.json",
        "title": "agent-stack controller config",
        "description": SCHEMA_DESCRIPTION,
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
        "$defs": dict(sorted(definitions.items())),
    }


def _resolve_kubernetes_refs(node: JSON) -> JSON:
    """Marker -> ``$ref``; a marker with more keywords (the config's own rules on top of Kubernetes'
    type, such as a volume's required name) becomes ``allOf: [$ref, those keywords]``."""
    if isinstance(node, dict):
        if _KUBERNETES_REF in node:
            ref = {"$ref": f"#/$defs/{node[_KUBERNETES_REF]}"}
            extra = {key: value for key, value in node.items() if key != _KUBERNETES_REF}
            return {"allOf": [ref, extra]} if extra else ref
        return {key: _resolve_kubernetes_refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_kubernetes_refs(item) for item in node]
    return node


def _referenced_definitions(roots: list[str], definitions: Mapping[str, JSON]) -> set[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        if name not in definitions:
            raise ValueError(f"Kubernetes definition {name!r} is missing")
        seen.add(name)
        pending.extend(_refs(definitions[name]))
    return seen


def _refs(node: JSON) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                yield value.removeprefix("#/$defs/")
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _drop_titles(definition: JSON) -> None:
    """Pydantic titles repeat the key names; descriptions carry the meaning. Mutates the fresh schema."""
    if isinstance(definition, dict):
        definition.pop("title", None)
        for prop in definition.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
