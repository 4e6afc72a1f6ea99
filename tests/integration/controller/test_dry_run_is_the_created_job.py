"""What passes a dry run deploys: ``engine test`` prints, byte for byte, the Job the controller sends.

The controller runs against the real API server and the fake Buildkite. Its Kubernetes client is
observed at the one call that creates Jobs (a recording wrapper that forwards to the real client, so
the Job is really created); the same Buildkite job and config go through the ``engine`` command as a
separate process, as an admin would run it. The JSON ``engine test -o json`` prints must be exactly
the JSON rendering of the body the controller sent, and the API server must have stored all of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from engine import __version__
from engine.core.finish import CHANGED_BY_ANNOTATION, CONTROLLER_ID_LABEL, WARNINGS_HOOK_ANNOTATION
from engine.kube.client import KubeClient
from engine.model.jsonvalue import JSONObject
from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers, wait_for
from tests.integration.test_golden_server_validation import differences

ENGINE = [str(Path(sys.executable).parent / "engine")]
PLUGINS = [
    {
        "github.com/buildkite-plugins/kubernetes-buildkite-plugin": {
            "podSpec": {"containers": [{"image": "alpine:3.20", "command": ["make", "test"]}]},
            "sidecars": [{"name": "cache", "image": "redis:7"}],
            "comandParams": {"interposer": "vector"},  # a typo: a warning, and the job-log hook
        }
    }
]


class RecordingCreator:
    """Forwards ``create_job`` to the real client and keeps every manifest it was given."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.sent: list[JSONObject] = []
        self.original = kube.create_job

    async def create_job(self, manifest: Mapping[str, Any], *, want_uid: bool = False) -> str | None:
        self.sent.append(json.loads(json.dumps(manifest)))
        return await self.original(manifest, want_uid=want_uid)


def engine_test(job: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENGINE, "test", "--job", str(job), "--config", str(config), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_engine_test_prints_exactly_the_job_the_controller_creates(
    controllers: Controllers, buildkite: FakeBuildkite, tmp_path: Path
) -> None:
    controller = controllers.start()
    components = controller.runtime.components
    assert components is not None
    recorder = RecordingCreator(components.kube)
    components.kube.create_job = recorder.create_job  # type: ignore[method-assign]

    uuid = buildkite.add_job(command="make test", plugins=PLUGINS)
    [listed] = wait_for("the Kubernetes Job", lambda: controllers.jobs_by_uuid().get(uuid), timeout=60)
    [sent] = recorder.sent
    response: Any = controllers.batch.read_namespaced_job(
        listed["metadata"]["name"], controllers.namespace, _preload_content=False
    )
    created = json.loads(response.data)

    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(buildkite.job(uuid).node), encoding="utf-8")
    config_file = tmp_path / "config.yaml"
    config = controllers.config().model_dump(mode="json", by_alias=True, exclude_none=True)
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    dry_run = engine_test(job_file, config_file)

    assert dry_run.returncode == 0, dry_run.stderr
    assert dry_run.stdout == json.dumps(sent, indent=2, sort_keys=True) + "\n"
    assert differences(sent, created) == []  # the server kept every field the dry run promised
    # The parts the controller used to add itself are in both, and so is the job-log hook.
    labels: dict[str, Any] = created["metadata"]["labels"]
    assert labels[CONTROLLER_ID_LABEL] == controller.runtime.controller_id
    assert (
        created["spec"]["template"]["metadata"]["labels"][CONTROLLER_ID_LABEL] == labels[CONTROLLER_ID_LABEL]
    )
    assert created["metadata"]["namespace"] == controllers.namespace
    assert created["metadata"]["annotations"][CHANGED_BY_ANNOTATION].endswith(f",stack@{__version__}")
    assert "comandParams" in created["spec"]["template"]["metadata"]["annotations"][WARNINGS_HOOK_ANNOTATION]
    assert 'did you mean "commandParams"' in dry_run.stderr
