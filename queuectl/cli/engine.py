"""Commands for the engine that runs jobs: worker start/stop/scale, pause and resume."""

from __future__ import annotations

from collections.abc import Callable

import asyncclick as click

from queuectl import render, service
from queuectl.cli.options import current_queue, queue_options
from queuectl.specs import parse_duration


@click.group()
@queue_options
async def worker() -> None:
    """Run the engine that executes jobs."""


@worker.command(name="start")
@click.option(
    "-c",
    "--concurrency",
    "--count",
    "concurrency",
    type=click.IntRange(1, 1024),
    help="Jobs run at once (default: config key concurrency).",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="Exit once no job is pending, running or waiting for a retry (it waits for jobs "
    "scheduled for later, and while the queue is paused).",
)
@click.option(
    "--until-idle",
    is_flag=True,
    help="Exit once nothing runs and nothing may start now (jobs scheduled for later, retries "
    "not yet due, or a paused queue do not keep it).",
)
@click.option(
    "--queues",
    metavar="NAME[,NAME...]",
    help="Run only the jobs of these named queues (default: every queue).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only failures.")
@click.option(
    "--loop",
    type=click.Choice(["asyncio", "uvloop"]),
    default="asyncio",
    show_default=True,
    help="Event loop implementation.",
)
@click.option(
    "-d",
    "--detach",
    is_flag=True,
    help="Run in the background (log in the queue's engine.log); print its pid.",
)
@queue_options
async def worker_start(
    concurrency: int | None,
    until_empty: bool,
    until_idle: bool,
    queues: str | None,
    quiet: bool,
    loop: str,
    detach: bool,
) -> Callable[[], int] | None:
    """Start the engine (Ctrl-C: finish running jobs; twice: kill them)."""
    queue = current_queue()
    options = service.engine_options(
        queue,
        concurrency,
        until_empty=until_empty,
        until_idle=until_idle,
        quiet=quiet,
        loop=loop,
        queues=queues,
    )
    if detach:
        pid = await service.start_detached(queue, options)
        click.echo(f"engine started in the background (pid {pid}); log: {queue.log}")
        return None
    # The engine needs its own event loop (uvloop or asyncio), so it runs after the CLI's
    # loop has closed: main() calls what this returns.
    return lambda: service.run_engine(options)


@worker.command(name="stop")
@click.option(
    "--timeout",
    metavar="DURATION",
    help="Kill jobs still running after this long; they go back to pending.",
)
@click.option("--now", is_flag=True, help="Kill running jobs at once; they go back to pending.")
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Stop every engine of the database, on any host (PostgreSQL; on SQLite, the one).",
)
@queue_options
async def worker_stop(timeout: str | None, now: bool, every: bool) -> None:
    """Stop the engine: running jobs finish first unless --timeout or --now."""
    after = parse_duration(timeout) if timeout is not None else None
    queue = current_queue()
    if every and await _stop_all(queue, after, now):
        return
    stopping = await service.stop_engine(queue, kill_after=after, now=now)
    running = stopping.running
    if running and not now:
        limit = f"; killing them after {render.duration(after)}" if after is not None else ""
        click.echo(
            f"stopping engine (pid {stopping.pid}): waiting for "
            f"{render.plural(running, 'running job')} to finish{limit}"
        )
    await service.wait_stopped(queue, stopping.pid)
    click.echo(f"engine (pid {stopping.pid}) stopped")


async def _stop_all(queue: service.Queue, after: float | None, now: bool) -> bool:
    """Stop every engine registered in the database; False where engines do not register
    (SQLite: its one engine is stopped through the socket, as without --all)."""
    from queuectl.service import cluster

    live, lost = await cluster.stop_all(queue, kill=now)
    if not live and not lost:
        return False
    for engine in lost:
        click.echo(
            f"engine {engine.id} (host {engine.host}) is lost: no heartbeat for "
            f"{render.duration(engine.heartbeat_age)}; its jobs are rescued by the others"
        )
    if live:
        names = ", ".join(f"{engine.host} pid {engine.pid}" for engine in live)
        click.echo(f"stopping {render.plural(len(live), 'engine')}: {names}")
        await cluster.wait_detached(queue, live, after)
        click.echo(f"{render.plural(len(live), 'engine')} stopped")
    return True


@worker.command(name="scale")
@click.argument("concurrency", type=click.IntRange(1, 1024))
@queue_options
async def worker_scale(concurrency: int) -> None:
    """Change the running engine's concurrency without a restart."""
    await service.scale(current_queue(), concurrency)
    click.echo(f"concurrency = {concurrency}")


@click.command()
@queue_options
async def pause() -> None:
    """Start no new jobs (running ones go on), until `resume`; kept in the queue, so it holds
    with or without an engine, and across engine restarts."""
    await service.pause(current_queue())
    click.echo("queue paused: no job starts until `queuectl resume`; running jobs go on")


@click.command()
@queue_options
async def resume() -> None:
    """Start jobs again after `pause`."""
    await service.resume(current_queue())
    click.echo("queue resumed")


COMMANDS = (worker, pause, resume)
