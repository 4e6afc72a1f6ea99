"""Turning a container's ``command`` + ``args`` into the ``BUILDKITE_COMMAND`` the agent runs.

Command containers do not run their own entrypoint: the agent's bootstrap runs ``BUILDKITE_COMMAND``
with ``/bin/sh -ec``. The *interposer* decides how the Kubernetes-style ``command``/``args`` lists
become that one string (reference §3.6):

* ``buildkite`` (also ``""``, the default): each ``command`` item is a full shell line, as in a
  pipeline's ``commands:``; the lines are joined with newlines and the shell-quoted ``args`` are
  appended to the last line.
* ``vector``: ``command`` + ``args`` is an exec vector, as Kubernetes means it: every item is
  shell-quoted and the items joined with spaces.
* ``legacy``: ``command`` + ``args`` joined with spaces, unquoted (before upstream v0.15).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.core.functions.shellquote import shell_join
from engine.model.config import INTERPOSERS

__all__ = ["INTERPOSERS", "interpose"]


def interpose(mode: str, command: Sequence[str], args: Sequence[str]) -> str:
    """``BUILDKITE_COMMAND`` for ``command`` + ``args`` under interposer ``mode``.

    Raises ``ValueError('invalid command interposer "<mode>"')`` for an unknown mode.
    """
    if mode in ("", "buildkite"):
        lines = "\n".join(command)
        return f"{lines} {shell_join(args)}" if args else lines
    if mode == "vector":
        return shell_join([*command, *args])
    if mode == "legacy":
        return " ".join([*command, *args])
    raise ValueError(f"invalid command interposer {json.dumps(mode, ensure_ascii=False)}")
