"""Plain-text tables for the operators' commands: aligned columns, no terminal control codes."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[str]], *, right_aligned: Sequence[int] = ()) -> list[str]:
    """The rows (the first is the header) as aligned lines; `right_aligned` column indexes."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if column in right_aligned else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
