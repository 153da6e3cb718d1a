"""Run one shell command for the engine: its own process group, bounded output, timeout, kill.

Every way out of JobProcess.wait() leaves no process of the job's group running (anyio's rule:
signal the group, reap under a shield, only then return), because a survivor would go on using
the machine after the queue has recorded the job as over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from collections import deque
from collections.abc import Callable

from queuectl import procfs
from queuectl.engine.child import Child, Environment
from queuectl.errors import SpawnError
from queuectl.models import Chunk, Outcome, Stream
from queuectl.render import printable
from queuectl.states import ErrorKind, KillReason

logger = logging.getLogger(__name__)

OutputCallback = Callable[[str, bytes], None]

_STREAMS: dict[int, Stream] = {1: "stdout", 2: "stderr"}
_POLL = 0.02  # how often to look whether a signalled group has emptied
_DRAIN = 0.5  # how long to wait for EOF once the group is gone (another session may hold a pipe)
_HINT_CHARS = 200
_EXIT_HINTS = {126: ": permission denied or not executable", 127: ": command not found"}


class Tail:
    """The last `limit` bytes of a stream in O(limit) memory, however much the stream writes."""

    __slots__ = ("_buf", "limit", "total")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"output limit must be >= 0, not {limit}")
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def append(self, data: bytes) -> None:
        self.total += len(data)
        if len(data) >= self.limit:
            self._buf[:] = memoryview(data)[len(data) - self.limit :]
            return
        self._buf += data
        if len(self._buf) > 2 * self.limit:  # trim in batches: each byte is moved O(1) times
            del self._buf[: -self.limit]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def value(self) -> bytes:
        return bytes(self._buf[-self.limit :]) if self.limit else b""


class OutputRecord:
    """Both streams of a job in the order they were read, each bounded like a Tail.

    Each stream's bytes live in a Tail of its own (its last `limit` bytes); the order is kept
    apart as runs, one signed length per stretch that one stream wrote before the other did
    (+n: n bytes of stdout, -n: of stderr). Runs alternate between the streams, so the oldest
    run of either stream is the first or the second one, and dropping a stream's oldest bytes
    costs O(1) amortized. Memory stays O(limit) however much, and however interleaved, the job
    writes: two tails, and one deque entry (8 bytes) per run kept.

    "In the order written" is the order the engine read the two pipes: writes to both streams
    that land between two reads of the loop come out stdout first.
    """

    __slots__ = ("_kept", "_runs", "_tails")

    def __init__(self, limit: int) -> None:
        self._tails: dict[Stream, Tail] = {"stdout": Tail(limit), "stderr": Tail(limit)}
        self._kept: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self._runs: deque[int] = deque()

    def append(self, stream: Stream, data: bytes) -> None:
        if not data:
            return
        tail = self._tails[stream]
        tail.append(data)
        sign = 1 if stream == "stdout" else -1
        runs = self._runs
        if runs and (runs[-1] > 0) == (sign > 0):
            runs[-1] += sign * len(data)
        else:
            runs.append(sign * len(data))
        self._kept[stream] += len(data)
        excess = self._kept[stream] - min(tail.total, tail.limit)
        if excess > 0:
            self._kept[stream] -= excess
            self._drop(sign, excess)

    def _drop(self, sign: int, count: int) -> None:
        """Forget the oldest `count` bytes of one stream (sign +1: stdout, -1: stderr)."""
        runs = self._runs
        while count > 0:
            index = 0 if (runs[0] > 0) == (sign > 0) else 1
            length = abs(runs[index])
            if length > count:
                runs[index] -= sign * count
                return
            count -= length
            del runs[index]
            if index == 1 and len(runs) > 1:  # the other stream's runs on either side join
                runs[0] += runs[1]
                del runs[1]

    def truncated(self, stream: Stream) -> bool:
        return self._tails[stream].truncated

    def value(self, stream: Stream) -> bytes:
        return self._tails[stream].value()

    def chunks(self) -> tuple[Chunk, ...]:
        """What is kept, one chunk per run, in order."""
        data = {stream: memoryview(tail.value()) for stream, tail in self._tails.items()}
        offsets: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        chunks = []
        for run in self._runs:
            stream: Stream = "stdout" if run > 0 else "stderr"
            start, end = offsets[stream], offsets[stream] + abs(run)
            chunks.append(Chunk(stream, bytes(data[stream][start:end])))
            offsets[stream] = end
        return tuple(chunks)


class _Capture:
    """Takes each chunk as the loop reads it, so no buffer grows beyond the record."""

    def __init__(self, limit: int, on_output: OutputCallback | None) -> None:
        self.record = OutputRecord(limit)
        self.on_output = on_output

    def data_received(self, fd: int, data: bytes) -> None:
        self.record.append(_STREAMS[fd], data)
        if self.on_output is not None:
            try:
                self.on_output(_STREAMS[fd], data)
            except Exception:  # a broken follower must not stop the capture or the job
                logger.exception("output callback failed; no more live output for this job")
                self.on_output = None


class JobProcess:
    """One running shell command, the leader of its own session and process group."""

    def __init__(self, child: Child, capture: _Capture) -> None:
        self._loop = asyncio.get_running_loop()
        self._child = child
        self._capture = capture
        self.pid: int = child.pid
        self._grace: float | None = None
        self._timeout: float | None = None
        self._timed_out = False
        self._killed_by: KillReason | None = None
        self._term_sent = False
        self._kill_timer: asyncio.TimerHandle | None = None

    @classmethod
    async def spawn(
        cls,
        command: str,
        *,
        cwd: str,
        env: Environment,
        output_limit: int,
        on_output: OutputCallback | None = None,
    ) -> JobProcess:
        capture = _Capture(output_limit, on_output)
        try:
            child = await Child.spawn(command, cwd=cwd, env=env, on_data=capture.data_received)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            # looked at only now: the child's chdir is the check that counts, and a look
            # before every start cost 3% of the engine's time with `true` jobs
            problem = _cwd_problem(cwd)
            if problem is not None:
                raise SpawnError(problem, permanent=True) from exc
            raise SpawnError(f"could not start the command: {reason}") from exc
        return cls(child, capture)

    def output(self) -> tuple[Chunk, ...]:
        """The output kept so far, in order (for a live follower joining late)."""
        return self._capture.record.chunks()

    def kill(self, reason: KillReason, grace: float | None = None) -> None:
        """Stop the job from outside; wait() then reports `reason` as the outcome."""
        if self._killed_by is not None or self._timed_out or self._child.exited.is_set():
            return
        self._killed_by = reason
        if grace is not None:
            self._grace = grace
        self._terminate()

    async def wait(self, timeout: float | None, kill_grace: float) -> Outcome:
        if self._grace is None:
            self._grace = kill_grace
        self._timeout = timeout
        try:
            if self._term_sent:
                self._terminate()  # kill() came before the grace was known: arm the SIGKILL now
            try:
                await asyncio.wait_for(self._child.exited.wait(), timeout)
            except TimeoutError:
                if not self._child.exited.is_set():
                    self._timed_out = True
                    self._terminate()
            await self._settle()
        except asyncio.CancelledError:
            self._terminate()
            settle = asyncio.ensure_future(self._settle())
            while not settle.done():  # the cleanup is bounded by the grace; let nothing cut it
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(settle)
            raise
        return self._result()

    def _terminate(self) -> None:
        """SIGTERM the group once, and arm one SIGKILL for after the grace."""
        if not self._term_sent:
            self._term_sent = self._signal(signal.SIGTERM)
        if self._term_sent and self._kill_timer is None and self._grace is not None:
            self._kill_timer = self._loop.call_later(self._grace, self._signal, signal.SIGKILL)

    def _signal(self, sig: int) -> bool:
        """Signal the whole group; False when there is nobody left to signal."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:  # e.g. everything left runs under another uid (sudo)
            logger.warning("cannot signal process group %d: permission denied", self.pid)
            return False
        return True

    def _group_alive(self) -> bool:
        """Zombies do not count: orphans wait for init to reap them, which can take seconds."""
        if not self._signal(0):
            return False
        if not procfs.available():  # no procfs: the kernel's answer will have to do
            return True
        return bool(procfs.group_members(self.pid))

    async def _settle(self) -> None:
        """Once the shell is gone: end the rest of its group, collect the output, close pipes."""
        await self._child.exited.wait()
        self._terminate()  # stragglers: background children the shell left behind
        if self._kill_timer is not None:
            deadline = self._kill_timer.when() + _DRAIN
            while self._group_alive() and self._loop.time() < deadline:
                await asyncio.sleep(_POLL)
            self._kill_timer.cancel()  # the group is gone; its id may be reused
        drained = self._child.drained
        if not drained.is_set():  # a timer, not wait_for: no extra task on every job's path
            give_up = self._loop.call_later(_DRAIN, drained.set)
            await drained.wait()
            give_up.cancel()
        self._child.close()

    def _result(self) -> Outcome:
        code = self._child.returncode
        assert code is not None, "wait() settles only after the shell has exited"
        record = self._capture.record
        kind: ErrorKind | None
        error: str | None
        if self._killed_by is not None:
            kind, error = self._killed_by.error_kind, self._killed_by.message
        elif self._timed_out:
            kind, error = (
                ErrorKind.TIMEOUT,
                f"timed out after {self._timeout:g}s; process group killed",
            )
        else:
            error = _describe_exit(code, record.value("stderr"))
            kind = None if error is None else ErrorKind.EXIT
        return Outcome(
            kind,
            exit_code=code if code >= 0 else None,
            error=error,
            stdout=record.value("stdout"),
            stderr=record.value("stderr"),
            stdout_truncated=record.truncated("stdout"),
            stderr_truncated=record.truncated("stderr"),
            output=record.chunks(),
        )


def _cwd_problem(cwd: str) -> str | None:
    try:
        mode = os.stat(cwd).st_mode
    except FileNotFoundError:
        return f"working directory '{cwd}' does not exist"
    except OSError as exc:
        return f"working directory '{cwd}' is not accessible ({exc.strerror})"
    if not stat.S_ISDIR(mode):
        return f"working directory '{cwd}' is not a directory"
    if not os.access(cwd, os.X_OK):
        return f"working directory '{cwd}' is not accessible (permission denied)"
    return None


def _describe_exit(code: int, stderr: bytes) -> str | None:
    if code == 0:
        return None
    if code < 0:
        try:
            text = f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            text = f"killed by signal {-code}"
    else:
        text = f"exit code {code}{_EXIT_HINTS.get(code, '')}"
    line = _last_line(stderr)
    return f"{text} (stderr: {line})" if line else text


def _last_line(data: bytes) -> str:
    """The last non-empty line, which is where a failing command usually says why."""
    for line in reversed(data[-4096:].decode(errors="replace").splitlines()):
        line = printable(line.strip())
        if line:
            return line if len(line) <= _HINT_CHARS else line[: _HINT_CHARS - 1] + "…"
    return ""
