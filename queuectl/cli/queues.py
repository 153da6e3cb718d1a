"""`queuectl queue`: named queues, each with its own limit of running jobs across every engine
of the database, and its own pause.

The table is plain text that fits 80 columns (a long name is cut, never the counts); --json
prints the schema documented in the README (`queue list --json`).
"""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, Any

import asyncclick as click

from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.states import JobState

if TYPE_CHECKING:
    from queuectl.models import QueueInfo

#: the count columns, in the order of a job's life; RUNNING is the processing state
COUNTS = (
    ("BLOCKED", "blocked"),
    ("PENDING", "pending"),
    ("RUNNING", "processing"),
    ("FAILED", "failed"),
    ("DEAD", "dead"),
    ("DONE", "completed"),
    ("CANCELED", "canceled"),
)
WIDTH = 80


def queue_dict(info: QueueInfo) -> dict[str, Any]:
    """One queue of `queue list --json`: the same keys for every queue."""
    return {
        "name": info.name,
        "concurrency": info.concurrency,
        "paused": info.paused,
        "counts": {state.value: count for state, count in info.counts.items()},
    }


def table(queues: list[QueueInfo], width: int = WIDTH) -> str:
    """The queues as columns: name, limit ("-": none of its own), paused, jobs per state."""
    rows = [
        [
            info.name,
            "-" if info.concurrency is None else str(info.concurrency),
            "yes" if info.paused else "-",
            *(f"{info.counts.get(JobState(key), 0):,}" for _, key in COUNTS),
        ]
        for info in queues
    ]
    headers = ["NAME", "LIMIT", "PAUSED", *(header for header, _ in COUNTS)]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    room = width - sum(widths[1:]) - 2 * (len(widths) - 1)
    widths[0] = max(len(headers[0]), min(widths[0], room))
    lines = []
    for row in [headers, *rows]:
        name = row[0] if len(row[0]) <= widths[0] else row[0][: widths[0] - 1] + "…"
        rest = [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        cells = [name.ljust(widths[0]), *rest]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


@click.group()
@queue_options
async def queue() -> None:
    """Named queues: their limits of running jobs (across every engine) and pauses."""


@queue.command(name="list")
@json_option
@queue_options
async def queue_list(as_json: bool) -> None:
    """Each queue with jobs or settings: its limit, whether paused, its jobs per state."""
    from queuectl.service import queues

    found = await queues.list_queues(current_queue())
    if as_json:
        from queuectl.render import print_json

        print_json([queue_dict(info) for info in found])
    elif not found:
        click.echo("no queues (a job's queue is `default` unless enqueued with --queue)")
    else:
        width = shutil.get_terminal_size((WIDTH, 24)).columns if sys.stdout.isatty() else WIDTH
        sys.stdout.write(table(found, width))


@queue.command(name="set")
@click.argument("name")
@click.option(
    "--concurrency",
    metavar="N|none",
    required=True,
    help="At most N of its jobs run at once, across every engine; none: no limit of its own.",
)
@queue_options
async def queue_set(name: str, concurrency: str) -> None:
    """Limit how many of the queue's jobs run at once (stored: every engine honours it)."""
    from queuectl.service import queues

    limit = await queues.set_concurrency(current_queue(), name, concurrency)
    if limit is None:
        click.echo(f"queue {name}: no concurrency limit (only the engines' slots)")
    else:
        click.echo(f"queue {name}: at most {limit} running at once, across every engine")


@queue.command(name="pause")
@click.argument("name")
@queue_options
async def queue_pause(name: str) -> None:
    """Start none of the queue's jobs (running ones go on), until `queue resume NAME`."""
    from queuectl.service import queues

    await queues.set_paused(current_queue(), name, True)
    click.echo(f"queue {name} paused: none of its jobs starts until `queue resume {name}`")


@queue.command(name="resume")
@click.argument("name")
@queue_options
async def queue_resume(name: str) -> None:
    """Start the queue's jobs again after `queue pause NAME`."""
    from queuectl.service import queues

    await queues.set_paused(current_queue(), name, False)
    click.echo(f"queue {name} resumed")


COMMANDS = (queue,)
