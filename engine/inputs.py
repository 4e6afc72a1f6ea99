"""Reading the user's input files (a job fixture, a controller config) with one-line errors.

Shared by ``engine test`` and the controller so a config that ``engine test --config`` accepts is
exactly one the controller accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.model.config import ConfigError, ControllerConfig, SourcedConfig, parse_config
from engine.model.job import BuildkiteJob, JobInputError, parse_job
from engine.model.limits import refuse_constant
from engine.policy.yaml_source import YamlSourceError, load_documents


class InputError(ValueError):
    """An input file that cannot be used; ``problems`` are ``FILE: field: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_job_file(path: Path) -> BuildkiteJob:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([f"{path}: cannot read: {_reason(exc)}"]) from None
    try:
        data = json.loads(text, parse_constant=refuse_constant)
    except RecursionError:
        raise InputError([f"{path}: not a JSON job document: it is nested too deeply"]) from None
    except ValueError as exc:
        raise InputError([f"{path}: not a JSON job document: {exc}"]) from None
    try:
        return parse_job(data)
    except JobInputError as exc:
        raise InputError([f"{path}: {problem}" for problem in exc.problems]) from None


def load_config_file(path: Path | None, overrides: dict[str, object] | None = None) -> ControllerConfig:
    """The controller config from a YAML file, or the defaults when ``path`` is None; ``overrides``
    (e.g. ``engine test --profile``) replace the file's keys."""
    if path is None:
        try:
            return parse_config(dict(overrides or {}), "defaults" if not overrides else "--profile")
        except ConfigError as exc:
            raise InputError(exc.problems) from None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([f"{path}: cannot read: {_reason(exc)}"]) from None
    data = read_config_yaml(text, str(path))
    if overrides:
        located = data if isinstance(data, SourcedConfig) else None
        merged = {**(data or {}), **overrides}
        data = SourcedConfig(merged, located.locate, located.locate_key) if located else merged
    try:
        return parse_config(data, str(path))
    except ConfigError as exc:
        raise InputError(exc.problems) from None


def read_config_yaml(text: str, source: str) -> dict[str, object] | None:
    """The config file's content, as a :class:`~engine.model.config.SourcedConfig` that remembers
    where each key is (so config problems name ``FILE:LINE:COL``); ``None`` for an empty file."""
    try:
        documents = load_documents(text, source)
    except YamlSourceError as exc:
        raise InputError([str(exc)]) from None
    if len(documents) > 1:
        raise InputError(
            [f"{source}:{documents[1].line}:1: a config file holds one YAML document, not several"]
        )
    if not documents:
        return None
    document = documents[0]
    if not isinstance(document.value, dict):
        raise InputError([f"{source}: expected a map of config keys, got {type(document.value).__name__}"])
    return SourcedConfig(document.value, document.locate, document.locate_key)


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
