"""Agent tags parse like upstream and a job is taken only when its tags are a subset of the controller's."""

from __future__ import annotations

import pytest

from engine.model.tags import job_accepted_by_controller, parse_tags


def test_split_at_the_first_equals_sign() -> None:
    assert parse_tags(["queue=kubernetes", "expr=a=b=c", "empty="]) == (
        {"queue": "kubernetes", "expr": "a=b=c", "empty": ""},
        [],
    )


def test_entries_without_equals_are_invalid_and_reported_in_order() -> None:
    assert parse_tags(["queue=a", "nonsense", "", "os=linux", "x"]) == (
        {"queue": "a", "os": "linux"},
        ["nonsense", "", "x"],
    )


def test_a_later_entry_wins() -> None:
    assert parse_tags(["queue=a", "queue=b"]) == ({"queue": "b"}, [])


CONTROLLER = {"queue": "kubernetes", "os": "linux", "arch": "amd64"}


@pytest.mark.parametrize(
    ("job", "accepted"),
    [
        ({}, True),
        ({"queue": "kubernetes"}, True),
        ({"queue": "kubernetes", "os": "linux"}, True),
        ({"queue": "kubernetes", "os": "linux", "arch": "amd64"}, True),
        ({"queue": "kubernetes", "os": "*"}, True),
        ({"queue": "*", "gpu": "*"}, True),  # '*' accepts any value, even a tag the controller lacks
        ({"queue": "other"}, False),
        ({"queue": "kubernetes", "os": "windows"}, False),
        ({"queue": "kubernetes", "gpu": "true"}, False),
        ({"queue": "Kubernetes"}, False),
    ],
)
def test_job_tags_must_be_a_subset_of_controller_tags(job: dict[str, str], accepted: bool) -> None:
    assert job_accepted_by_controller(job, CONTROLLER) is accepted


def test_a_controller_wildcard_is_just_a_value() -> None:
    assert not job_accepted_by_controller({"os": "linux"}, {"os": "*"})
    assert job_accepted_by_controller({"os": "*"}, {"os": "*"})
