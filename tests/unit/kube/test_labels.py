"""Reading the job UUID, the agent tags and the finished state back from Jobs and pods."""

from __future__ import annotations

from typing import Any

import pytest

from engine.kube.labels import (
    CONTROLLER_ID_LABEL,
    JOB_UUID_LABEL,
    TAG_LABEL_PREFIX,
    job_is_finished,
    job_uuid_of,
    tags_from_labels,
)

UUID = "0190f3a4-5b6c-7d8e-9f00-112233445566"


def labelled(labels: Any) -> dict[str, Any]:
    return {"metadata": {"name": "x", "labels": labels}}


def test_label_keys_are_upstreams() -> None:
    assert (JOB_UUID_LABEL, CONTROLLER_ID_LABEL, TAG_LABEL_PREFIX) == (
        "buildkite.com/job-uuid",
        "buildkite.com/controller-id",
        "tag.buildkite.com/",
    )


def test_job_uuid_is_read_from_its_label() -> None:
    assert job_uuid_of(labelled({JOB_UUID_LABEL: UUID})) == UUID


def test_job_uuid_is_returned_in_canonical_form() -> None:
    assert job_uuid_of(labelled({JOB_UUID_LABEL: UUID.upper()})) == UUID


@pytest.mark.parametrize(
    "obj",
    [
        labelled({JOB_UUID_LABEL: "not-a-uuid"}),
        labelled({JOB_UUID_LABEL: ""}),
        labelled({"other": UUID}),
        labelled(None),
        {"metadata": {"name": "no-labels"}},
        {},
    ],
    ids=["invalid", "empty", "absent", "labels-null", "no-labels", "no-metadata"],
)
def test_missing_or_invalid_job_uuid_reads_as_none(obj: dict[str, Any]) -> None:
    assert job_uuid_of(obj) is None


def test_tags_come_from_tag_labels_only_and_sorted() -> None:
    labels = {
        "tag.buildkite.com/queue": "kubernetes",
        "tag.buildkite.com/os": "linux",
        JOB_UUID_LABEL: UUID,
        "tag.buildkite.com/": "no-key",
        "app": "x",
    }
    assert tags_from_labels(labels) == ["os=linux", "queue=kubernetes"]


def test_tag_values_may_be_empty() -> None:
    assert tags_from_labels({"tag.buildkite.com/priority": ""}) == ["priority="]


@pytest.mark.parametrize(
    ("conditions", "finished"),
    [
        ([{"type": "Complete", "status": "True"}], True),
        ([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}], True),
        ([{"type": "Failed", "status": "False"}], False),
        ([{"type": "Suspended", "status": "True"}], False),
        ([], False),
        (None, False),
    ],
)
def test_job_is_finished_needs_a_true_complete_or_failed_condition(conditions: Any, finished: bool) -> None:
    assert job_is_finished({"status": {"conditions": conditions}}) is finished


def test_job_without_status_is_not_finished() -> None:
    assert not job_is_finished({"metadata": {"name": "fresh"}})
