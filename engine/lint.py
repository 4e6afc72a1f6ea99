"""``engine lint``: find mistakes in a pipeline's ``kubernetes`` plugin blocks before a job runs.

At run time the plugin is decoded leniently (``engine.model.plugin``): a misspelt field is silently
ignored and the pod comes out different from what the author meant. Linting is the strict
counterpart for authors: the pipeline file is validated against ``schema/pipeline.schema.json``,
which describes every ``kubernetes`` plugin entry (top-level and group steps, list and map
``plugins`` forms, short and canonical keys, optionally ``#ref``-pinned) with the Kubernetes types and
``additionalProperties: false``. Each schema error becomes one :class:`LintProblem` whose path reads
like ``steps[2].plugins[0].kubernetes.podSpec.containers[0].imagee``.

Output format proposed for the CLI (see :meth:`LintResult.render`): one ``FILE: path: message`` line
per problem (exit 1), or ``FILE: valid (N kubernetes plugin blocks)`` (exit 0); a file that cannot
be read or parsed raises :class:`LintError`, whose message is the single line to print (exit 2).
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from engine.model import k8s_types
from engine.model.jsonvalue import JSON, Path, render_path
from engine.model.plugin import (
    describe_value,
    invalid_quantity_message,
    invalid_time_message,
    unknown_field_message,
    unknown_plugin_field_problems,
)
from engine.pipeline.source import PipelineReadError, Positions
from engine.pipeline.source import load_pipeline_with_positions as read_pipeline_with_positions
from engine.resources import schema_path

PIPELINE_SCHEMA = "pipeline.schema.json"
_PLUGIN_ENTRY_DEF = "PipelinePluginEntry"
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "a list",
}
_INTEGER_BITS = {2**31 - 1: 32, -(2**31): 32, 2**63 - 1: 64, -(2**63): 64}


@dataclass(frozen=True, slots=True)
class LintProblem:
    """One problem: ``path`` in the document (``""`` for the whole document) and what is wrong;
    ``line``/``column`` (1-based) where it is in the file, when the file was read from disk."""

    path: str
    message: str
    line: int | None = field(default=None, compare=False)
    column: int | None = field(default=None, compare=False)

    def where(self, file: pathlib.Path) -> str:
        return f"{file}:{self.line}:{self.column}" if self.line is not None else str(file)


@dataclass(frozen=True, slots=True)
class LintResult:
    """The outcome of linting one file: its problems and how many kubernetes plugin blocks it has
    (so "valid" with 0 blocks tells the author a misspelt plugin key was not checked at all)."""

    file: pathlib.Path
    problems: tuple[LintProblem, ...]
    plugin_blocks: int

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def render(self) -> list[str]:
        """Lines for the terminal: ``FILE: path: message`` per problem, or one ``FILE: valid`` line."""
        if self.ok:
            plural = "" if self.plugin_blocks == 1 else "s"
            return [f"{self.file}: valid ({self.plugin_blocks} kubernetes plugin block{plural})"]
        return [
            f"{p.where(self.file)}: {p.path}: {p.message}" if p.path else f"{p.where(self.file)}: {p.message}"
            for p in self.problems
        ]


class LintError(Exception):
    """The file cannot be read or is not YAML; ``str()`` is one line starting with the file name."""


LATER_FIELD = (
    "unknown field: agent-stack-k8s added it after v0.20.2, and only the upstream-v0.47 profile reads it"
)


def lint_pipeline(path: pathlib.Path, *, head: bool = False) -> LintResult:
    """Read, parse and lint one pipeline file (``head``: for the upstream-v0.47 profile)."""
    document, positions = load_pipeline_with_positions(path)
    return LintResult(
        file=path,
        problems=tuple(lint_pipeline_document(document, positions, head=head)),
        plugin_blocks=len(kubernetes_plugin_blocks(document)),
    )


def lint_pipeline_document(
    doc: JSON, positions: Positions | None = None, *, head: bool = False
) -> list[LintProblem]:
    """Problems of a parsed pipeline document, sorted by path; ``[]`` when it is valid. With
    ``positions`` (from :func:`load_pipeline_with_positions`) each problem knows its line and column.

    The schema knows the plugin fields of agent-stack-k8s v0.47; unless ``head`` (the upstream-v0.47
    profile), the fields added after v0.20.2 are reported as unknown, since the default profile ignores
    them."""
    if doc is None:
        return [LintProblem("", "the pipeline is empty", *((1, 1) if positions is not None else ()))]
    errors = list(_pipeline_validator().iter_errors(doc))
    typed_paths = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    problems: list[tuple[Path, LintProblem]] = []
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator != "type" and path in typed_paths:
            continue  # a value of the wrong type: its other complaints (enum, pattern) are noise
        problems.extend(_problems_of(error, path))
    if not head:
        problems.extend(_later_fields(doc))
    problems.sort(key=lambda item: (_sort_key(item[0]), item[1].message))
    if positions is None:
        return [problem for _, problem in problems]
    return [_positioned(problem, path, positions) for path, problem in problems]


def _later_fields(doc: JSON) -> list[tuple[Path, LintProblem]]:
    found: list[tuple[Path, LintProblem]] = []
    for block_path, config in kubernetes_plugin_blocks(doc):
        known_later = {path for path, _ in unknown_plugin_field_problems(config, head=True)}
        for field_path, _ in unknown_plugin_field_problems(config):
            if field_path in known_later:
                continue
            path = (*block_path, *_segments(field_path))
            found.append((path, LintProblem(render_path(path), LATER_FIELD)))
    return found


def _segments(rendered: str) -> Path:
    """``checkout.extraVolumeMounts`` -> ``("checkout", "extraVolumeMounts")`` (plugin field paths)."""
    out: list[str | int] = []
    for part in rendered.split("."):
        name, _, rest = part.partition("[")
        out.append(name)
        if rest:
            out.extend(int(index) for index in rest.rstrip("]").split("]["))
    return tuple(out)


def _positioned(problem: LintProblem, path: Path, positions: Positions) -> LintProblem:
    for end in range(len(path), -1, -1):
        found = positions.get(path[:end])
        if found is not None:
            return LintProblem(problem.path, problem.message, found[0], found[1])
    return problem


def kubernetes_plugin_blocks(doc: JSON) -> list[tuple[Path, JSON]]:
    """``(path, config)`` of every kubernetes plugin entry, in document order."""
    key_pattern = _kubernetes_plugin_key_pattern()
    if isinstance(doc, list):
        return list(_blocks_in_steps(doc, (), key_pattern))
    if isinstance(doc, dict):
        return list(_blocks_in_steps(doc.get("steps"), ("steps",), key_pattern))
    return []


def load_pipeline(path: pathlib.Path) -> JSON:
    """The YAML document in ``path`` as Buildkite reads it, or :class:`LintError`."""
    return load_pipeline_with_positions(path)[0]


def load_pipeline_with_positions(path: pathlib.Path) -> tuple[JSON, Positions]:
    """The YAML document in ``path`` and where each value starts, or :class:`LintError`."""
    try:
        return read_pipeline_with_positions(path)
    except PipelineReadError as exc:
        raise LintError(str(exc)) from None


@functools.cache
def _pipeline_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(PIPELINE_SCHEMA).read_text(encoding="utf-8"))
    return schema


@functools.cache
def _pipeline_validator() -> jsonschema.protocols.Validator:
    schema = _pipeline_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


@functools.cache
def _kubernetes_plugin_key_pattern() -> re.Pattern[str]:
    """The schema's own pattern for kubernetes plugin keys, so finding and validating never disagree."""
    (pattern,) = _pipeline_schema()["$defs"][_PLUGIN_ENTRY_DEF]["patternProperties"]
    return re.compile(pattern)


def _blocks_in_steps(steps: JSON, path: Path, key_pattern: re.Pattern[str]) -> Iterator[tuple[Path, JSON]]:
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        step_path = (*path, index)
        plugins = step.get("plugins")
        entries: Iterable[tuple[Path, JSON]]
        if isinstance(plugins, list):
            entries = (((*step_path, "plugins", i), entry) for i, entry in enumerate(plugins))
        else:
            entries = [((*step_path, "plugins"), plugins)]
        for entry_path, entry in entries:
            if isinstance(entry, dict):
                for key, config in entry.items():
                    if isinstance(key, str) and key_pattern.search(key):
                        yield (*entry_path, key), config
        yield from _blocks_in_steps(step.get("steps"), (*step_path, "steps"), key_pattern)


def _problems_of(error: jsonschema.ValidationError, path: Path) -> list[tuple[Path, LintProblem]]:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}) if isinstance(error.schema, dict) else {})
        return [
            ((*path, key), LintProblem(render_path((*path, key)), unknown_field_message(str(key), known)))
            for key in error.instance
            if key not in known
        ]
    return [(path, LintProblem(render_path(path), _message(error)))]


def _message(error: jsonschema.ValidationError) -> str:
    """A message in the words ``engine.model.plugin`` uses, for the validators our schema uses."""
    instance = error.instance
    expected: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES[t] for t in types if t in _TYPE_NAMES)
        return f"expected {wanted}, got {describe_value(instance)}"
    if error.validator == "pattern" and isinstance(instance, str):
        if expected == k8s_types.QUANTITY_PATTERN:
            return invalid_quantity_message(instance)
        if expected == k8s_types.TIME_PATTERN:
            return invalid_time_message(instance)
        return f"{json.dumps(instance)} does not match the pattern {expected}"
    if error.validator in ("minimum", "maximum") and expected in _INTEGER_BITS:
        types = schema.get("type", [])
        also = " or a string" if "string" in types else ""
        return f"expected a {_INTEGER_BITS[expected]}-bit integer{also}, got {describe_value(instance)}"
    if error.validator == "enum":
        title = schema.get("title")
        if title:
            valid = ", ".join(json.dumps(v) for v in sorted(v for v in expected if v is not None))
            return f"invalid {title} {json.dumps(instance)} (valid: {valid})"
        allowed = ", ".join(json.dumps(v) for v in expected)
        return f"invalid value {json.dumps(instance)} (expected one of {allowed})"
    if error.validator in ("minProperties", "maxProperties") and isinstance(instance, dict):
        return f"a plugin entry must name exactly one plugin, got {len(instance)} keys"
    return " ".join(error.message.split())


def _sort_key(path: Path) -> tuple[tuple[int, int, str], ...]:
    """Document-ish order: list indexes numerically (steps[2] before steps[10]), keys by name."""
    return tuple((0, seg, "") if isinstance(seg, int) else (1, 0, str(seg)) for seg in path)
