"""Reading a pod's status for init-container and image failures, and the messages about them."""

from __future__ import annotations

import pytest

from engine.controller.watchers.pod_checks import (
    failed_init_containers,
    go_quote,
    image_failures,
    is_system_container,
    pending_timeout_message,
)
from tests.unit.watchers.fakes import container_status, pod, terminated, waiting


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("agent", True),
        ("copy-agent", True),
        ("checkout", True),
        ("container-0", True),
        ("container-12", True),
        ("my-container-3-x", True),  # upstream's pattern is unanchored
        ("container-", False),
        ("nginx", False),
        ("mountain", False),
    ],
)
def test_system_containers(name: str, system: bool) -> None:
    assert is_system_container(name) is system


def test_only_non_zero_terminations_are_failures() -> None:
    status = pod(
        init_statuses=[
            container_status("ok", terminated(0, "Completed")),
            container_status("running", {"running": {}}),
            container_status("bad", terminated(1)),
        ]
    )
    assert [failure.name for failure in failed_init_containers(status)] == ["bad"]


def test_image_failures_fall_back_to_the_spec_image() -> None:
    status = pod(init_statuses=[{"name": "imagecheck", "state": waiting("ErrImageNeverPull")}])
    status["spec"]["initContainers"] = [{"name": "imagecheck", "image": "never:pulled"}]
    [failure] = image_failures(status)
    assert (failure.container, failure.image, failure.reason, failure.immediate) == (
        "imagecheck",
        "never:pulled",
        "ErrImageNeverPull",
        False,
    )


def test_other_waiting_reasons_are_not_image_failures() -> None:
    status = pod(
        init_statuses=[container_status("a", waiting("PodInitializing"))],
        statuses=[container_status("agent", waiting("ContainerCreating"))],
    )
    assert image_failures(status) == []


def test_go_quote_escapes_like_go() -> None:
    assert go_quote('odd "image"\n') == '"odd \\"image\\"\\n"'


def test_pending_message_without_conditions_has_no_conditions_block() -> None:
    assert (
        pending_timeout_message(900.4, pod())
        == "The pod has been in Pending state for 15m0s without starting.\n"
    )
