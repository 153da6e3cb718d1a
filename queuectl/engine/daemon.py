"""`worker start --detach`: the engine in the background, in a session of its own.

The parent returns only once the engine answers on its control socket, so a script can enqueue
and query right after; if the engine dies during start-up, the parent reports the engine's own
error from its log instead of a pid that is already gone.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from queuectl.control.client import ControlClient
from queuectl.engine.process import WorkerOptions
from queuectl.errors import ControlError, EngineRunning, QueuectlError

START_TIMEOUT = 15.0


def _argv(options: WorkerOptions) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "queuectl",
        "--home",
        str(options.home),
        *(["--db", options.db] if options.db else []),
        "worker",
        "start",
        "--loop",
        options.loop,
    ]
    if options.concurrency is not None:
        argv += ["--concurrency", str(options.concurrency)]
    if options.until_empty:
        argv.append("--until-empty")
    if options.until_idle:
        argv.append("--until-idle")
    if options.quiet:
        argv.append("--quiet")
    if options.queues is not None:
        argv += ["--queues", ",".join(options.queues)]
    return argv


async def start_detached(options: WorkerOptions, log_path: Path, socket_path: Path) -> int:
    from queuectl.lock import holder
    from queuectl.paths import LOCK_NAME, ensure_home

    ensure_home(options.home)
    pid = holder(options.home / LOCK_NAME)
    if pid is not None:
        raise EngineRunning(
            f"an engine is already running (pid {pid}) on this queue; stop it "
            "first with `queuectl worker stop`"
        )
    fd = os.open(
        log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    with os.fdopen(fd, "ab") as log:
        offset = log.seek(0, os.SEEK_END)
        process = subprocess.Popen(
            _argv(options),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if (code := process.poll()) is not None:
            raise _startup_failure(log_path, offset, code)
        try:
            client = await ControlClient.connect(socket_path, timeout=1.0)
        except ControlError:
            await asyncio.sleep(0.05)
            continue
        await client.close()
        return process.pid
    process.kill()
    raise QueuectlError(f"the engine did not answer within {START_TIMEOUT:g}s; see {log_path}")


def _startup_failure(log_path: Path, offset: int, code: int) -> QueuectlError:
    with open(log_path, "rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").strip().splitlines()
    reason = lines[-1].removeprefix("queuectl: error: ") if lines else f"exit code {code}"
    error = QueuectlError(f"the engine exited during start-up: {reason}")
    error.exit_code = code if code in (1, 2) else 1
    return error
