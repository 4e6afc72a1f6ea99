"""The policy set the scheduler evaluates with, swapped atomically by hot reload.

A job takes :attr:`PolicyStore.current` once and evaluates with that object to the end, so a reload
in the middle of an evaluation never mixes two sets: the old ``PolicySet`` stays intact (it is
immutable) and the next job sees the new one. Replacing a reference is atomic in Python, so readers
need no lock.

When a reload fails the last good set stays in use and the store remembers the problems, which makes
the controller report itself not ready (``/readyz`` 503) until someone fixes the files: jobs keep being
scheduled, but an admin's change has not taken effect and a probe should say so.
"""

from __future__ import annotations

from engine.core.compiler import PolicySet


class PolicyStore:
    """The current policy set plus whether the latest reload attempt succeeded."""

    def __init__(self, policies: PolicySet) -> None:
        self._current = policies
        self._problems: tuple[str, ...] = ()

    @property
    def current(self) -> PolicySet:
        """The set to evaluate the next job with (always a complete, valid set)."""
        return self._current

    @property
    def valid(self) -> bool:
        """False while the files on disk do not load (the last good set is still in use)."""
        return not self._problems

    @property
    def problems(self) -> tuple[str, ...]:
        """``FILE:LINE:COL: message`` lines of the last failed reload; empty when valid."""
        return self._problems

    def replace(self, policies: PolicySet) -> None:
        self._current = policies
        self._problems = ()

    def reject(self, problems: tuple[str, ...]) -> None:
        self._problems = problems or ("the policy files did not load",)
