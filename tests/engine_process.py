"""A real engine (`queuectl worker start`) in a subprocess, for end-to-end tests.

The engine's stderr (its log) goes to a file in the queue home, so a test can read it while the
engine runs and after it has exited. `close()` never leaves an engine or a job behind: it stops
the engine (SIGTERM twice, then SIGKILL), then kills the process groups of jobs that a killed
engine left running. Those are found by a token that each test engine gets in its environment
and passes on to its jobs, so nothing but this engine's jobs is ever killed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers import queuectl_argv

from queuectl.settings import DB_NAME

_numbers = itertools.count(1)
TOKEN_VAR = "QUEUECTL_TEST_ENGINE"


# --- processes, as /proc shows them -----------------------------------------------------------


def stat_fields(pid: int | str) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name: state, ppid, pgrp, ...

    OSError if there is no such process."""
    text = Path(f"/proc/{pid}/stat").read_bytes()
    return text[text.rindex(b")") + 2 :].split()


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict of strings (VmHWM, VmRSS, SigIgn, ...); OSError if there is
    no such process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphaned zombie waits for a reaper; it is
    dead)."""
    try:
        return stat_fields(pid)[0] != b"Z"
    except OSError:
        return False


def group_members(pgid: int, *, zombies: bool = False) -> list[int]:
    """The processes of process group `pgid` that still run (with `zombies`, those that have
    exited but are not reaped yet too)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state, _ppid, pgrp = stat_fields(entry)[:3]
        except OSError:
            continue
        if int(pgrp) == pgid and (zombies or state != b"Z"):
            found.append(int(entry))
    return found


def environ_pids(name: str, value: str) -> list[int]:
    """The processes whose environment holds NAME=VALUE."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry))
    return found


# --- the engine -------------------------------------------------------------------------------


class EngineProcess:
    """`python -m queuectl --home HOME worker start ARGS...`, with its log in a file."""

    def __init__(
        self, home: Path, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.home = Path(home)
        self.args = args
        number = next(_numbers)
        self.token = f"{os.getpid()}-{number}-{secrets.token_hex(4)}"
        self.log_path = self.home / f"test-engine-{number}.stderr"
        self.out_path = self.home / f"test-engine-{number}.stdout"
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                queuectl_argv(self.home, "worker", "start", *args),
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
        return proc_status(self.pid)

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
            if pid == self.pid:
                continue
            try:
                groups.add(int(stat_fields(pid)[2]))
            except OSError:
                continue
        groups.discard(os.getpgrp())
        return groups


#: the `engines` fixture: engines(*worker_start_args, env=None, cwd=None) -> EngineProcess
StartEngine = Callable[..., EngineProcess]


# --- the job table ---------------------------------------------------------------------------


def jobs(home: Path) -> dict[str, dict[str, Any]]:
    """Every job, read straight from HOME/queue.db with the stdlib sqlite3 module."""
    return {row["id"]: row for row in _select(home, "SELECT * FROM jobs")}


def job(home: Path, job_id: str) -> dict[str, Any]:
    rows = _select(home, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    assert rows, f"no job {job_id!r} in {home}"
    return rows[0]


def attempts(home: Path, job_id: str) -> list[dict[str, Any]]:
    return _select(home, "SELECT * FROM attempts WHERE job_id = ? ORDER BY run", (job_id,))


def states(home: Path) -> dict[str, str]:
    return {row["id"]: row["state"] for row in _select(home, "SELECT id, state FROM jobs")}


def _select(home: Path, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    path = Path(home) / DB_NAME
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


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
