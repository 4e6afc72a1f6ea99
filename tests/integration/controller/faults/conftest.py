"""Fixtures of the fault tests, and the figures they measured, printed at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.buildkite import FakeBuildkite
from tests.integration.controller.conftest import AGENT_TOKEN_SECRET, Controllers
from tests.integration.controller.faults.tools import EngineProcess, Figures

_REPORTED: list[Figures] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """This test's figures; they are printed in the run's summary even when the test passes."""
    found = Figures(request.node.name)
    _REPORTED.append(found)
    return found


@pytest.fixture
def engine_run(
    controllers: Controllers, buildkite: FakeBuildkite, tmp_path: Path
) -> Iterator[Callable[..., EngineProcess]]:
    """Makes ``engine run`` processes for this test's namespace and fake Buildkite; each is stopped
    (SIGTERM, which must exit 0 unless the test killed it) when the test ends."""
    made: list[EngineProcess] = []

    def make(*, policy_dirs: tuple[Path, ...] = (), mode: str = "graphql", **config: object) -> EngineProcess:
        process = EngineProcess(
            tmp_path,
            buildkite,
            namespace=controllers.namespace,
            kubeconfig=controllers.kubeconfig,
            agent_token_secret=AGENT_TOKEN_SECRET,
            policy_dirs=policy_dirs,
            mode=mode,
            **config,
        )
        made.append(process)
        return process

    yield make
    for process in made:
        if process.runs:
            process.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORTED:
        terminalreporter.section("fault test figures")
        for found in _REPORTED:
            terminalreporter.write_line(found.render())
