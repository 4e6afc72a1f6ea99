"""Reading the user's input files (a job fixture, a controller config) with one-line errors.

Shared by ``engine test`` and the controller so a config that ``engine test --config`` accepts is
exactly one the controller accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from engine.model.config import ConfigError, ControllerConfig, parse_config
from engine.model.job import BuildkiteJob, JobInputError, parse_job
from engine.model.limits import refuse_constant


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


def load_config_file(path: Path | None) -> ControllerConfig:
    """The controller config from a YAML file, or the defaults when ``path`` is None."""
    if path is None:
        return parse_config({}, "defaults")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([f"{path}: cannot read: {_reason(exc)}"]) from None
    data = read_config_yaml(text, str(path))
    try:
        return parse_config(data, str(path))
    except ConfigError as exc:
        raise InputError(exc.problems) from None


def read_config_yaml(text: str, source: str) -> dict[str, object] | None:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise InputError([f"{where}: {exc.problem or 'invalid YAML'}"]) from None
    except yaml.YAMLError as exc:
        raise InputError([f"{source}: invalid YAML: {exc}"]) from None
    if data is not None and not isinstance(data, dict):
        raise InputError([f"{source}: expected a map of config keys, got {type(data).__name__}"])
    return data


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
