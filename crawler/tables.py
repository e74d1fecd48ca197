"""Plain-text tables for the terminal."""

from __future__ import annotations


def format_table(rows: list[tuple[str, ...]] | list[list[str]]) -> str:
    """Plain text columns; numbers right-aligned."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            text = str(cell)
            numeric = n > 0 and text.replace(".", "", 1).isdigit()
            cells.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
