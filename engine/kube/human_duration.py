"""Durations the way ``kubectl`` prints ages (``45s``, ``3m20s``, ``2h``, ``5d3h``).

Upstream words its messages with Kubernetes' ``duration.HumanDuration`` ("The Kubernetes job spent
2m5s without starting a pod.", "x3 over 40s" in an events table); this reproduces its rounding so
the text reads the same: whole seconds below two minutes, then ever coarser units, each step keeping
at most two components.
"""

from __future__ import annotations

import math

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_YEAR = 365 * _DAY


def human_duration(seconds: float) -> str:
    """``seconds`` as kubectl shows an age. Up to one second in the future counts as ``0s`` (clock
    skew); further in the future is ``<invalid>``."""
    whole = math.trunc(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 2 * _MINUTE:
        return f"{whole}s"
    minutes = whole // _MINUTE
    if minutes < 10:
        rest = whole % _MINUTE
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 3 * 60:
        return f"{minutes}m"
    hours = whole // _HOUR
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    days = whole // _DAY
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = whole // _YEAR
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"
