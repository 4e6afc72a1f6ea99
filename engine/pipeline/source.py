"""Reading a pipeline YAML file the way Buildkite's Go parser reads it.

Only ``true``/``false`` are booleans (``yes``, ``on`` stay strings), timestamps stay strings and keys
become strings as they are read, so values keep the JSON shape Buildkite gives them. Shared by
``engine lint`` and the pipeline → job conversion, so both see the same document.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Hashable
from typing import Any

import yaml

from engine.model.jsonvalue import JSON


class PipelineReadError(Exception):
    """The file cannot be read or is not YAML; ``str()`` is one line starting with the file name."""


def load_pipeline(path: pathlib.Path) -> JSON:
    """The YAML document in ``path`` as JSON-shaped data, or :class:`PipelineReadError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PipelineReadError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise PipelineReadError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return parse_pipeline(text, str(path))


def parse_pipeline(text: str, source: str) -> JSON:
    """Parse pipeline YAML text; ``source`` names it in errors."""
    try:
        return yaml.load(text, Loader=PipelineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PipelineReadError(f"{source}: invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise PipelineReadError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None


def _key_text(key: Any) -> str:
    """YAML allows keys like ``1`` or ``true``; JSON (and so Buildkite and the schema) has only strings."""
    if isinstance(key, str):
        return key
    return json.dumps(key) if key is None or isinstance(key, bool | int | float) else str(key)


class PipelineLoader(yaml.SafeLoader):
    """YAML as Buildkite's Go parser reads a pipeline (see the module docstring)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Keys become strings as they are read, so ``1`` and ``true`` stay two keys (in Python they
        are equal and one would silently replace the other)."""
        self.flatten_mapping(node)  # resolves << merge keys, as SafeLoader does
        return {_key_text(key): value for key, value in self.construct_pairs(node, deep=deep)}


PipelineLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PipelineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
