"""``engine test --suite FILE|DIR``: load every suite, run the cases, report.

Text output is one line per case, ``PASS name`` or ``FAIL name: reason``, with further reasons and
details indented below a failing case, then the summary line ``N passed, M failed``. With several suite
files each case is prefixed by its file. ``-o json`` prints the same as one JSON document. Exit codes:
0 every case passed, 1 any failed, 2 a suite could not be loaded (nothing runs then; each problem is
one ``FILE:LINE:COL: message`` line on stderr), or ``--case`` matched no case.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine.suite.load import LoadedSuite, SuiteError, load_suite, suite_files
from engine.suite.run import CaseResult, run_suite

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def run_suites_command(
    paths: list[Path], *, case: str | None = None, output: str = "yaml"
) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of running the suites at ``paths``."""
    files, problems = suite_files(paths)
    pattern: re.Pattern[str] | None = None
    if case is not None:
        try:
            pattern = re.compile(case)
        except re.error as exc:
            problems.append(f"--case: invalid regex {case!r}: {exc}")
    suites: list[LoadedSuite] = []
    for file in files:
        try:
            suites.append(load_suite(file))
        except SuiteError as exc:
            problems.extend(exc.problems)
    if problems:
        return EXIT_INVALID, "", "".join(line + "\n" for line in problems)
    results = [result for suite in suites for result in run_suite(suite, pattern)]
    if not results:
        return EXIT_INVALID, "", f"--case: no case matches /{case}/\n"
    failed = sum(1 for r in results if not r.passed)
    text = render_json(results) if output == "json" else render_text(results, prefix=len(suites) > 1)
    return (EXIT_FAILED if failed else EXIT_OK), text, ""


def summary(results: list[CaseResult]) -> str:
    failed = sum(1 for r in results if not r.passed)
    return f"{len(results) - failed} passed, {failed} failed"


def render_text(results: list[CaseResult], *, prefix: bool = False) -> str:
    lines: list[str] = []
    for result in results:
        name = f"{result.suite}: {result.name}" if prefix else result.name
        if result.passed:
            lines.append(f"PASS {name}")
            continue
        first, *rest = result.failures
        lines.append(f"FAIL {name}: {first.kind}: {first.message}")
        lines.extend(f"     {detail}" for detail in first.details)
        for failure in rest:
            lines.append(f"     {failure.kind}: {failure.message}")
            lines.extend(f"       {detail}" for detail in failure.details)
    lines.append(summary(results))
    return "\n".join(lines) + "\n"


def render_json(results: list[CaseResult]) -> str:
    failed = sum(1 for r in results if not r.passed)
    document = {
        "passed": len(results) - failed,
        "failed": failed,
        "cases": [
            {
                "suite": r.suite,
                "name": r.name,
                "where": r.where,
                "passed": r.passed,
                "failures": [
                    {"kind": f.kind, "message": f.message, "details": list(f.details)} for f in r.failures
                ],
            }
            for r in results
        ],
    }
    return json.dumps(document, indent=2) + "\n"
