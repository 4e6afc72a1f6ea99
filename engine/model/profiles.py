"""The policy profiles: which upstream agent-stack-k8s release a controller behaves like.

A profile is a set of policies loaded after the default set (``policies/profiles/<name>/``), replacing
default policies by name and adding its own, plus the few facts outside policies that go with it: how
the step's ``kubernetes`` plugin is decoded (which fields exist), the oldest Kubernetes API its Jobs
need, and the job tags the controller does not match against its own. The config key ``profile``
selects one; ``default`` (agent-stack-k8s v0.20.2, with the defects later releases fixed) loads no
profile directory, so nothing changes for a config without the key.

This module is pure data; ``engine.resources`` finds the directories.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """One profile and what goes with it besides its policies."""

    name: str
    description: str
    head_plugin_fields: bool = False
    """Decode the kubernetes plugin with the fields of later releases (``k8s_types.HEAD_FIELDS``)."""
    minimum_kubernetes_version: str | None = None
    """The oldest ``kubernetes-version`` its Jobs can be checked against, and the default under it."""
    ignored_job_tags: tuple[str, ...] = ()
    """Job tags the controller does not require among its own (upstream's ``resource_class``)."""
    has_policies: bool = False
    """Whether ``policies/profiles/<name>/`` holds policies to load."""
    default_image: str | None = None
    """The agent image when the config names none (the agent release the upstream release links)."""


DEFAULT_PROFILE = "default"
UPSTREAM_V047 = "upstream-v0.47"

PROFILES: dict[str, Profile] = {
    DEFAULT_PROFILE: Profile(
        DEFAULT_PROFILE,
        "agent-stack-k8s v0.20.2 (GraphQL), with the defects later releases fixed: the default policy set",
    ),
    UPSTREAM_V047: Profile(
        UPSTREAM_V047,
        "agent-stack-k8s v0.47.0: native sidecars, resource classes, podTemplate, the step's image, job "
        "prefix and deadlines, image pull policies and checks, kubernetes-bootstrap containers",
        head_plugin_fields=True,
        minimum_kubernetes_version="1.29",
        ignored_job_tags=("resource_class",),
        has_policies=True,
        default_image="ghcr.io/buildkite/agent:3.136.2",
    ),
}
"""Every profile by name; ``profile`` in the config accepts exactly these."""
