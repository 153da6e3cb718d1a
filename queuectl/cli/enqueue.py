"""`queuectl enqueue`: one job, a file of JSON lines, or one job per input line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import asyncclick as click

from queuectl import service, specs
from queuectl.cli.options import current_queue, queue_options
from queuectl.errors import BadInput

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


COMMANDS = (enqueue,)
