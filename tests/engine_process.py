"""Real engines (`queuectl worker start`) in subprocesses, for end-to-end tests.

The engine's stderr (its log) goes to a file in the queue home, so a test can read it while the
engine runs and after it has exited. `close()` never leaves an engine or a job behind: it stops
the engine (SIGTERM twice, then SIGKILL), then kills the process groups of jobs that a killed
engine left running. Those are found by a token that each test engine gets in its environment
and passes on to its jobs, so nothing but this engine's jobs is ever killed.

`EngineGroup` is the one way tests start engines: the `engines` fixture (conftest.py) and the
chaos scenarios (tests/reliability/chaos/) both use it. The queue's jobs are looked at through
the Store (helpers.all_jobs, get_job, job_attempts) or the CLI's --json (`show`, `list_jobs`),
never by opening the database.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers import Backend, queuectl_argv

from queuectl import procfs

_numbers = itertools.count(1)
TOKEN_VAR = "QUEUECTL_TEST_ENGINE"


# --- processes, as /proc shows them -----------------------------------------------------------


def environ_pids(name: str, value: str) -> list[int]:
    """The processes whose environment holds NAME=VALUE."""
    wanted_name, wanted_value = name.encode(), value.encode()
    return [pid for pid in procfs.pids() if procfs.environ(pid).get(wanted_name) == wanted_value]


# --- the engine -------------------------------------------------------------------------------


class EngineProcess:
    """`python -m queuectl --home HOME [--db URL] worker start ARGS...`, with its log in a
    file in the home."""

    def __init__(
        self,
        backend: Backend,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.backend = backend
        self.home = Path(backend.home)
        self.args = args
        number = next(_numbers)
        self.token = f"{os.getpid()}-{number}-{secrets.token_hex(4)}"
        self.log_path = self.home / f"test-engine-{number}.stderr"
        self.out_path = self.home / f"test-engine-{number}.stdout"
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                queuectl_argv(self.home, *backend.cli_args(), "worker", "start", *args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env={**os.environ, **(env or {}), TOKEN_VAR: self.token},
            )
        self.pid = self.proc.pid

    # --- looking ------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:  # the home was removed
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def started(self) -> bool:
        """The engine holds the lock and serves (it logs 'engine ... started' after both)."""
        if not self.alive():
            raise AssertionError(f"the engine exited with {self.proc.returncode}:\n{self.log()}")
        return " started: " in self.log()

    def status(self) -> dict[str, Any]:
        """/proc/PID/status as a dict of strings (VmHWM, VmRSS, ...)."""
        return procfs.status(self.pid)

    def peak_kib(self) -> int:
        """The engine's peak resident memory so far (VmHWM), in KiB."""
        return int(self.status()["VmHWM"].split()[0])

    # --- ending -------------------------------------------------------------------------------

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the engine to exit by itself (e.g. with --until-empty)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the engine did not exit within {timeout}s:\n{self.log()}"
            ) from None

    def send(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` once and return the exit code (an assertion error after `timeout`)."""
        self.send(sig)
        return self.wait(timeout)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """Leave nothing running: the engine, and the jobs it may have left behind."""
        if self.alive():
            self.send(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.alive():
            self.send(signal.SIGTERM)  # the second signal kills the running jobs
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        if self.alive():
            self.kill9()
        for pgid in self.job_groups():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

    def job_groups(self) -> set[int]:
        """Process groups of the jobs this engine started that still have a process."""
        groups = set()
        for pid in environ_pids(TOKEN_VAR, self.token):
            group = procfs.process_group(pid)
            if pid != self.pid and group is not None:
                groups.add(group)
        groups.discard(os.getpgrp())
        return groups


#: the `engines` fixture: engines(*worker_start_args, env=None, cwd=None) -> EngineProcess
StartEngine = Callable[..., EngineProcess]


class EngineGroup:
    """Engines started on one queue; `close()` stops every one of them and kills whatever jobs
    a killed one left running. `env` is laid under each engine's own `env`."""

    def __init__(self, backend: Backend, env: Mapping[str, str] | None = None) -> None:
        self.backend = backend
        self.env = dict(env or {})
        self.started: list[EngineProcess] = []

    def start(
        self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> EngineProcess:
        """`queuectl worker start ARGS...` on the group's queue."""
        engine = EngineProcess(self.backend, *args, env={**self.env, **(env or {})}, cwd=cwd)
        self.started.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.started:
            engine.close()

    def logs(self, tail: int | None = None) -> str:
        """Each engine's command line, exit code and log (its last `tail` lines)."""
        return "\n".join(
            f"--- engine pid {engine.pid} {' '.join(engine.args)}: exit "
            f"{engine.proc.returncode}\n{_tail(engine.log(), tail)}"
            for engine in self.started
        )


def _tail(text: str, lines: int | None) -> str:
    return text if lines is None else "\n".join(text.splitlines()[-lines:])


# --- the CLI's view of the queue --------------------------------------------------------------


def show(cli: Any, job_id: str) -> dict[str, Any]:
    """`queuectl show ID --json`: the job's fields and its `history` of attempts."""
    result = cli("show", job_id, "--json", check=True)
    return json.loads(result.stdout)


def list_jobs(cli: Any) -> list[dict[str, Any]]:
    result = cli("list", "--json", "--limit", "100000", check=True)
    return json.loads(result.stdout)


def timestamp(iso: str) -> float:
    """A POSIX timestamp from the ISO 8601 UTC times of --json output."""
    return datetime.fromisoformat(iso).timestamp()
