"""A job's shell process as the event loop sees it: two output pipes and an exit, nothing more.

Why not `loop.subprocess_shell`: for every job it builds a subprocess transport, three pipe
transports with their protocols and a child-watcher entry, and hops through `call_soon`
several times before and after the process runs. Profiling a burn-down of `true` jobs
(bench/flame-burn-before.svg) put that machinery and Popen's at over half of the loop's
time. Here each pipe is one `add_reader`, and the exit is one more: a pidfd (Linux 5.3+),
else a thread per child blocked in waitpid (what Python 3.11's default child watcher does
for every child anyway).

The process is started by engine/spawn.py (glibc's posix_spawn), or else by subprocess.Popen;
nothing else reaps it, so its exit status is always ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import subprocess
import threading
from collections.abc import Callable, Mapping

from queuectl.engine import spawn

DataCallback = Callable[[int, bytes], None]  # (1 for stdout or 2 for stderr, bytes read)
Environment = Mapping[str, str] | Mapping[bytes, bytes]

_READ_SIZE = 256 * 1024  # as asyncio's pipe transports read
_PIDFD = hasattr(os, "pidfd_open")
Popen = subprocess.Popen[bytes]


class Child:
    """A started shell command; `exited` is set once it is reaped, `drained` at EOF of both
    pipes (a background grandchild may hold them open after the shell exits)."""

    def __init__(
        self, pid: int, pipes: dict[int, int], on_data: DataCallback, popen: Popen | None = None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._popen = popen
        self._on_data = on_data
        self.pid = pid
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self.drained = asyncio.Event()
        self._pipes = pipes  # stream (1, 2) -> the read end of its pipe
        for stream, fd in pipes.items():
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._read, stream)
        self._watch_exit()

    @classmethod
    async def spawn(
        cls, command: str, *, cwd: str, env: Environment, on_data: DataCallback
    ) -> Child:
        """Start `command` under /bin/sh as the leader of a new session; OSError or ValueError
        when it cannot be started."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        popen = None
        try:
            if spawn.available():
                block = spawn.environment_block(env)
                pid = spawn.spawn_shell(command, cwd, block, _devnull(), out_write, err_write)
            else:
                popen = subprocess.Popen(
                    command, shell=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=out_write, stderr=err_write, start_new_session=True,
                )  # fmt: skip
                pid = popen.pid
        except BaseException:
            for fd in (out_read, err_read):
                os.close(fd)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        return cls(pid, {1: out_read, 2: err_read}, on_data, popen)

    def _read(self, stream: int) -> None:
        fd = self._pipes[stream]
        try:
            data = os.read(fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO and the like: treated as the end of the stream
            data = b""
        if data:
            self._on_data(stream, data)
            return
        self._loop.remove_reader(fd)
        os.close(fd)
        del self._pipes[stream]
        if not self._pipes:
            self.drained.set()

    def _watch_exit(self) -> None:
        if _PIDFD:
            try:
                pidfd = os.pidfd_open(self.pid)
            except OSError:  # e.g. a kernel older than 5.3, or a seccomp filter
                pass
            else:
                self._loop.add_reader(pidfd, self._reap_pidfd, pidfd)
                return
        threading.Thread(target=self._wait_in_thread, daemon=True).start()

    def _reap_pidfd(self, pidfd: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its status is lost
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        self._exited(status)

    def _wait_in_thread(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = 255 << 8
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._exited, status)

    def _exited(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        if self._popen is not None:
            self._popen.returncode = self.returncode  # Popen must never try to reap it again
        self.exited.set()

    def close(self) -> None:
        """Stop reading: the pipes still open are closed (their writers get SIGPIPE)."""
        for fd in self._pipes.values():
            self._loop.remove_reader(fd)
            os.close(fd)
        self._pipes.clear()
        self.drained.set()


@functools.cache
def _devnull() -> int:
    return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
