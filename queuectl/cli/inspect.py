"""Looking at the queue and one job: status, show, logs.

`logs` prints a job's output on stdout in the order the job wrote it. With both streams shown,
a line `==> stderr <==` (or `==> stdout <==`) marks each switch from one stream to the other,
the output starting as stdout does, so a job that wrote only stdout prints exactly its bytes;
`--stdout` or `--stderr` prints one stream's bytes, unlabelled. Notes for people (a stream's
start dropped by output-limit, an attempt that ended, how the job ended) go to stderr, so that
stdout carries nothing but the job's output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from contextlib import aclosing
from typing import BinaryIO

import asyncclick as click

from queuectl import render, service
from queuectl.cli.completion import complete_ids
from queuectl.cli.options import current_queue, json_option, queue_options
from queuectl.errors import BadInput
from queuectl.models import Chunk, Stream
from queuectl.states import JobState

#: printed on stderr for each shown stream whose start the store dropped
TRUNCATED = "[... earlier {stream} truncated (config output-limit) ...]"


@click.command()
@click.option("--queue", "queue_name", metavar="NAME", help="Count only this named queue's jobs.")
@json_option
@queue_options
async def status(queue_name: str | None, as_json: bool) -> None:
    """Jobs per state, whether the queue is paused, and its engine with its running jobs."""
    report = await service.status(current_queue(), queue_name, execution=not as_json)
    if as_json:
        render.print_json(report.as_dict())
    else:
        render.status(report.counts, report.paused, report.engine, report.execution)
        from queuectl import render_engines

        render_engines.engines(report.engines, report.lease_time)


@click.command()
@click.argument("job_id", shell_complete=complete_ids())
@json_option
@queue_options
async def show(job_id: str, as_json: bool) -> None:
    """Every field of a job, and its attempts."""
    job, attempts = await service.job_detail(current_queue(), job_id)
    parents, children = await service.job_relatives(current_queue(), job_id)
    if as_json:
        render.print_json(render.job_detail_dict(job, attempts, parents, children))
    else:
        render.job_detail(job, attempts, parents, children)


@click.command()
@click.argument("job_id", shell_complete=complete_ids())
@click.option("--attempt", type=click.IntRange(1), help="Which run (default: the latest).")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Follow the job until it is finished (live while it runs); exit 0 if it completed, "
    "1 if not.",
)
@click.option("--stdout", "only_stdout", is_flag=True, help="Only stdout, unlabelled.")
@click.option("--stderr", "only_stderr", is_flag=True, help="Only stderr, unlabelled.")
@click.option("-n", "--tail", type=click.IntRange(0), metavar="N", help="Only the last N lines.")
@queue_options
async def logs(
    job_id: str,
    attempt: int | None,
    follow: bool,
    only_stdout: bool,
    only_stderr: bool,
    tail: int | None,
) -> int:
    """Print a job's output in the order it wrote it (both streams, labelled where they
    switch; see --stdout, --stderr)."""
    if only_stdout and only_stderr:
        raise BadInput("--stdout and --stderr exclude each other; give neither for both")
    if follow and attempt is not None:
        raise BadInput("--follow shows the job's attempts from the latest on; drop --attempt")
    shown: tuple[Stream, ...] = (
        ("stdout",) if only_stdout else ("stderr",) if only_stderr else ("stdout", "stderr")
    )
    from queuectl.service import output as job_output  # only `logs` reads output

    writer = _Writer(sys.stdout.buffer, shown)
    queue = current_queue()
    if not follow:
        output = await job_output.attempt_output(queue, job_id, attempt)
        writer.output(output.chunks, output.truncated, tail)
        return 0
    return await _follow(writer, queue, job_id, tail)


async def _follow(writer: _Writer, queue: service.Queue, job_id: str, tail: int | None) -> int:
    from queuectl.service import output as job_output

    async with aclosing(job_output.follow(queue, job_id)) as events:
        async for event in events:
            match event:
                case job_output.Output():
                    writer.output(event.chunks, event.truncated, tail)
                    tail = None  # only what was written before we looked is cut
                case Chunk():
                    writer.write([event])
                case job_output.Waiting(job=job):
                    _note(
                        f"attempt {job.runs} of {job.id} ended: {job.last_error or job.state}; "
                        f"the job runs again {_when(job.next_run_at)}"
                    )
                case job_output.Elsewhere(job=job):
                    _note(
                        f"attempt {job.runs} of {job.id} runs under engine {job.lease_owner}, "
                        "which is not this home's engine: live output comes only through the "
                        "engine's own control socket (on its host); the attempt's output is "
                        "shown when it ends"
                    )
                case job_output.Finished(job=job):
                    if job.state is JobState.COMPLETED:
                        return 0
                    reason = f": {job.last_error}" if job.last_error else ""
                    _note(f"job {job.id} is {job.state.value}{reason}")
                    return 1
    return 1  # not reached: the events end with Finished


def _when(ts: float) -> str:
    when = render.relative(ts)
    return "as soon as an engine takes it" if when == "now" or "ago" in when else when


def _note(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"queuectl: {render.printable(text)}\n")
    sys.stderr.flush()


class _Writer:
    """Writes the chosen streams' chunks to stdout, raw, with a header line at each switch
    between streams when both are shown. Flushed after each write, so that `logs -f` shows
    output as it comes."""

    def __init__(self, out: BinaryIO, shown: tuple[Stream, ...]) -> None:
        self.out = out
        self.shown = shown
        self.labelled = len(shown) > 1
        self.current: Stream = "stdout"  # output starts as stdout: no header for it
        self.at_line_start = True

    def output(
        self, chunks: Sequence[Chunk], truncated: Iterable[Stream], tail: int | None
    ) -> None:
        """A block of output written before we looked; with `tail`, only its last lines."""
        chosen = _only(chunks, self.shown)
        cut = False
        if tail is not None:
            chosen, cut = last_lines(chosen, tail)
        if not cut:  # the marker tells of a loss at the start, which --tail did not show
            for stream in (s for s in self.shown if s in set(truncated)):
                _note(TRUNCATED.format(stream=stream))
        self.write(chosen)

    def write(self, chunks: Iterable[Chunk]) -> None:
        wrote = False
        for stream, data in chunks:
            if not data or stream not in self.shown:
                continue
            if self.labelled and stream != self.current:
                self.out.write(b"" if self.at_line_start else b"\n")
                self.out.write(b"==> %s <==\n" % stream.encode())
                self.current = stream
            self.out.write(data)
            self.at_line_start = data.endswith(b"\n")
            wrote = True
        if wrote:
            self.out.flush()


def _only(chunks: Sequence[Chunk], shown: tuple[Stream, ...]) -> list[Chunk]:
    """The chunks of the shown streams, neighbours of one stream joined."""
    runs: list[Chunk] = []
    for stream, data in chunks:
        if stream not in shown or not data:
            continue
        if runs and runs[-1].stream == stream:
            runs[-1] = Chunk(stream, runs[-1].data + data)
        else:
            runs.append(Chunk(stream, data))
    return runs


def last_lines(chunks: Sequence[Chunk], count: int) -> tuple[list[Chunk], bool]:
    """The last `count` lines, and whether any were left out. A line ends at a newline or
    where the other stream takes over; a last line without a newline counts too."""
    kept: list[Chunk] = []
    for index in range(len(chunks) - 1, -1, -1):
        if count == 0:
            return kept[::-1], True
        stream, data = chunks[index]
        lines = _lines(data)
        if len(lines) > count:
            kept.append(Chunk(stream, b"".join(lines[-count:])))
            return kept[::-1], True
        kept.append(chunks[index])
        count -= len(lines)
    return kept[::-1], False


def _lines(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


COMMANDS = (
    status,
    show,
    logs,
)
