"""A job's output as it is printed, as Server-Sent Events for its page.

Built on the service's `follow` (what `logs -f` prints): the latest attempt's output, live while
it runs on this host's engine (over the control socket), then each later attempt's, until the
job is finished. Each `output` event is an HTML fragment (escaped here, ANSI stripped) and
carries `RUN:OFFSET`, the bytes of that attempt sent so far, as its id: a browser that
reconnects sends it back as Last-Event-ID and the stream resumes after those bytes.
"""

from __future__ import annotations

from contextlib import aclosing

from aiohttp import web
from markupsafe import escape

from queuectl.errors import QueuectlError
from queuectl.models import Chunk, Job, Stream
from queuectl.render import relative
from queuectl.service import Queue
from queuectl.service import output as job_output
from queuectl.web.sse import message, open_stream, send
from queuectl.web.text import Cleaner


def parse_resume(header: str | None) -> tuple[int, int]:
    """Last-Event-ID `RUN:OFFSET` -> (run, offset); (0, 0) when absent or not ours."""
    run, _, offset = (header or "").partition(":")
    if run.isdigit() and offset.isdigit():
        return int(run), int(offset)
    return 0, 0


def _span(stream: Stream, text: str) -> str:
    return f'<span class="{stream}">{escape(text)}</span>'


def state_line(job: Job) -> str:
    if job.state.value in ("completed", "dead", "canceled"):
        error = f": {job.last_error}" if job.last_error else ""
        return f"job {job.state.value}{error}"
    if job.state.value == "failed":
        return (
            f"attempt {job.runs} failed: {job.last_error or '-'}; "
            f"runs again {relative(job.next_run_at)}"
        )
    return f"job {job.state.value}"


class _Attempt:
    """One attempt's output as sent: its byte offset, and what to pass over on a resume."""

    def __init__(self, run: int, skip: int) -> None:
        self.run = run
        self.offset = 0
        self.skip = skip
        self.cleaner = Cleaner()

    def fragment(self, chunk: Chunk) -> bytes | None:
        data = chunk.data
        start = self.offset
        self.offset += len(data)
        if self.offset <= self.skip:
            return None
        if start < self.skip:
            data = data[self.skip - start :]
        text = self.cleaner.feed(chunk.stream, data)
        if not text:
            return None
        return message("output", _span(chunk.stream, text), f"{self.run}:{self.offset}")


async def stream(request: web.Request, queue: Queue, job_id: str) -> web.StreamResponse:
    resume_run, resume_offset = parse_resume(request.headers.get("Last-Event-ID"))
    response = await open_stream(request)
    attempt: _Attempt | None = None
    try:
        async with aclosing(job_output.follow(queue, job_id)) as events:
            async for event in events:
                if isinstance(event, job_output.Output):
                    skip = resume_offset if event.run == resume_run else 0
                    if attempt is not None and event.run != attempt.run:
                        header = f"\n--- attempt {event.run} ---\n"
                        await send(response, message("output", _span("stdout", header)))
                    attempt = _Attempt(event.run, skip)
                    for chunk in event.chunks:
                        await _send(response, attempt, chunk)
                    if event.live:
                        await send(response, message("state", f"attempt {event.run} running"))
                elif isinstance(event, Chunk):
                    if attempt is not None:
                        await _send(response, attempt, event)
                elif isinstance(event, job_output.Waiting):
                    await send(response, message("state", str(escape(state_line(event.job)))))
                elif isinstance(event, job_output.Elsewhere):
                    where = f"attempt {event.job.runs} runs on engine {event.job.lease_owner}"
                    line = f"{where}: its output is shown when it ends"
                    await send(response, message("state", str(escape(line))))
                else:
                    await send(response, message("state", str(escape(state_line(event.job)))))
                    await send(response, message("end", "finished"))
                    break
    except QueuectlError as exc:
        await send(response, message("state", str(escape(str(exc)))))
        await send(response, message("end", "error"))
    except (ConnectionError, TimeoutError):
        pass  # the browser went away or stopped reading
    return response


async def _send(response: web.StreamResponse, attempt: _Attempt, chunk: Chunk) -> None:
    data = attempt.fragment(chunk)
    if data is not None:
        await send(response, data)
