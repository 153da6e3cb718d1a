"""Changing jobs in the queue: cancel, kill, restart, edit, delete, purge, and waiting for jobs.

The work is in queuectl/service/manage.py; these commands parse, call it and print one line
per result. Long bulk operations draw a progress bar on a terminal (stderr), never in a pipe.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import asyncclick as click

from queuectl import render
from queuectl.cli.completion import complete_ids
from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.models import Job
from queuectl.service import manage
from queuectl.specs import parse_duration, validate_queue_name
from queuectl.states import AT_REST, CANCELABLE, RESTARTABLE, JobState

#: a progress bar is worth drawing from this many jobs on
PROGRESS_FROM = 10_000


class _Bar:
    """A rich progress bar on stderr when it is a terminal and the work is long."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.bar: Any = None

    def start(self, total: int) -> Callable[[int], None] | None:
        if total < PROGRESS_FROM or not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import Progress

        bar = self.bar = Progress(transient=True, console=Console(stderr=True))
        bar.start()
        task = bar.add_task(self.verb, total=total)
        return lambda n: bar.advance(task, n)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


_STATE_HELP = "Every job in this state instead of ids."


@click.command()
@click.argument("job_ids", nargs=-1, shell_complete=complete_ids(*CANCELABLE, JobState.PROCESSING))
@click.option("--state", metavar="STATE", help=_STATE_HELP)
@queue_options
async def cancel(job_ids: tuple[str, ...], state: str | None) -> None:
    """Cancel jobs: a waiting one at once, a running one by killing its process group.

    All or nothing for the ids given: if one cannot be canceled, none is.
    """
    with _Bar("canceling") as bar:
        count = await manage.cancel(current_queue(), job_ids, state, bar.start)
    if state is None:
        for job_id in dict.fromkeys(job_ids):
            click.echo(f"canceled {job_id}")
    else:
        click.echo(f"canceled {manage.plural(count)}")


@click.command()
@click.argument("job_id", shell_complete=complete_ids(JobState.PROCESSING))
@click.option(
    "-s",
    "--signal",
    "signal_name",
    default="TERM",
    show_default=True,
    metavar="SIG",
    help="Signal name (TERM, INT, USR1, SIGHUP) or number.",
)
@queue_options
async def kill(job_id: str, signal_name: str) -> None:
    """Send a signal to a running job's process group; the job ends however it then ends."""
    signum = manage.parse_signal(signal_name)
    pgid = await manage.kill(current_queue(), job_id, signum)
    click.echo(f"sent {manage.signal_name(signum)} to job {job_id} (process group {pgid})")


@click.command()
@click.argument("job_ids", nargs=-1, shell_complete=complete_ids(*RESTARTABLE))
@click.option("--state", metavar="STATE", help=_STATE_HELP)
@queue_options
async def restart(job_ids: tuple[str, ...], state: str | None) -> None:
    """Run finished jobs (completed, dead, canceled) or failed ones again now.

    Back to pending with attempts reset; their history is kept. All or nothing for the ids
    given.
    """
    with _Bar("restarting") as bar:
        count = await manage.restart(current_queue(), job_ids, state, bar.start)
    click.echo(f"restarted {manage.plural(count)}")


@click.command()
@click.argument("job_id", shell_complete=complete_ids(*AT_REST))
@click.option("--command", help="The new shell command.")
@click.option("--priority", type=int, help="Higher runs first.")
@click.option("--run-at", metavar="ISO", help="Do not start before this time (with timezone).")
@click.option("--delay", metavar="DURATION", help="Do not start before now + DURATION.")
@click.option("--max-retries", type=int, help="Retries after the first attempt.")
@click.option("--timeout", metavar="DURATION", help="Kill the job after this long (none: never).")
@queue_options
async def edit(
    job_id: str,
    command: str | None,
    priority: int | None,
    run_at: str | None,
    delay: str | None,
    max_retries: int | None,
    timeout: str | None,
) -> None:
    """Change a job that is not running (values checked as at enqueue)."""
    changes = manage.job_changes(
        command=command,
        priority=priority,
        max_retries=max_retries,
        timeout=timeout,
        run_at=run_at,
        delay=delay,
    )
    job = await manage.edit(current_queue(), job_id, changes)
    click.echo(f"edited {job.id}")


@click.command()
@click.argument("job_ids", nargs=-1, shell_complete=complete_ids(*AT_REST))
@queue_options
async def delete(job_ids: tuple[str, ...]) -> None:
    """Delete jobs that are not running, with their history; their ids become free.

    All or nothing: if one cannot be deleted, none is.
    """
    count = await manage.delete(current_queue(), job_ids)
    click.echo(f"deleted {manage.plural(count)}")


@click.command()
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Purge jobs in this state (repeatable; default: completed, dead, canceled).",
)
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Only jobs finished (a waiting job: enqueued) longer ago than this, like 7d.",
)
@click.option("--dry-run", is_flag=True, help="Only count the jobs that would be deleted.")
@click.option("--queue", "queue_name", metavar="NAME", help="Only jobs of this named queue.")
@json_option
@queue_options
async def purge(
    states: tuple[str, ...],
    older_than: str | None,
    dry_run: bool,
    queue_name: str | None,
    as_json: bool,
) -> None:
    """Delete many jobs at once, in short batches that never stall a running engine."""
    wanted = manage.parse_states(states, manage.PURGE_DEFAULT)
    age = parse_duration(older_than) if older_than is not None else None
    if queue_name is not None:
        validate_queue_name(queue_name)
    with _Bar("purging") as bar:
        count = await manage.purge(
            current_queue(),
            wanted,
            age,
            dry_run=dry_run,
            start=None if as_json else bar.start,
            queue_name=queue_name,
        )
    if as_json:
        render.print_json({"count": count, "dry_run": dry_run})
    elif dry_run:
        click.echo(f"would purge {manage.plural(count)} (dry run: nothing deleted)")
    else:
        click.echo(f"purged {manage.plural(count)}")


def _outcome(job: Job) -> str:
    if job.state is JobState.COMPLETED:
        return f"{job.id} completed"
    return f"{job.id} {job.state.value}: {render.printable(job.last_error or '-')}"


def _outcome_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state.value,
        "exit_code": job.exit_code,
        "error_kind": job.error_kind.value if job.error_kind else None,
        "last_error": job.last_error,
        "attempts": job.attempts,
        "finished_at": render.iso(job.finished_at),
    }


@click.command()
@click.argument("job_ids", nargs=-1, shell_complete=complete_ids())
@click.option("--timeout", metavar="DURATION", help="Give up after this long (exit 124).")
@json_option
@queue_options
async def wait(job_ids: tuple[str, ...], timeout: str | None, as_json: bool) -> int:
    """Block until each job is finished (completed, dead or canceled), printing each outcome.

    Exit 0 if all completed, 1 if any did not, 124 on timeout.
    """
    limit = parse_duration(timeout) if timeout is not None else None
    jobs = await manage.wait(
        current_queue(),
        job_ids,
        limit,
        on_finished=None if as_json else lambda job: click.echo(_outcome(job)),
    )
    if as_json:
        render.print_json([_outcome_dict(job) for job in jobs])
    return 0 if all(job.state is JobState.COMPLETED for job in jobs) else 1


COMMANDS = (cancel, kill, restart, edit, delete, purge, wait)
