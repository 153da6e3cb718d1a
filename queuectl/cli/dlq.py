"""The dead letter queue: jobs whose retries are spent, and sending them back."""

from __future__ import annotations

import asyncclick as click

from queuectl import render, service
from queuectl.cli.completion import complete_ids
from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.errors import BadInput
from queuectl.states import RETRYABLE, JobState


@click.group()
@queue_options
async def dlq() -> None:
    """The dead letter queue: jobs whose retries are spent."""


@dlq.command(name="list")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@click.option("--queue", "queue_name", metavar="NAME", help="Only dead jobs of this named queue.")
@json_option
@queue_options
async def dlq_list(limit: int, queue_name: str | None, as_json: bool) -> None:
    """Dead jobs, newest first."""
    jobs = await service.list_jobs(current_queue(), JobState.DEAD, limit, queue_name)
    if as_json:
        render.print_json([render.job_dict(job) for job in jobs])
    else:
        render.jobs_table(jobs, title="dead letter queue")


@dlq.command(name="retry")
@click.argument("job_ids", nargs=-1, shell_complete=complete_ids(*RETRYABLE))
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
@queue_options
async def dlq_retry(job_ids: tuple[str, ...], retry_all: bool) -> None:
    """Send dead jobs back to pending, with attempts reset and history kept."""
    if retry_all == bool(job_ids):
        raise BadInput("give the ids of dead jobs to retry, or --all (not both)")
    retried = await service.retry_dead(current_queue(), None if retry_all else job_ids)
    click.echo(f"retried {len(retried)} job{'s' if len(retried) != 1 else ''}")


COMMANDS = (dlq,)
