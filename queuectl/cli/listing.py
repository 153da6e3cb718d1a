"""`queuectl list`: the jobs of the queue, filtered and sorted."""

from __future__ import annotations

import asyncclick as click

from queuectl import render, service
from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.states import JobState


@click.command(name="list")
@click.option("--state", help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@json_option
@queue_options
async def list_(state: str | None, limit: int, as_json: bool) -> None:
    """Jobs, newest first."""
    wanted = JobState.parse(state) if state else None
    jobs = await service.list_jobs(current_queue(), wanted, limit)
    if as_json:
        render.print_json([render.job_dict(job) for job in jobs])
    else:
        render.jobs_table(jobs)


COMMANDS = (list_,)
