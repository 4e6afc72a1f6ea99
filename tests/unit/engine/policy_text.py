"""Small builders for policy YAML used across the engine tests."""

from __future__ import annotations

import textwrap

from engine.core.compiler import PolicySet
from engine.policy.loader import compile_source

HEADER = "apiVersion: policy.agent-stack.dev/v1\nkind: Policy\n"


def policy(name: str, phase: str, body: str, match: str | None = None) -> str:
    """One policy document; ``body`` is the YAML under ``spec`` (rules, variables), unindented."""
    spec = f"  phase: {phase}\n"
    if match is not None:
        spec += f"  match: {match!r}\n"
    spec += textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n"
    return f"{HEADER}metadata: {{name: {name}}}\nspec:\n{spec}"


def policy_set(*documents: str, file: str = "test.yaml") -> PolicySet:
    return PolicySet.build(compile_source("---\n".join(documents), file))
