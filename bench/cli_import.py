"""Start-up cost of ``engine test``: the time spent importing modules, before and after lazy loading.

``engine test`` runs in editor save hooks and CI loops, so its start-up is mostly import time. Each
number is the median over fresh interpreters of ``python -X importtime`` (top-level cumulative times
summed). The baselines are measured in this same run by importing, besides what is measured now, what
``engine test`` used to import and no longer does (the controller command, the linter with jsonschema,
the CEL package's interactive shell with prompt_toolkit, rich and asyncio), so machine load affects
both sides alike:

* **CLI module**: ``import engine.cli`` (what every command pays before it starts), then and now;
* **engine test run**: everything a real ``engine test --job examples/jobs/hello-world.json`` imports
  (the CLI, pydantic models, YAML, CEL, the engine), then and now.

Also printed: the wall time of the whole command and of a bare interpreter, for scale.
Run: ``.venv/bin/python bench/cli_import.py [RUNS]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "examples" / "jobs" / "hello-world.json"

NO_LONGER_IMPORTED = "import cel.cli, engine.controller.command, engine.lint\n"
OLD_CLI_IMPORTS = (
    NO_LONGER_IMPORTED
    + "import engine.cli, engine.core.evaluate, engine.policy.loader, engine.inputs, engine.render"
)
NEW_CLI_IMPORTS = "import engine.cli"
DRY_RUN = (
    "import sys, io, contextlib\n"
    "from engine.cli import main\n"
    f"sys.argv = ['engine', 'test', '--job', {str(JOB)!r}]\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try:\n"
    "        main()\n"
    "    except SystemExit:\n"
    "        pass\n"
)


def import_microseconds(code: str) -> int:
    """Sum of the top-level cumulative import times ``-X importtime`` reports for ``code``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = line[len("import time:") :].split("|", 2)
        if cumulative.strip().isdigit() and not name.startswith("  "):
            total += int(cumulative)
    return total


def wall_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - start


def _median_ms(code: str, runs: int) -> float:
    return statistics.median(import_microseconds(code) for _ in range(runs)) / 1000


def main(runs: int = 7) -> None:
    old_cli, new_cli = _median_ms(OLD_CLI_IMPORTS, runs), _median_ms(NEW_CLI_IMPORTS, runs)
    old_run, new_run = _median_ms(NO_LONGER_IMPORTED + DRY_RUN, runs), _median_ms(DRY_RUN, runs)
    engine = str(Path(sys.executable).with_name("engine"))
    command = statistics.median(wall_seconds([engine, "test", "--job", str(JOB)]) for _ in range(runs))
    bare = statistics.median(wall_seconds([sys.executable, "-c", "pass"]) for _ in range(runs))
    print(f"runs: {runs} (medians of import time)")
    for what, before, now in (
        ("CLI module import:  ", old_cli, new_cli),
        ("engine test imports:", old_run, new_run),
    ):
        print(f"{what} before {before:7.1f} ms   now {now:7.1f} ms   ({100 * now / before:.0f}%)")
    print(f"engine test --job wall time: {1000 * command:.1f} ms; bare interpreter: {1000 * bare:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
