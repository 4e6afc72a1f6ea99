"""Plain-text tables for failure messages shown in a Buildkite job log.

Upstream renders these with go-pretty (events, failed init containers). The log is read by people in
the Buildkite UI and by tests with ``in`` checks, so this draws the same kind of boxed ASCII table
without colour codes: header, separator, one row per item, numbers right-aligned, and a cell whose
text has several lines (a container's termination message often does) spanning several lines.
"""

from __future__ import annotations

from collections.abc import Sequence

Cell = str | int | float | None


def _lines(cell: Cell) -> list[str]:
    text = "" if cell is None else str(cell)
    return text.splitlines() or [""]


def _is_number(cell: Cell) -> bool:
    return isinstance(cell, int | float) and not isinstance(cell, bool)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """The table as text, ending with a newline.

    Every row must have as many cells as there are headers; ``None`` renders as an empty cell.
    """
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"table row has {len(row)} cells, expected {len(headers)}")
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], *(len(line) for line in _lines(cell)))
    border = "+" + "+".join("-" * (width + 2) for width in widths) + "+"

    def render_row(cells: Sequence[Cell]) -> list[str]:
        split = [_lines(cell) for cell in cells]
        height = max(len(lines) for lines in split)
        out = []
        for line_index in range(height):
            parts = []
            for cell, lines, width in zip(cells, split, widths, strict=True):
                text = lines[line_index] if line_index < len(lines) else ""
                parts.append(text.rjust(width) if _is_number(cell) else text.ljust(width))
            out.append("| " + " | ".join(parts) + " |")
        return out

    lines = [border, *render_row(list(headers)), border]
    for row in rows:
        lines.extend(render_row(row))
    lines.append(border)
    return "\n".join(lines) + "\n"
