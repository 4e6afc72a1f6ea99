"""YAML documents with the position of every value, so errors can say ``FILE:LINE:COL``.

PyYAML's constructed objects forget where they came from; its node tree remembers. We construct the
values as usual and walk the node tree alongside to record, for every path, where its value (and,
for map entries, its key) starts. Duplicate keys, which PyYAML silently collapses, are an error: in a
policy they almost always mean a lost rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from engine.model.jsonvalue import JSON, Path

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


class YamlSourceError(ValueError):
    """A file that is not valid YAML; ``str()`` is ``FILE:LINE:COL: problem``."""


@dataclass(frozen=True)
class SourceDocument:
    """One YAML document: its value and where each path inside it starts (1-based line, column)."""

    file: str
    index: int
    value: JSON
    line: int
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int, int]:
        """Position of ``path``, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return (self.line, 1)

    def locate_key(self, path: Path) -> tuple[int, int]:
        return self.key_positions.get(path) or self.locate(path)


def load_documents(text: str, file: str) -> list[SourceDocument]:
    """Parse every document in ``text``; empty documents are skipped."""
    loader = _Loader(text)
    documents: list[SourceDocument] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            positions: dict[Path, tuple[int, int]] = {}
            key_positions: dict[Path, tuple[int, int]] = {}
            _record(node, (), positions, key_positions, file)
            value = loader.construct_document(node)
            if value is not None:
                documents.append(
                    SourceDocument(file, index, value, node.start_mark.line + 1, positions, key_positions)
                )
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise YamlSourceError(f"{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(f"{file}: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
    return documents


def _record(
    node: yaml.Node,
    path: Path,
    positions: dict[Path, tuple[int, int]],
    key_positions: dict[Path, tuple[int, int]],
    file: str,
) -> None:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key == "<<":
                continue
            if key in seen:
                mark = key_node.start_mark
                raise YamlSourceError(f"{file}:{mark.line + 1}:{mark.column + 1}: duplicate key '{key}'")
            seen.add(key)
            child = (*path, key)
            key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _record(value_node, child, positions, key_positions, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), positions, key_positions, file)
