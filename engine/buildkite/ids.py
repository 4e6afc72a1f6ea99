"""Buildkite identifiers: GraphQL node IDs versus the UUIDs that agents and labels carry.

GraphQL arguments of type ``ID`` (a cluster filter, the job to cancel) want the opaque node ID, while
the controller only knows UUIDs (from the job listing and the ``buildkite.com/job-uuid`` label). The
cluster ID is documented to be ``base64("Cluster---<uuid>")``; job node IDs are *not* derived here, they
are read back from the API, so nothing depends on an undocumented encoding.
"""

from __future__ import annotations

import base64
import uuid as uuid_module


def cluster_graphql_id(cluster_uuid: str) -> str:
    """The GraphQL ``ID`` of a cluster, as Buildkite's ``jobs(cluster:)`` filter expects it."""
    return base64.b64encode(f"Cluster---{cluster_uuid}".encode()).decode("ascii")


def is_uuid(value: str) -> bool:
    """True for a canonical UUID string (what Buildkite uses for jobs, agents and clusters)."""
    try:
        return str(uuid_module.UUID(value)) == value.lower()
    except ValueError:
        return False
