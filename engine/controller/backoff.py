"""The controller's one back-off shape: a first wait that doubles on each failed try, up to a cap."""

from __future__ import annotations


def doubling_delay(attempts: int, first: float, most: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: ``first``, doubling, at most
    ``most`` (with 5 and 60: 5, 10, 20, 40, then 60)."""
    return min(most, first * 2.0 ** (attempts - 1))
