"""Where the files shipped with the package live: the default policy set and the JSON schemas.

In a wheel they are force-included as ``engine/_default_policies`` and ``engine/_schema``; in a source
checkout (editable install, tests) they are the repository's top-level ``policies/`` and ``schema/``.
Keeping one canonical copy at the top level is what lets an admin read ``policies/`` top to bottom.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"none of {', '.join(str(c) for c in candidates)} exists; the installation is broken"
    )


def default_policies_dir() -> Path:
    """The directory holding the default policy set (agent-stack-k8s behaviour)."""
    return _first_existing(_PACKAGE_DIR / "_default_policies", _PACKAGE_DIR.parent / "policies")


def profile_policies_dir(profile: str) -> Path:
    """The directory of a profile's policies (``policies/profiles/<profile>``)."""
    return default_policies_dir() / "profiles" / profile


def profile_policy_dirs(profile: str) -> list[Path]:
    """What a profile loads after the default set: its directory, or nothing (``default``)."""
    from engine.model.profiles import PROFILES  # noqa: PLC0415 - pure data, kept out of import time

    chosen = PROFILES.get(profile)
    if chosen is None or not chosen.has_policies:
        return []
    return [profile_policies_dir(profile)]


def schema_dir() -> Path:
    """The directory holding the JSON schemas (policy, pipeline/plugin, config)."""
    return _first_existing(_PACKAGE_DIR / "_schema", _PACKAGE_DIR.parent / "schema")


def schema_path(name: str) -> Path:
    """Path of one schema file, e.g. ``schema_path("policy.schema.json")``."""
    return schema_dir() / name
