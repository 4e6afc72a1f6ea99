"""Small list and map helpers the upstream-v0.47 profile needs and CEL lacks: setting env entries in
place, dropping map keys, keeping the first item per key, and upstream's rounded text tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.model.durations import format_duration
from engine.model.jsonvalue import JSON


def set_env(env: Sequence[Mapping[str, JSON]], entries: Sequence[Mapping[str, JSON]]) -> list[JSON]:
    """``env`` with each of ``entries`` set: an entry replaces the first one of the same name where it
    stands (later ones of that name are dropped), or is appended. Upstream (v0.34+) sets env this way
    instead of appending, so a value it sets twice appears once."""
    result: list[JSON] = [dict(item) for item in env]
    for entry in entries:
        name = entry.get("name")
        positions = [
            i for i, item in enumerate(result) if isinstance(item, dict) and item.get("name") == name
        ]
        if not positions:
            result.append(dict(entry))
            continue
        result[positions[0]] = dict(entry)
        for index in reversed(positions[1:]):
            del result[index]
    return result


def without_keys(value: Mapping[str, JSON], keys: Sequence[str]) -> dict[str, JSON]:
    """The map without ``keys`` (CEL cannot remove a key)."""
    dropped = set(keys)
    return {key: item for key, item in value.items() if key not in dropped}


def distinct_by(items: Sequence[Mapping[str, JSON]], key: str) -> list[JSON]:
    """The items, keeping only the first one of each ``key`` value (items without the key are all kept):
    e.g. a container's volume mounts de-duplicated by ``mountPath``, as upstream does."""
    seen: set[str] = set()
    kept: list[JSON] = []
    for item in items:
        value = item.get(key) if isinstance(item, Mapping) else None
        if isinstance(value, str):
            if value in seen:
                continue
            seen.add(value)
        kept.append(dict(item) if isinstance(item, Mapping) else item)
    return kept


def go_duration(seconds: float | int) -> str:
    """Seconds as Go's ``Duration.String`` writes them (``5m0s``): how upstream passes a duration to
    the agent in an env var (``BUILDKITE_KUBERNETES_CONTAINER_START_TIMEOUT``)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"expected a number of seconds, got {seconds!r}")
    return format_duration(float(seconds))


def rounded_table(headers: Sequence[str], rows: Sequence[Sequence[JSON]]) -> str:
    """A text table in the rounded box style upstream's failure messages use (go-pretty
    ``StyleRounded``): one space of padding, a rule under the header, no trailing newline."""
    cells = [[str(header) for header in headers]] + [
        ["" if c is None else str(c) for c in row] for row in rows
    ]
    for row in cells[1:]:
        if len(row) != len(headers):
            raise ValueError(f"table row has {len(row)} cells, expected {len(headers)}")
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(left: str, middle: str, right: str) -> str:
        return left + middle.join("─" * (width + 2) for width in widths) + right

    def row_text(row: Sequence[str]) -> str:
        return "│" + "│".join(f" {cell.ljust(width)} " for cell, width in zip(row, widths, strict=True)) + "│"

    lines = [line("╭", "┬", "╮"), row_text(cells[0]), line("├", "┼", "┤")]
    lines += [row_text(row) for row in cells[1:]]
    lines.append(line("╰", "┴", "╯"))
    return "\n".join(lines)
