"""Streamed output of job listings: a JSON array written a row at a time, and a table whose
column widths are fixed once, from the terminal's width and the first rows.

rich lays out a whole table before it prints a line of it, which for 100,000 jobs took most of
a minute and 600 MB; here memory stays at one page of jobs and the first line appears at once.
At 80 columns the table keeps the id, state, tries and last error: the command is shortened
and the optional columns (next run, created, priority, label) go first.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from queuectl.models import Job
from queuectl.render import job_dict, printable, relative, shorten
from queuectl.states import JobState

#: rows read before the column widths are fixed
SAMPLE = 200
#: the width of output that is not a terminal (a file, a pipe): not cut to a guessed 80
PIPE_WIDTH = 160
_GAP = "  "
#: the least a command or an error is cut to on a terminal too narrow for the rest
NARROWEST = 8
_COLOURS = {
    JobState.PENDING: "36",
    JobState.PROCESSING: "33",
    JobState.COMPLETED: "32",
    JobState.FAILED: "35",
    JobState.DEAD: "31",
    JobState.CANCELED: "2",
}


async def write_json(jobs: AsyncIterator[Job], out: TextIO) -> int:
    """One JSON array, a job per line, written as the jobs arrive; returns how many."""
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: the C one, reused
    count = 0
    out.write("[")
    async for job in jobs:
        out.write(",\n" if count else "\n")
        out.write(encode(job_dict(job)))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


@dataclass(slots=True)
class Column:
    """A column and the widths it could take: `least` at the narrowest, `want` for its widest
    sampled cell; `width` is what the layout gave it."""

    name: str
    cell: Callable[[Job], str]
    least: int
    want: int
    right: bool = False
    width: int = 0


#: the columns given up, in this order, when the terminal is too narrow for all of them
_OPTIONAL = ("NEXT RUN", "CREATED", "PRI", "LABEL")
#: the columns that share the room left, in the order they take it
_FLEXIBLE = ("LABEL", "LAST ERROR", "COMMAND")


class JobTable:
    """A table of jobs laid out from a sample of them, then written a row at a time."""

    def __init__(self, sample: list[Job], width: int, complete: bool, now: float) -> None:
        self.now = now
        today = datetime.fromtimestamp(now).date()
        # the time alone only when every row is known to be of today
        short = complete and all(
            datetime.fromtimestamp(job.created_at).date() == today for job in sample
        )
        self.created_format = "%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S"
        self.columns = _layout(self._columns(sample), width)

    def _columns(self, sample: list[Job]) -> list[Column]:
        def column(
            name: str,
            cell: Callable[[Job], str],
            least: int | None = None,
            most: int = 10_000,
            right: bool = False,
        ) -> Column:
            """`least` None: as wide as its widest sampled cell, always."""
            want = min(most, max(len(name), *(len(cell(job)) for job in sample)))
            narrowest = want if least is None else min(max(least, len(name)), want)
            return Column(name, cell, narrowest, want, right)

        columns = [
            column("ID", lambda j: j.id, most=32),
            column("STATE", lambda j: j.state.value),
            column("PRI", lambda j: str(j.priority), right=True),
            column("TRIES", lambda j: f"{j.attempts}/{j.max_retries + 1}", right=True),
            column("CREATED", self._created),
            column("NEXT RUN", self._next_run),
            column("LABEL", lambda j: _line(j.label or ""), least=8, most=24),
            column("COMMAND", lambda j: _line(j.command), least=20),
            column("LAST ERROR", lambda j: _line(j.last_error or ""), least=20),
        ]
        # fixed by what they can hold, not by the sample, since later rows may differ
        by_name = {c.name: c for c in columns}
        state, next_run = by_name["STATE"], by_name["NEXT RUN"]
        state.least = state.want = max(len(s.value) for s in JobState)
        next_run.least = next_run.want = max(next_run.want, len("23h59m ago"))
        if not any(job.label for job in sample):
            columns = [c for c in columns if c.name != "LABEL"]
        return columns

    def _created(self, job: Job) -> str:
        return datetime.fromtimestamp(job.created_at).strftime(self.created_format)

    def _next_run(self, job: Job) -> str:
        waiting = job.state in (JobState.PENDING, JobState.FAILED)
        return relative(job.next_run_at, self.now) if waiting else "-"

    def header(self, colour: bool) -> str:
        line = self._join([c.name for c in self.columns], None)
        return f"\x1b[1m{line}\x1b[0m" if colour else line

    def row(self, job: Job, colour: bool) -> str:
        return self._join([c.cell(job) for c in self.columns], job.state if colour else None)

    def _join(self, cells: list[str], state: JobState | None) -> str:
        """Cells are printable already (see _line): the cost per row is what a million-row
        listing pays a million times."""
        out = []
        last = len(cells) - 1
        for index, (column, text) in enumerate(zip(self.columns, cells, strict=True)):
            width = column.width
            if len(text) > width and column.name != "ID":  # an id is never cut
                text = text[: max(width - 1, 0)] + "…"
            if index < last:
                text = text.rjust(width) if column.right else text.ljust(width)
            if state is not None and column.name == "STATE":
                text = f"\x1b[{_COLOURS[state]}m{text}\x1b[0m"
            out.append(text)
        return _GAP.join(out).rstrip()


def _layout(columns: list[Column], width: int) -> list[Column]:
    """Drop optional columns until the least widths fit (on a terminal narrower than that,
    cut the command, then the error, down to NARROWEST), then share the room left among the
    flexible ones: the label, then the last error (half the spare room while the command
    wants more), then the command, then the error again."""
    optional = [name for name in _OPTIONAL if any(c.name == name for c in columns)]

    def room(kept: list[Column]) -> int:
        return width - len(_GAP) * (len(kept) - 1)

    while optional and sum(c.least for c in columns) > room(columns):
        dropped = optional.pop(0)
        columns = [c for c in columns if c.name != dropped]
    for c in columns:
        c.width = c.least
    spare = room(columns) - sum(c.least for c in columns)
    by_name = {c.name: c for c in columns}
    command = by_name["COMMAND"]
    for squeezed in (command, by_name["LAST ERROR"]):  # narrower than 80: these give way
        cut = max(0, min(-spare, squeezed.width - NARROWEST))
        squeezed.width -= cut
        spare += cut
    for name in (*_FLEXIBLE, "LAST ERROR"):
        flexible = by_name.get(name)
        if flexible is None:
            continue
        grow = max(0, min(spare, flexible.want - flexible.width))
        if name == "LAST ERROR" and command.width < command.want:
            grow = min(grow, spare // 2)
        flexible.width += grow
        spare -= grow
    return columns


def _line(text: str) -> str:
    """Free text as one printable line: lines joined with spaces, control characters shown
    escaped (a job's command or error must not drive the terminal)."""
    return printable(shorten(text, 10_000)) if text else ""


def table_width(out: TextIO) -> int:
    """The terminal's width ($COLUMNS first); PIPE_WIDTH for a file or pipe."""
    if os.environ.get("COLUMNS", "").isdigit() or out.isatty():
        return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    return PIPE_WIDTH


async def write_table(jobs: AsyncIterator[Job], out: TextIO, empty: str = "no jobs") -> int:
    """The jobs as a table, laid out from the first SAMPLE rows; returns how many."""
    sample: list[Job] = []
    async for job in jobs:
        sample.append(job)
        if len(sample) == SAMPLE:
            break
    if not sample:
        out.write(f"{empty}\n")
        return 0
    colour = out.isatty() and "NO_COLOR" not in os.environ
    table = JobTable(sample, table_width(out), len(sample) < SAMPLE, time.time())
    out.write(table.header(colour) + "\n")
    for job in sample:
        out.write(table.row(job, colour) + "\n")
    count = len(sample)
    if count == SAMPLE:
        async for job in jobs:
            out.write(table.row(job, colour) + "\n")
            count += 1
    return count
