"""The controller image, checked statically (no Docker engine here): what the Dockerfile says.

Build it with ``docker build -t <registry>/<name>:<tag> .`` from the repository root.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chart import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
BASE_IMAGE = re.compile(r"^python:3\.11-slim(@sha256:[0-9a-f]{64})?$")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    argument: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def arguments(self, keyword: str) -> list[str]:
        return [i.argument for i in self.instructions if i.keyword == keyword]


def parse_instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions: comments dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, argument = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    current: list[Instruction] = []
    base, name = "", None
    for instruction in parse_instructions(text):
        if instruction.keyword == "FROM":
            if base:
                stages.append(Stage(base, name, tuple(current)))
            words = [w for w in instruction.argument.split() if not w.startswith("--")]
            base = words[0]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            current = []
        else:
            assert base, f"{instruction.keyword} before the first FROM"
            current.append(instruction)
    stages.append(Stage(base, name, tuple(current)))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


def test_parser_joins_continuations_and_names_stages() -> None:
    """The checks below are only as good as the parser."""
    parsed = parse_stages("# c\nFROM a:1 AS one\nRUN x \\\n  # note\n  y\nFROM b\nUSER 7\n")
    assert parsed == [
        Stage("a:1", "one", (Instruction("RUN", "x y"),)),
        Stage("b", None, (Instruction("USER", "7"),)),
    ]


def test_every_stage_is_python_3_11_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "multi-stage: build tools stay out of the final image"
    for stage in stages:
        assert BASE_IMAGE.match(stage.base), stage.base


def test_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].arguments("USER")
    assert users, "the final stage sets no USER, so it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_final_stage_starts_the_engine_console_script_without_a_shell(stages: list[Stage]) -> None:
    final = stages[-1]
    entrypoint = json.loads(final.arguments("ENTRYPOINT")[-1])  # exec (JSON) form: no /bin/sh -c
    command = json.loads(final.arguments("CMD")[-1])
    assert entrypoint == ["engine"]
    assert command == ["run"]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "engine" in scripts, "ENTRYPOINT names a console script the package does not install"


def test_final_stage_copies_only_the_built_environment(stages: list[Stage]) -> None:
    final, builders = stages[-1], {s.name for s in stages[:-1]}
    copies = final.arguments("COPY")
    assert copies, "the final stage copies nothing"
    for copy in copies:
        sources = re.findall(r"--from=(\S+)", copy)
        assert sources, f"final stage copies from the build context: {copy}"
        assert sources[0] in builders, f"final stage copies from an unknown stage: {copy}"
    assert final.arguments("RUN") == [], "nothing is installed in the runtime stage"


def test_package_is_installed_without_dev_extras(stages: list[Stage]) -> None:
    installs = [run for stage in stages for run in stage.arguments("RUN") if "pip install" in run]
    assert installs
    for install in installs:
        assert "[dev]" not in install
        assert "-e " not in install, "an editable install would point at the build stage's sources"


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out (plain patterns; no ``!`` exceptions in our file)."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        assert not pattern.startswith("!"), "exceptions are not supported by this check"
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts):
            return True
    return False


def test_everything_the_build_copies_is_in_the_context(stages: list[Stage]) -> None:
    patterns = dockerignore_patterns()
    context_copies = [c for s in stages for c in s.arguments("COPY") if "--from=" not in c]
    sources = [src for copy in context_copies for src in copy.split()[:-1]]
    assert "pyproject.toml" in sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_wheel_contents_are_copied_into_the_build(stages: list[Stage]) -> None:
    """pyproject.toml builds the wheel from these paths; a missing COPY breaks the image build."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {*wheel["packages"], *wheel.get("force-include", {}), project["project"]["readme"]}
    copied = {
        src.rstrip("/")
        for s in stages
        for copy in s.arguments("COPY")
        if "--from=" not in copy
        for src in copy.split()[:-1]
    }
    assert needed <= copied


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".git/config",
        ".venv/bin/python",
        "engine/__pycache__/cli.cpython-311.pyc",
        "tests/conftest.py",
    ):
        assert ignored(path, patterns), path
    assert not ignored("engine/cli.py", patterns)
