"""Hot reload of the ``--policies`` directories: change behaviour without restarting the controller.

Every ``interval`` seconds (2 s by default) the reloader fingerprints the policy files the loader would
read: for each, its name, modification time, size and a hash of its content, following symlinks. That
is what makes Kubernetes ConfigMap volumes work: the kubelet writes a new hidden ``..<timestamp>``
directory and atomically re-points the ``..data`` symlink that the visible ``name.yaml`` symlinks go
through, so the visible entries never change, only what they resolve to (the content hash sees it;
hidden entries themselves are never loaded, as in the loader).

When the fingerprint changes, the whole set is loaded and validated again (in a worker thread: it
reads files and compiles expressions):

* valid: :class:`~engine.controller.policy_store.PolicyStore` swaps to it atomically and the policy
  names that were added, removed or changed are logged;
* invalid: the last good set stays in use, every problem is logged as its ``FILE:LINE:COL: message``
  line, ``buildkite_engine_policy_set_valid`` drops to 0 and readiness fails until a later change loads.

The fingerprint is taken *before* loading, so an edit landing during a load is picked up by the next
check instead of being lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.controller.metrics import EngineMetrics
from engine.controller.policy_store import PolicyStore
from engine.core.compiler import PolicyError, PolicySet
from engine.policy.loader import load_policies, policy_files
from engine.resources import default_policies_dir

DEFAULT_RELOAD_INTERVAL = 2.0

_log = logging.getLogger(__name__)

PolicyLoader = Callable[[Sequence[Path]], PolicySet]


def directory_fingerprint(paths: Sequence[Path]) -> str:
    """A digest of every policy file under ``paths``: name, mtime, size and content (symlinks followed)."""
    digest = hashlib.sha256()
    files, missing = policy_files(paths)
    for problem in missing:
        digest.update(f"missing {problem}\n".encode())
    for file in files:
        try:
            stat = file.stat()
            content = file.read_bytes()
        except OSError as exc:
            digest.update(f"unreadable {file} {exc.errno}\n".encode())
            continue
        content_hash = hashlib.sha256(content).hexdigest()
        digest.update(f"{file}\0{stat.st_mtime_ns}\0{stat.st_size}\0{content_hash}\n".encode())
    return digest.hexdigest()


def policy_digests(paths: Sequence[Path], *, include_defaults: bool = True) -> dict[str, str]:
    """``policy name → digest of its document`` for the effective set (a later same-named policy wins,
    as in the loader), to tell which policies a reload added, removed or changed."""
    sources = ([default_policies_dir()] if include_defaults else []) + list(paths)
    files, _ = policy_files(sources)
    digests: dict[str, str] = {}
    for file in files:
        try:
            documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        for document in documents:
            name = _policy_name(document)
            if name is not None:
                digests[name] = hashlib.sha256(repr(document).encode()).hexdigest()
    return digests


def _policy_name(document: object) -> str | None:
    if not isinstance(document, dict):
        return None
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


@dataclass(frozen=True)
class PolicyChanges:
    """Which policy names a successful reload added, removed or changed (each sorted)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @classmethod
    def between(cls, old: dict[str, str], new: dict[str, str]) -> PolicyChanges:
        return cls(
            added=tuple(sorted(set(new) - set(old))),
            removed=tuple(sorted(set(old) - set(new))),
            changed=tuple(sorted(name for name in set(old) & set(new) if old[name] != new[name])),
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("added", self.added), ("removed", self.removed), ("changed", self.changed))
            if names
        ]
        return "; ".join(parts) or "no policy changed"


@dataclass(frozen=True)
class ReloadResult:
    """What one reload did: ``changes`` when it loaded, ``problems`` when it was rejected."""

    loaded: bool
    changes: PolicyChanges | None = None
    problems: tuple[str, ...] = ()


class PolicyReloader:
    """Poll the policy directories and keep :class:`PolicyStore` in step with them."""

    def __init__(
        self,
        store: PolicyStore,
        paths: Sequence[Path],
        metrics: EngineMetrics,
        *,
        interval: float = DEFAULT_RELOAD_INTERVAL,
        include_defaults: bool = True,
    ) -> None:
        self._store = store
        self._paths = list(paths)
        self._metrics = metrics
        self.interval = interval
        self._include_defaults = include_defaults
        self._fingerprint: str | None = None
        self._digests: dict[str, str] | None = None
        metrics.policy_set_valid.set(1 if store.valid else 0)
        metrics.policies_loaded.set(len(store.current))

    async def run(self) -> None:
        """Check now and then every ``interval`` seconds, until cancelled. Never raises otherwise."""
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a reloader bug must not stop scheduling with the last good set
                _log.error("policy reload check failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def check(self) -> ReloadResult | None:
        """Reload if the files changed since the last check (the first check always loads).

        Returns what happened, or ``None`` when nothing changed on disk.
        """
        fingerprint = await asyncio.to_thread(directory_fingerprint, self._paths)
        if fingerprint == self._fingerprint:
            return None
        self._fingerprint = fingerprint
        return await self.reload()

    async def reload(self) -> ReloadResult:
        """Load and validate the files now; swap on success, keep the last good set on failure."""
        try:
            policies, digests = await asyncio.to_thread(self._load)
        except PolicyError as exc:
            return self._rejected(tuple(exc.problems))
        previous, self._digests = self._digests, digests
        self._store.replace(policies)
        self._metrics.policy_reloads.labels(result="loaded").inc()
        self._metrics.policy_set_valid.set(1)
        self._metrics.policies_loaded.set(len(policies))
        changes = PolicyChanges.between(previous if previous is not None else digests, digests)
        if previous is None:
            _log.debug("policy set checked: %d policies", len(policies))
        elif changes:
            _log.info("policy set reloaded (%d policies): %s", len(policies), changes.describe())
        else:
            _log.info("policy files changed but no policy did; %d policies in use", len(policies))
        return ReloadResult(loaded=True, changes=changes)

    def _load(self) -> tuple[PolicySet, dict[str, str]]:
        policies = load_policies(self._paths, include_defaults=self._include_defaults)
        return policies, policy_digests(self._paths, include_defaults=self._include_defaults)

    def _rejected(self, problems: tuple[str, ...]) -> ReloadResult:
        self._store.reject(problems)
        self._metrics.policy_reloads.labels(result="invalid").inc()
        self._metrics.policy_set_valid.set(0)
        _log.error(
            "policy reload rejected, still using the last good set (%d policies); problems:",
            len(self._store.current),
        )
        for problem in self._store.problems:
            _log.error("  %s", problem)
        return ReloadResult(loaded=False, problems=self._store.problems)
