"""`queuectl list`: the jobs of the queue, filtered and sorted, streamed as they are read."""

from __future__ import annotations

import sys
import time

import asyncclick as click

from queuectl.cli.options import current_queue, json_option, queue_options

#: the largest --limit: a million rows stream in seconds at flat memory
MAX_LIMIT = 1_000_000


@click.command(name="list")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE[,STATE...]",
    help="Only jobs in these states (repeatable, or comma-separated).",
)
@click.option(
    "--grep",
    metavar="TEXT",
    help="Only jobs whose id, command or label contains TEXT (exact case).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only jobs created at or after WHEN: ISO 8601 with timezone, or a duration ago (2h).",
)
@click.option("--until", metavar="WHEN", help="Only jobs created before WHEN (as for --since).")
@click.option(
    "--sort",
    type=click.Choice(["created", "next-run"]),
    default="created",
    show_default=True,
    help="created: newest first; next-run: waiting jobs soonest due first, then the rest "
    "newest first.",
)
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=50, show_default=True)
@click.option("--queue", "queue_name", metavar="NAME", help="Only jobs of this named queue.")
@json_option
@queue_options
async def list_(
    states: tuple[str, ...],
    grep: str | None,
    since: str | None,
    until: str | None,
    sort: str,
    limit: int,
    queue_name: str | None,
    as_json: bool,
) -> None:
    """Jobs, newest first (see --sort), as a table or --json; more than --limit are counted
    below the table."""
    from queuectl.render_list import write_json, write_table
    from queuectl.service.listing import job_filter, listing

    wanted = job_filter(
        states=states,
        grep=grep,
        since=since,
        until=until,
        order=sort,
        limit=limit,
        now=time.time(),
        queue=queue_name,
    )
    out = sys.stdout
    async with listing(current_queue(), wanted) as found:
        if as_json:
            await write_json(found.jobs(), out)
            return
        filtered = bool(states or grep or since or until or queue_name)
        shown = await write_table(found.jobs(), out, "no jobs match" if filtered else "no jobs")
        if shown == limit:
            total = await found.total()
            if total > shown:
                out.write(f"showing {shown:,} of {total:,} (--limit N for more)\n")


COMMANDS = (list_,)
