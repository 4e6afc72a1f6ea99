"""End to end: policies change without a restart; a broken change is refused while the old set works."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import Controllers, wait_for


def team_label_policy(team: str) -> str:
    return f"""\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {{name: team-label}}
spec:
  phase: customize
  rules:
  - name: label
    patch: {{metadata: {{labels: {{team: {team}}}}}}}
"""


BROKEN = """\
apiVersion: policy.agent-stack.dev/v1
kind: Policy
metadata: {name: team-label}
spec:
  phase: customize
  rules:
  - name: label
    patch: {metadata: {labels: {team: "${{ job.nosuchfunction( }}"}}}
"""


def replace_file(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(text)
    os.replace(temporary, path)


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_valid_changes_apply_and_invalid_ones_keep_the_last_good_set(
    controllers: Controllers, buildkite: FakeBuildkite, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    policy = policies / "50-team.yaml"
    policy.write_text(team_label_policy("a"))
    controller = controllers.start(policy_dirs=(policies,), reload_interval=0.2, health_port=0)
    port = controller.runtime.health_ports["health"]

    def team_of(uuid: str) -> str:
        [job] = wait_for(f"the Job of {uuid}", lambda: controllers.jobs_by_uuid().get(uuid))
        return str(job["metadata"]["labels"]["team"])

    assert team_of(buildkite.add_job()) == "a"
    assert readyz(port)[0] == 200
    # the reloader's first look at the files counts as a load too; wait for it, or it could be
    # mistaken for the reload of the change below on a slow machine
    wait_for(
        "the first check of the files",
        lambda: controller.metric("buildkite_engine_policy_reloads_total", result="loaded") >= 1,
    )

    loaded = controller.metric("buildkite_engine_policy_reloads_total", result="loaded")
    replace_file(policy, team_label_policy("b"))
    wait_for(
        "the reload",
        lambda: controller.metric("buildkite_engine_policy_reloads_total", result="loaded") > loaded,
    )
    assert team_of(buildkite.add_job()) == "b"

    replace_file(policy, BROKEN)
    wait_for("the rejected reload", lambda: controller.metric("buildkite_engine_policy_set_valid") == 0)
    status, text = readyz(port)
    assert status == 503
    assert f"{policy}:8:" in text
    assert team_of(buildkite.add_job()) == "b"  # still scheduling, with the last good set

    replace_file(policy, team_label_policy("c"))
    wait_for("readiness again", lambda: readyz(port)[0] == 200)
    assert team_of(buildkite.add_job()) == "c"
