"""Commands about jobs: enqueue, list, show, cancel, logs, and the queue's status."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import aclosing
from typing import Any, TextIO

import asyncclick as click

from queuectl import render, service, specs
from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.errors import BadInput
from queuectl.states import JobState

#: a progress bar is worth drawing from this many jobs on
PROGRESS_FROM = 10_000


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1)
@click.option("--file", "path", metavar="PATH", help="JSON lines file of jobs ('-' for stdin).")
@click.option("--id", "job_id", help="Job id (default: generated).")
@click.option("--max-retries", type=int, help="Retries after the first attempt.")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--timeout", metavar="DURATION", help="Kill the job after this long (30s, 5m).")
@click.option("--run-at", metavar="ISO", help="Do not start before this time (with timezone).")
@click.option("--delay", metavar="DURATION", help="Do not start before now + DURATION.")
@queue_options
async def enqueue(
    args: tuple[str, ...],
    path: str | None,
    job_id: str | None,
    max_retries: int | None,
    priority: int | None,
    timeout: str | None,
    run_at: str | None,
    delay: str | None,
) -> None:
    """Add a job: a JSON object, `-- COMMAND...`, or --file of JSON lines.

    \b
      queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":3}'
      queuectl enqueue --priority 5 --delay 10m -- ./backup.sh /data
      queuectl enqueue --file jobs.jsonl
    """
    options = specs.Shorthand(job_id, max_retries, priority, timeout, run_at, delay)
    cwd = os.getcwd()
    if path is not None:
        if args or options.given:
            raise BadInput("--file takes no command and no job options; put them in the file")
        batch = specs.parse_job_lines(_read_input(path), path, cwd)
        with _progress(len(batch.specs)) as advance:
            count = await service.enqueue_batch(current_queue(), batch, advance)
        click.echo(f"enqueued {count} jobs")
        return
    if not args:
        raise BadInput("nothing to enqueue; give a JSON job, `-- COMMAND...` or --file PATH")
    if len(args) == 1 and args[0].lstrip().startswith("{") and not options.given:
        spec = specs.parse_job_json(args[0], cwd)
    else:
        spec = specs.shorthand_spec(" ".join(args), cwd, options)
    click.echo(await service.enqueue(current_queue(), spec))


def _read_input(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise BadInput(f"cannot read {path!r}: {exc.strerror}") from None


class _progress:
    """A rich progress bar on a terminal, for a long enqueue; nothing when output goes to a
    file or pipe, where it would only be noise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not sys.stdout.isatty() or self.total < PROGRESS_FROM:
            return None
        from rich.progress import Progress

        bar = self.bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("enqueueing", total=self.total)
        return lambda n: bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@click.command()
@json_option
@queue_options
async def status(as_json: bool) -> None:
    """Jobs per state, and the running engine with its jobs."""
    report = await service.status(current_queue())
    if as_json:
        render.print_json(report.as_dict())
    else:
        render.status(report.counts, report.engine)


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


@click.command()
@click.argument("job_id")
@json_option
@queue_options
async def show(job_id: str, as_json: bool) -> None:
    """Every field of a job, and its attempts."""
    job, attempts = await service.job_detail(current_queue(), job_id)
    if as_json:
        render.print_json(
            {**render.job_dict(job), "history": [render.attempt_dict(a) for a in attempts]}
        )
    else:
        render.job_detail(job, attempts)


@click.command()
@click.argument("job_id")
@queue_options
async def cancel(job_id: str) -> None:
    """Cancel a job: a waiting one at once, a running one by killing its process group."""
    await service.cancel(current_queue(), job_id)
    click.echo(f"canceled {job_id}")


@click.command()
@click.argument("job_id")
@click.option("--attempt", type=click.IntRange(1), help="Which run (default: the latest).")
@click.option(
    "-f", "--follow", is_flag=True, help="Stream a running job's output live until it ends."
)
@queue_options
async def logs(job_id: str, attempt: int | None, follow: bool) -> None:
    """Print a job's captured stdout and stderr."""
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    async with aclosing(service.logs(current_queue(), job_id, attempt, follow)) as chunks:
        async for chunk in chunks:
            _write(streams[chunk.stream], chunk.data)


def _write(stream: TextIO, data: bytes) -> None:
    """Raw bytes, as the job wrote them; flushed so that stdout and stderr interleave as they
    came when both go to one terminal."""
    stream.flush()
    stream.buffer.write(data)
    stream.flush()


COMMANDS = (enqueue, status, list_, show, cancel, logs)
