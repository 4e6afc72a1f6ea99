"""Metadata, tags and names as a pipeline author would bend them: collisions with what the stack uses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.guardrails import UUID, all_containers, container, decide, denials, job, pod, warnings

RESERVED_LABELS = {
    "buildkite.com/job-uuid": "0193a001-7c1e-4d2a-9f3b-0c1d2e3f4a01",
    "buildkite.com/controller-id": "another-controller",
    "tag.buildkite.com/queue": "privileged",
    "tag.buildkite.com/gpu": "true",
    "job-name": "buildkite-0193a001-7c1e-4d2a-9f3b-0c1d2e3f4a01",
    "controller-uid": "5c3e0b1c-0000-4000-8000-000000000000",
    "batch.kubernetes.io/job-name": "someone-else",
    "policy.agent-stack.dev/changed-by": "nobody",
}
RESERVED_ANNOTATIONS = {
    "buildkite.com/job-url": "https://evil.example.com",
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "true",
}


@pytest.mark.parametrize("key", RESERVED_LABELS)
def test_the_steps_labels_cannot_collide_with_the_stacks(key: str) -> None:
    decision = decide(job(plugin={"metadata": {"labels": {key: RESERVED_LABELS[key], "team": "web"}}}))
    for labels in (
        decision.manifest["metadata"]["labels"],
        decision.manifest["spec"]["template"]["metadata"]["labels"],
    ):
        assert labels.get(key) != RESERVED_LABELS[key]
        assert labels["team"] == "web"
        assert labels["buildkite.com/job-uuid"] == UUID
        assert labels["tag.buildkite.com/queue"] == "kubernetes"
    assert warnings(decision) == [
        f"the step's metadata may not set {key}: the stack and Kubernetes use these keys to tell Jobs "
        "and pods apart, so they were left out"
    ]


@pytest.mark.parametrize("key", RESERVED_ANNOTATIONS)
def test_the_steps_annotations_cannot_collide_with_the_stacks(key: str) -> None:
    decision = decide(job(plugin={"metadata": {"annotations": {key: RESERVED_ANNOTATIONS[key]}}}))
    annotations = decision.manifest["spec"]["template"]["metadata"]["annotations"]
    assert annotations.get(key) != RESERVED_ANNOTATIONS[key]
    assert len(warnings(decision)) == 1


def test_the_admins_default_metadata_may_use_reserved_prefixes() -> None:
    config = {"default-metadata": {"labels": {"buildkite.com/team": "platform"}}}
    decision = decide(job(), config=config)
    assert decision.manifest["metadata"]["labels"]["buildkite.com/team"] == "platform"
    assert warnings(decision) == []


@pytest.mark.parametrize(
    "rules",
    [
        ["queue=kubernetes", "queue=*"],
        ["queue=*", "queue=kubernetes"],
        ["queue=kubernetes", "queue=kubernetes"],
        ["queue=kubernetes", "size=small", "size=large"],
        ["queue=kubernetes", "os=", "os=linux"],
    ],
)
def test_a_tag_given_twice_is_refused(rules: list[str]) -> None:
    decision = decide(job(rules=rules))
    assert [d.rule for d in decision.denials] == ["each-tag-once"]
    assert "more than once" in denials(decision)[0]


@pytest.mark.parametrize(
    "rules", [["queue=kubernetes", "Queue=*"], ["queue=kubernetes", "queue =*"], ["queue=kubernetes", "os"]]
)
def test_look_alike_tag_keys_are_other_tags(rules: list[str]) -> None:
    decision = decide(job(rules=rules))
    assert decision.admitted
    assert decision.manifest["metadata"]["labels"]["tag.buildkite.com/queue"] == "kubernetes"


@pytest.mark.parametrize(
    ("plugin", "names"),
    [
        ({"podSpec": {"containers": [{"name": "", "image": "a", "workingDir": ""}]}}, ["container-0"]),
        (
            {"podSpec": {"containers": [{"name": None, "image": "a"}, {"image": "b"}]}},
            ["container-0", "container-1"],
        ),
        (
            {"sidecars": [{"name": "", "image": "s"}, {"name": "db", "image": "p"}]},
            ["container-0", "sidecar-0", "db"],
        ),
    ],
)
def test_empty_names_get_the_defaults(plugin: dict[str, Any], names: list[str]) -> None:
    decision = decide(job(plugin=plugin))
    got = [c["name"] for c in pod(decision)["containers"] if c["name"] not in ("agent", "checkout")]
    assert got == names
    assert all(c.get("workingDir", "/workspace") != "" for c in all_containers(decision))


def test_an_empty_working_dir_is_the_workspace() -> None:
    decision = decide(job(plugin={"podSpec": {"containers": [{"image": "a", "workingDir": ""}]}}))
    assert container(decision, "container-0")["workingDir"] == "/workspace"


@pytest.mark.parametrize("name", ["agent", "checkout", "copy-agent", "\u0430gent"])
def test_a_step_container_named_like_a_stack_container_is_still_the_steps(name: str) -> None:
    """Its role is command, so protected-env restoring, $agent rules and the image checks do not
    mistake it for the stack's (the API then refuses duplicate names, failing the job once)."""
    plugin = {
        "podSpec": {
            "containers": [
                {"name": name, "image": "evil/x", "env": [{"name": "BUILDKITE_AGENT_TOKEN", "value": "x"}]}
            ]
        }
    }
    decision = decide(job(plugin=plugin), "tests/unit/guardrails/policies/no-evil-step.yaml")
    assert denials(decision) == [f"step container {name}"]
    assert any("may not set BUILDKITE_AGENT_TOKEN" in w for w in warnings(decision))


def test_a_patch_naming_checkout_when_checkout_is_skipped_removes_only_the_patch_made_one() -> None:
    plugin = {
        "checkout": {"skip": True},
        "podSpec": {"containers": [{"name": "checkout", "image": "a"}]},
        "podSpecPatch": {"containers": [{"name": "checkout", "env": [{"name": "X", "value": "1"}]}]},
    }
    decision = decide(job(plugin=plugin))
    assert [c["name"] for c in pod(decision)["containers"]].count("checkout") == 1
