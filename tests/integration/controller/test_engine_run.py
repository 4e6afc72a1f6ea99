"""``engine run`` as a process: starts from flags and environment, logs JSON without secrets, creates
Jobs, and shuts down cleanly on SIGTERM (exit 0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import AGENT_TOKEN_SECRET, Controllers, wait_for

ROOT = Path(__file__).resolve().parents[3]
# The command registered exactly as engine/cli.py registers it, plus a second command so that "run"
# is a sub-command as in the real CLI.
LAUNCHER = """
import typer
from engine.controller.command import run_command
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("run")(run_command)
app.command("version")(lambda: None)
app()
"""


class OutputReader:
    """Collects a process's stderr lines on a thread, so the test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self.lines.append(line.rstrip("\n"))

    def messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in list(self.lines) if line.startswith("{")]

    def join(self) -> None:
        self._thread.join(10)


def test_engine_run_schedules_and_stops_gracefully_on_sigterm(
    controllers: Controllers, buildkite: FakeBuildkite, tmp_path: Path
) -> None:
    uuid = buildkite.add_job()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"org: test-org\nagent-token-secret: {AGENT_TOKEN_SECRET}\nnamespace: {controllers.namespace}\n"
    )
    env = {
        **os.environ,
        "CONFIG": str(config),
        "BUILDKITE_TOKEN": buildkite.graphql_token,
        "GRAPHQL_ENDPOINT": buildkite.graphql_url,
        "KUBECONFIG": str(controllers.kubeconfig),
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            "run",
            "--log-format",
            "json",
            "--health-port",
            "0",
            "--max-in-flight",
            "3",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output = OutputReader(process)
    try:
        wait_for(
            "the Kubernetes Job", lambda: uuid in controllers.jobs_by_uuid() or process.poll() is not None
        )
        assert process.poll() is None, "\n".join(output.lines)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output.join()
    messages = output.messages()
    assert any(message.startswith("config: ") and '"max-in-flight": 3' in message for message in messages)
    assert any("is polling Buildkite" in message for message in messages)
    assert any(message.startswith("received SIGTERM: shutting down") for message in messages)
    assert any(
        message.startswith("controller ") and message.endswith(" shutting down") for message in messages
    )
    assert all(line.startswith("{") for line in output.lines), "every log line is JSON"
    assert buildkite.graphql_token not in "\n".join(output.lines)
    assert buildkite.agent_token not in "\n".join(output.lines)


def test_engine_run_with_only_a_queue_and_the_agent_token_secret_uses_the_stacks_api(
    controllers: Controllers, buildkite: FakeBuildkite, tmp_path: Path
) -> None:
    """An upstream v0.28+ config: no GraphQL token, no organization; the agent endpoint points at the
    fake (the default is Buildkite's)."""
    uuid = buildkite.add_job()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"queue: kubernetes\nagent-token-secret: {AGENT_TOKEN_SECRET}\nnamespace: {controllers.namespace}\n"
        f"agent-config: {{endpoint: {buildkite.agent_url}}}\n"
    )
    env = {**os.environ, "KUBECONFIG": str(controllers.kubeconfig), "PYTHONPATH": str(ROOT)}
    env.pop("BUILDKITE_TOKEN", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            "run",
            "-f",
            str(config),
            "--log-format",
            "json",
            "--health-port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output = OutputReader(process)
    try:
        wait_for(
            "the Kubernetes Job", lambda: uuid in controllers.jobs_by_uuid() or process.poll() is not None
        )
        assert process.poll() is None, "\n".join(output.lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output.join()
    messages = output.messages()
    assert any("using the Stacks API (no buildkite-token or org is set)" in message for message in messages)
    assert any(
        message.startswith("registered stack agent-stack-k8s for cluster queue kubernetes")
        for message in messages
    )
    assert any(message == "deregistered stack agent-stack-k8s" for message in messages)
    assert buildkite.stacks.stacks["agent-stack-k8s"].state == "disconnected"
    assert buildkite.graphql_requests() == []
    assert buildkite.agent_token not in "\n".join(output.lines)
