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

from engine.model.jsonvalue import JSON, Path

Positions = dict[Path, tuple[int, int]]
"""Where each value of a document starts, as 1-based (line, column); map entries at their key."""


class PipelineReadError(Exception):
    """The file cannot be read or is not YAML; ``str()`` is one line starting with the file name."""


def load_pipeline(path: pathlib.Path) -> JSON:
    """The YAML document in ``path`` as JSON-shaped data, or :class:`PipelineReadError`."""
    return parse_pipeline(_read(path), str(path))


def load_pipeline_with_positions(path: pathlib.Path) -> tuple[JSON, Positions]:
    """The YAML document in ``path`` and where each value starts, or :class:`PipelineReadError`."""
    text = _read(path)
    loader = PipelineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        positions: Positions = {}
        _record_positions(node, (), positions)
        return loader.construct_document(node), positions
    except yaml.YAMLError as exc:
        raise _read_error(exc, str(path)) from None
    finally:
        loader.dispose()


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PipelineReadError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise PipelineReadError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _record_positions(node: yaml.Node, path: Path, positions: Positions) -> None:
    """Where every path starts: a map entry at its key (where an editor puts the cursor for "unknown
    field"), a list item at the item."""
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                child = (*path, key_node.value)
                _record_positions(value_node, child, positions)
                positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_positions(item, (*path, index), positions)


def parse_pipeline(text: str, source: str) -> JSON:
    """Parse pipeline YAML text; ``source`` names it in errors."""
    try:
        return yaml.load(text, Loader=PipelineLoader)
    except yaml.YAMLError as exc:
        raise _read_error(exc, source) from None


def _read_error(exc: yaml.YAMLError, source: str) -> PipelineReadError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return PipelineReadError(f"{source}: invalid YAML{where}: {exc.problem or exc.context}")
    return PipelineReadError(f"{source}: invalid YAML: {' '.join(str(exc).split())}")


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
