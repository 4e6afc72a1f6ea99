"""The controller ID: configured, or derived from namespace and queue as a valid label value."""

from __future__ import annotations

import pytest

from engine.model.controller_id import (
    ControllerIdError,
    controller_id,
    default_controller_id,
    is_label_value,
)


def test_the_default_is_namespace_dot_queue() -> None:
    assert default_controller_id("buildkite", "kubernetes") == "buildkite.kubernetes"


@pytest.mark.parametrize(
    "queue",
    ["my queue", "team/gpu", "-leading", "x" * 80, "", "ünïcode"],
)
def test_awkward_queues_still_give_valid_distinct_stable_ids(queue: str) -> None:
    value = default_controller_id("buildkite", queue)
    assert is_label_value(value)
    assert value
    assert value == default_controller_id("buildkite", queue)
    assert value != default_controller_id("buildkite", queue + "2")
    assert value != default_controller_id("other", queue)


def test_similar_queues_that_clean_up_alike_stay_distinct() -> None:
    assert default_controller_id("ns", "a/b") != default_controller_id("ns", "a b")


def test_a_configured_id_wins_and_must_be_a_label_value() -> None:
    assert controller_id("agent-stack-k8s", "ns", "q") == "agent-stack-k8s"
    assert controller_id("", "ns", "q") == "ns.q"
    with pytest.raises(ControllerIdError, match="not a valid label value"):
        controller_id("has spaces", "ns", "q")
