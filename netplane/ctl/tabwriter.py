"""Go's text/tabwriter (left-aligned, space padding), which kubectl prints every table and
every describe page through: matching it is what makes the columns line up the same.

A cell is text ended by a tab; the last cell of a line is not part of any column. A
column block is a run of consecutive lines that all have a cell in that column; each
block is as wide as its widest cell plus `padding` (at least `minwidth`).
"""

from __future__ import annotations


def tabwrite(text: str, *, minwidth: int = 0, padding: int = 1) -> str:
    """`text` with its tab-separated cells aligned as Go's tabwriter (flags 0) aligns them."""
    trailing = text.endswith("\n")
    lines = [line.split("\t") for line in (text[:-1] if trailing else text).split("\n")]
    out: list[str] = []
    _format(lines, 0, len(lines), [], out, minwidth, padding)
    return "\n".join(out) + ("\n" if trailing else "")


def _format(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str],
            minwidth: int, padding: int) -> None:
    # A transcription of tabwriter.Writer.format: find the blocks of this column, fix
    # their width, and recurse into the columns to the right within each block.
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write(lines, line0, this, widths, out)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format(lines, line0, this, [*widths, width], out, minwidth, padding)
        line0 = this
    _write(lines, line0, line1, widths, out)


def _write(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[line0:line1]:
        parts = []
        for j, cell in enumerate(cells):
            parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
        out.append("".join(parts))
