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
@click.option(
    "--each",
    metavar="FILE",
    help="One job per line of FILE ('-' for stdin): {} in COMMAND is the line, shell-quoted "
    "({/} basename, {//} directory, {.} without extension, {/.} both, {#} job number); "
    "without {} the line is appended.",
)
@click.option("--id", "job_id", help="Job id (default: generated).")
@click.option("--max-retries", type=int, help="Retries after the first attempt.")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--timeout", metavar="DURATION", help="Kill the job after this long (30s, 1h30m).")
@click.option("--run-at", metavar="ISO", help="Do not start before this time (with timezone).")
@click.option("--delay", metavar="DURATION", help="Do not start before now + DURATION.")
@click.option("--cwd", metavar="DIR", help="Run the job in DIR (default: this directory).")
@click.option(
    "--env",
    "env",
    metavar="KEY=VALUE",
    multiple=True,
    help="Add a variable to the job's environment (repeatable); KEY alone passes this "
    "shell's value.",
)
@click.option(
    "--label", metavar="TEXT", help="Free text shown in listings; `list --grep` finds it."
)
@click.option("--queue", "queue_name", metavar="NAME", help="The named queue (default: default).")
@click.option(
    "--after",
    metavar="ID[,ID...]",
    help="Wait (blocked) until these jobs have completed; canceled if one ends dead or canceled.",
)
@click.option(
    "--unique-key",
    metavar="KEY",
    help="Create nothing while a job with KEY is blocked, pending, failed or running: print "
    "its id instead.",
)
@queue_options
async def enqueue(
    args: tuple[str, ...],
    path: str | None,
    each: str | None,
    job_id: str | None,
    max_retries: int | None,
    priority: int | None,
    timeout: str | None,
    run_at: str | None,
    delay: str | None,
    cwd: str | None,
    env: tuple[str, ...],
    label: str | None,
    queue_name: str | None,
    after: str | None,
    unique_key: str | None,
) -> None:
    """Add a job: a JSON object, `-- COMMAND...`, --file of JSON lines, or --each line.

    Options given with a JSON job override its fields of the same name; --env adds to its env
    (a variable in both takes the option's value), --run-at or --delay replaces its run_at.

    \b
      queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":3}'
      queuectl enqueue --priority 5 --delay 10m -- ./backup.sh /data
      queuectl enqueue --label nightly --env MODE=full --cwd /srv -- make report
      queuectl enqueue --after build --unique-key deploy-prod -- ./deploy.sh
      queuectl enqueue --file jobs.jsonl
      find . -name '*.png' | queuectl enqueue --each - -- optipng {}
    """
    resolved = _cwd(cwd)
    options = specs.Shorthand(
        job_id,
        max_retries,
        priority,
        timeout,
        run_at,
        delay,
        cwd=resolved if cwd is not None else None,
        env=specs.env_options(env, os.environ),
        label=label,
        queue=queue_name,
        after=after,
        unique_key=unique_key,
    )
    if path is not None:
        if args or options.given or each is not None:
            raise BadInput(
                "--file takes no command, no --each and no job options; put them in the file"
            )
        batch = specs.parse_job_lines(_read_input(path), path, resolved)
        await _enqueue_batch(batch)
        return
    if each is not None:
        await _enqueue_each(each, args, resolved, options)
        return
    spec = specs.job_from_args(args, resolved, options)
    enqueued = await service.enqueue(current_queue(), spec)
    if enqueued.existing:
        click.echo(
            f"job {enqueued.id} with unique key {spec.unique_key!r} is already queued; "
            "nothing was created",
            err=True,
        )
    click.echo(enqueued.id)


async def _enqueue_each(
    source: str, args: tuple[str, ...], cwd: str, options: specs.Shorthand
) -> None:
    from queuectl.service.each import each_batch

    if not args:
        raise BadInput("--each needs a command: `--each FILE -- COMMAND {}...`")
    if len(args) == 1 and specs.is_json_object(args[0]):
        raise BadInput("--each takes `-- COMMAND...` with {} where the line goes, not a JSON job")
    template = specs.shorthand_spec(" ".join(args), cwd, options)
    name = "stdin" if source == "-" else source
    await _enqueue_batch(each_batch(template, _read_input(source), name))


async def _enqueue_batch(batch: specs.JobBatch) -> None:
    with _progress(len(batch.specs)) as advance:
        enqueued = await service.enqueue_batch(current_queue(), batch, advance)
    created = enqueued.created
    already = len(enqueued) - created
    note = f" ({already} already queued under their unique keys)" if already else ""
    click.echo(f"enqueued {created} job{'' if created == 1 else 's'}{note}")


def _cwd(option: str | None) -> str:
    """The job's directory, absolute: --cwd (relative to this one), else this directory."""
    try:
        here = os.getcwd()
    except OSError:
        if option is None or not option.startswith("/"):
            raise BadInput(
                "this shell's directory no longer exists; cd elsewhere or give --cwd /DIR"
            ) from None
        here = "/"
    if option is None:
        return here
    target = os.path.normpath(os.path.join(here, option))
    if not os.path.isdir(target):
        raise BadInput(f"--cwd {option!r} is not a directory; give an existing directory")
    return target


def _read_input(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise BadInput(f"cannot read {path!r}: {exc.strerror}") from None


class _progress:
    """A rich progress bar on a terminal (stderr, so that stdout can be redirected), for a long
    enqueue; nothing when stderr goes to a file or pipe, where it would only be noise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not sys.stderr.isatty() or self.total < PROGRESS_FROM:
            return None
        from rich.console import Console
        from rich.progress import Progress

        bar = self.bar = Progress(console=Console(stderr=True), transient=True)
        bar.start()
        task = bar.add_task("enqueueing", total=self.total)
        return lambda n: bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


COMMANDS = (enqueue,)
