"""A job's output, for `logs` (and the dashboard next): one attempt's stored output, or the job
followed until it is finished.

What a front end gets is data, never text to show: the chunks in the order the job wrote them,
which streams lost their start to the output limit (the front end says so; no marker is stored
in or mixed into the data), and the job's progress between attempts. Labelling the streams,
keeping the last lines, and the exit code are the front end's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queuectl.errors import BadInput, QueuectlError
from queuectl.models import Attempt, Chunk, Job, Stream
from queuectl.states import JobState, is_finished

if TYPE_CHECKING:
    from queuectl.service import Queue
    from queuectl.store import Store

#: how often a followed job that is not running is looked at again
POLL = 0.1


@dataclass(frozen=True, slots=True)
class Output:
    """Output of attempt `run` written before the caller saw it: stored (the attempt has ended),
    or what a running attempt wrote before it was followed (then `live` chunks follow)."""

    run: int
    chunks: tuple[Chunk, ...]
    #: streams whose start was dropped (config key output-limit)
    truncated: frozenset[Stream] = frozenset()
    live: bool = False


@dataclass(frozen=True, slots=True)
class Waiting:
    """Attempt `job.runs` ended and the job will run again (failed: at job.next_run_at)."""

    job: Job


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """Attempt `job.runs` runs under an engine that this host cannot reach (another host's, or
    one that does not answer): live output comes only from the engine's own control socket,
    so the attempt's output is given once it has ended."""

    job: Job


@dataclass(frozen=True, slots=True)
class Finished:
    """The job is over: completed, dead or canceled."""

    job: Job


FollowEvent = Output | Chunk | Waiting | Elsewhere | Finished


async def attempt_output(queue: Queue, job_id: str, run: int | None = None) -> Output:
    """The stored output of one attempt (`run`, default the latest)."""
    async with queue.store(create=False) as store:
        attempts = await store.attempts(job_id)
    return _stored(_attempt(job_id, attempts, run))


async def follow(queue: Queue, job_id: str) -> AsyncGenerator[FollowEvent, None]:
    """The job until it is finished: the latest attempt's output (live while it runs on this
    host's engine), then each later attempt's, a Waiting between attempts and a Finished at
    the end. A job that has not run yet is waited for; a running job whose engine does not
    answer (another host's, or one that died) has its output shown once the attempt ends."""
    async with queue.store(create=False) as store:
        job = await store.get(job_id)
        shown = max(job.runs - 1, 0)  # the runs whose output has been given
        announced = shown  # the last run after which a Waiting was given
        unreachable = 0  # the last run whose engine was said to be out of reach
        while True:
            if job.runs > shown:
                if job.state is JobState.PROCESSING and job.runs == unreachable:
                    await asyncio.sleep(POLL)  # until the attempt ends
                elif job.state is JobState.PROCESSING and job.runs == shown + 1:
                    stream = await _open_live(queue, job)
                    if stream is None:  # it ended before its engine could stream it, or it
                        now = await store.get(job_id)  # runs where no engine here answers
                        if now.state is JobState.PROCESSING and now.runs == job.runs:
                            unreachable = job.runs
                            yield Elsewhere(now)
                        await asyncio.sleep(POLL)
                    else:
                        shown = job.runs  # even if the stream breaks: never twice
                        async with aclosing(stream):
                            async for event in stream:
                                yield event
                else:
                    for attempt in await _ended_attempts(store, job, shown):
                        yield _stored(attempt)
                        shown = attempt.run
                    running = job.state is JobState.PROCESSING  # its run is followed next
                    shown = max(shown, job.runs - running)  # runs without a row are skipped
            elif is_finished(job.state):
                yield Finished(job)
                return
            else:
                if shown == job.runs > announced and job.state is not JobState.PROCESSING:
                    yield Waiting(job)
                    announced = shown
                await asyncio.sleep(POLL)
            job = await store.get(job_id)


async def _ended_attempts(store: Store, job: Job, shown: int) -> list[Attempt]:
    """The attempts after run `shown` that have ended, in order (a running one is followed)."""
    return [
        attempt
        for attempt in await store.attempts(job.id)
        if attempt.run > shown and (attempt.run < job.runs or job.state is not JobState.PROCESSING)
    ]


def _stored(attempt: Attempt) -> Output:
    cut: tuple[tuple[Stream, bool], ...] = (
        ("stdout", attempt.stdout_truncated),
        ("stderr", attempt.stderr_truncated),
    )
    return Output(attempt.run, attempt.chunks(), frozenset(s for s, c in cut if c))


async def _open_live(queue: Queue, job: Job) -> AsyncGenerator[FollowEvent, None] | None:
    """The running attempt's output from its engine, or None when the engine cannot give it
    (it is not running there, or no engine answers); nothing is shown before this is known."""
    from queuectl.control.client import ControlClient
    from queuectl.errors import ControlError

    try:
        client = await ControlClient.connect(queue.socket)
    except ControlError:
        return None
    replies = client.stream("follow", id=job.id)
    try:
        first = await anext(replies)
    except ControlError:
        await replies.aclose()
        return None
    return _live(job, int(first.get("replay") or 0), replies)


async def _live(
    job: Job, replay: int, replies: AsyncGenerator[dict[str, Any], None]
) -> AsyncGenerator[FollowEvent, None]:
    """Output (the first `replay` chunks: what the attempt wrote before), then each chunk as
    the engine sends it, until the attempt ends or its engine goes away."""
    from queuectl.errors import ControlError

    earlier: list[Chunk] = []
    try:
        if not replay:
            yield Output(job.runs, (), live=True)
        async for reply in replies:
            if "stream" in reply:
                stream: Stream = "stdout" if reply["stream"] == "stdout" else "stderr"
                chunk = Chunk(stream, reply["data"].encode("utf-8", "surrogateescape"))
                if len(earlier) < replay:
                    earlier.append(chunk)
                    if len(earlier) == replay:
                        yield Output(job.runs, tuple(earlier), live=True)
                else:
                    yield chunk
            elif reply.get("overflowed"):
                raise QueuectlError(
                    "fell too far behind the job's output; run `queuectl "
                    f"logs {job.id}` for the stored tail"
                )
    except ControlError:
        pass  # its engine went away: the attempt is settled by the next one
    finally:
        await replies.aclose()
    if 0 < len(earlier) < replay:
        yield Output(job.runs, tuple(earlier), live=True)


def _attempt(job_id: str, attempts: Sequence[Attempt], run: int | None) -> Attempt:
    if not attempts:
        raise BadInput(f"job {job_id!r} has not run yet; see `queuectl show {job_id}`")
    found = attempts[-1] if run is None else next((a for a in attempts if a.run == run), None)
    if found is not None:
        return found
    raise BadInput(
        f"job {job_id!r} has no attempt {run}; it has run "
        f"{len(attempts)} time{'s' if len(attempts) != 1 else ''}"
    )
