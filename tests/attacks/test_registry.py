"""Registry allow-list example: no image from elsewhere reaches the pod, by any route.

Property: with the default policies and ``20-registry-allow-list.yaml``, the job is denied, or it is
admitted and every image in the final pod (every container kind and every ``image`` volume) starts
with one of the allowed prefixes.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.compiler import PolicySet
from tests.attacks import placement
from tests.attacks.harness import (
    ALLOWED_IMAGE,
    EVIL_IMAGE,
    Job,
    example,
    pod,
    policies,
    require_admitted,
    run,
    step_container,
)
from tests.attacks.oracle import images_outside

ALLOWED_PREFIXES = ("ghcr.io/buildkite/", "registry.example.com/", "public.ecr.aws/docker/library/")


def allow_list() -> PolicySet:
    return policies(example("20-registry-allow-list.yaml"))


def image_volume(reference: str) -> dict[str, Any]:
    return {"name": "tools", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}


def attacks() -> list[Any]:
    evil = {"image": EVIL_IMAGE}
    cases: list[tuple[str, Any]] = [
        (f"image-via-{name}", route(evil))
        for name, route in placement.ROUTES.items()
        if "replace" not in name
    ]
    cases += [
        ("image-via-podSpecPatch-replace-pod", placement.patch_replace_whole_pod(evil)),
        ("image-via-podSpecPatch-replace-container-list", placement.patch_replace_container_list(evil)),
        (
            "image-volume-via-podSpec",
            {"podSpec": {"containers": [step_container()], "volumes": [image_volume(EVIL_IMAGE)]}},
        ),
        ("image-volume-via-podSpecPatch", {"podSpecPatch": {"volumes": [image_volume(EVIL_IMAGE)]}}),
        (
            "image-volume-via-checkout-gitMirrors",
            {"checkout": {"gitMirrors": {"volume": image_volume(EVIL_IMAGE)}}},
        ),
        ("lookalike-host-suffix", placement.in_step({"image": "registry.example.com.attacker.io/x:1"})),
        ("lookalike-org-prefix", placement.in_sidecar({"image": "ghcr.io/buildkite-attacker/agent:1"})),
        ("no-registry-means-docker-hub", placement.in_step({"image": "buildkite/agent:3"})),
        ("leading-space", placement.in_step({"image": " " + ALLOWED_IMAGE})),
        ("missing-image-in-patch-added-container", {"podSpecPatch": {"containers": [{"name": "extra"}]}}),
    ]
    return [pytest.param(plugin, id=case_id) for case_id, plugin in cases]


def encoding_attacks() -> list[Any]:
    evil = {"image": EVIL_IMAGE}
    return [
        pytest.param(Job(plugins=placement.two_plugin_entries(evil)), id="image-in-second-plugin-entry"),
        pytest.param(Job(plugins_json=placement.duplicate_json_keys(evil)), id="image-in-duplicate-json-key"),
        pytest.param(
            Job(plugins=[{"kubernetes": placement.in_step(evil)}]), id="image-under-short-plugin-key"
        ),
    ]


@pytest.mark.parametrize("plugin", attacks())
def test_images_from_elsewhere_are_refused(plugin: Any) -> None:
    decision = run(allow_list(), Job(plugin=plugin))
    if decision.admitted:
        actual = images_outside(pod(decision), ALLOWED_PREFIXES)
        assert actual == []


@pytest.mark.parametrize("job", encoding_attacks())
def test_images_hidden_in_the_plugin_encoding_are_refused(job: Job) -> None:
    decision = run(allow_list(), job)
    if decision.admitted:
        actual = images_outside(pod(decision), ALLOWED_PREFIXES)
        assert actual == []


@pytest.mark.parametrize(
    "plugin",
    [
        pytest.param(None, id="hello-world"),
        pytest.param(
            {
                "podSpec": {
                    "containers": [step_container()],
                    "initContainers": [{"name": "prep", "image": "public.ecr.aws/docker/library/busybox:1"}],
                },
                "sidecars": [{"name": "db", "image": "registry.example.com/postgres:16"}],
            },
            id="allowed-images-everywhere",
        ),
    ],
)
def test_allowed_images_are_admitted(plugin: Any) -> None:
    decision = run(allow_list(), Job(plugin=plugin))
    require_admitted(decision)
    actual = images_outside(pod(decision), ALLOWED_PREFIXES)
    assert actual == []


def test_an_allowed_image_volume_passes_the_allow_list_and_only_kubernetes_refuses_it() -> None:
    """Correction: this was a control expecting admission. Image volumes are a Kubernetes 1.31 field,
    and the stack targets the v1.20 API, which would drop the field unseen: the engine's Kubernetes
    check refuses the Job (kind ``invalid``). What the allow-list must do is let the allowed image
    through, so the only denials are that check's, naming the volume."""
    plugin = {
        "podSpec": {
            "containers": [step_container()],
            "volumes": [image_volume("registry.example.com/data:1")],
        }
    }
    decision = run(allow_list(), Job(plugin=plugin))
    assert decision.denials
    for denial in decision.denials:
        assert denial.kind == "invalid", denial.render()
        assert "spec.template.spec.volumes[" in denial.message
