"""Looking at the queue and one job: status, show, logs."""

from __future__ import annotations

import sys
from contextlib import aclosing
from typing import TextIO

import asyncclick as click

from queuectl import render, service
from queuectl.cli.options import current_queue, json_option, queue_options


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


COMMANDS = (
    status,
    show,
    logs,
)
