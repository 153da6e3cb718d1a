"""Small tables in plain text, laid out as rich lays out a table without a box, for the commands
people run in loops (`status`, `watch queuectl status`): importing rich costs about as much as
the rest of such a command's start-up, and these tables need none of its layout.

Colour (bold headers, a colour per job state) only on a terminal, and not under NO_COLOR.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import TextIO

from queuectl.states import JobState

#: SGR codes of render.STATE_STYLE's colours (cyan, yellow, green, magenta, red, dim)
STATE_SGR = {
    JobState.PENDING: "36",
    JobState.PROCESSING: "33",
    JobState.COMPLETED: "32",
    JobState.FAILED: "35",
    JobState.DEAD: "31",
    JobState.CANCELED: "2",
}


def colour(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


def paint(text: str, sgr: str, on: bool) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if on else text


def table(
    out: TextIO,
    rows: Sequence[Sequence[str]],
    headers: Sequence[str] | None = None,
    *,
    title: str | None = None,
    right: Collection[int] = (),
    states: Sequence[JobState] | None = None,
    gap: str = "  ",
    indent: str = " ",
) -> None:
    """Write `rows` (printable text already) in columns as wide as their widest cell, the
    columns in `right` right-justified, the first cell of row i coloured as `states[i]`. On a
    terminal a line longer than it is cut with an ellipsis rather than wrapped."""
    on = colour(out)
    widths = [
        max([len(headers[i]) if headers else 0, *(len(row[i]) for row in rows)])
        for i in range(len(headers if headers else rows[0]))
    ]
    limit = None
    if out.isatty():
        import shutil  # with its compression modules: ~1.5 ms that a pipe never needs

        limit = shutil.get_terminal_size().columns

    def line(cells: Sequence[str], state: JobState | None = None) -> str:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        text = (indent + gap.join(padded)).rstrip()
        if limit is not None and len(text) > limit:
            text = text[: limit - 1] + "…"
        if state is not None and on:  # the first cell: colour the state's name in place
            start = len(indent)
            end = start + len(padded[0].rstrip())
            text = text[:start] + paint(text[start:end], STATE_SGR[state], on) + text[end:]
        return text

    if title is not None:
        out.write(title + "\n")
    if headers:
        out.write(paint(line(headers), "1", on) + "\n")
    for index, row in enumerate(rows):
        out.write(line(row, states[index] if states else None) + "\n")
