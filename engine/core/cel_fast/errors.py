"""The two ways a fast CEL program can fail, kept apart on purpose.

``Unsupported`` happens once, when an expression is compiled: the expression needs something this
evaluator does not implement, so the caller uses the ``cel`` library for it instead. ``CelError`` happens
per evaluation, exactly where the ``cel`` library would raise an evaluation error for the same input.
"""

from __future__ import annotations


class Unsupported(Exception):  # noqa: N818 - the name the integrator's API asks for
    """Compile time: this expression needs the real CEL library (the message says which feature)."""


class CelError(Exception):
    """Run time: the evaluation error the ``cel`` library would raise here (a one-line message)."""
