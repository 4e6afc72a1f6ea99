"""Agent tags (``queue=kubernetes``): parsing and the rule that decides which jobs a controller takes.

A Buildkite job asks for agents with ``agentQueryRules`` (``["queue=gpu", "os=*"]``); the controller
has its own ``tags``. Upstream takes a job only when every tag the job asks for is one the controller
has with the same value, or the job accepts any value with ``*``. Extra controller tags do not matter
(the job's tags must be a subset of the controller's), and only the ``queue`` tag is sent to Buildkite
as a filter, so everything else is decided here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

WILDCARD = "*"


def parse_tags(rules: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Split each ``key=value`` at its first ``=``; return the map and the entries that had no ``=``.

    A later entry with the same key wins, as in upstream's map-building loop.
    """
    tags: dict[str, str] = {}
    invalid: list[str] = []
    for rule in rules:
        key, separator, value = rule.partition("=")
        if separator:
            tags[key] = value
        else:
            invalid.append(rule)
    return tags, invalid


def job_accepted_by_controller(job_tags: Mapping[str, str], controller_tags: Mapping[str, str]) -> bool:
    """True when every job tag is a controller tag with an equal value, or the job's value is ``*``."""
    return all(
        value == WILDCARD or (key in controller_tags and controller_tags[key] == value)
        for key, value in job_tags.items()
    )
