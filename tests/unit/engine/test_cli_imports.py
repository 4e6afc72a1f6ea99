"""``engine test`` starts without the controller, the GraphQL client or the Kubernetes client, and
without the CEL package's interactive shell: checked in a fresh interpreter, by what it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN_PREFIXES = (
    "engine.controller",
    "engine.buildkite",
    "engine.kube",
    "kubernetes",
    "gql",
    "aiohttp",
    "graphql",
    "prometheus_client",
    "jsonschema",
    "cel.cli",
    "prompt_toolkit",
    "asyncio",
)
PROGRAM = """
import contextlib, io, json, sys
from engine.cli import main
sys.argv = ["engine", "test", "--job", {job!r}{extra}]
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({{"code": code, "out": len(out.getvalue()), "modules": sorted(sys.modules)}}))
"""


def imported_by(*extra: str) -> dict[str, object]:
    job = str(ROOT / "examples" / "jobs" / "hello-world.json")
    suffix = "".join(f", {arg!r}" for arg in extra)
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(job=job, extra=suffix)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return data


def forbidden(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in FORBIDDEN_PREFIXES)]


def test_engine_test_imports_no_controller_or_client() -> None:
    data = imported_by()
    assert data["code"] == 0
    assert isinstance(data["out"], int)
    assert data["out"] > 1000, "the Job was printed"
    assert forbidden(data["modules"]) == []


def test_explain_and_pipeline_paths_stay_light_too() -> None:
    data = imported_by("--explain", "-o", "json")
    assert data["code"] == 0
    assert forbidden(data["modules"]) == []


def test_cel_still_imports_its_shell_for_whoever_asks() -> None:
    program = (
        "import engine.core.expressions, sys; import cel.cli; "
        "print(cel.cli.__name__, 'prompt_toolkit' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["cel.cli", "True"]
