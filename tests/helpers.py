"""Helpers shared by the tests: polling instead of fixed sleeps, running the real CLI, and
looking inside a queue's SQLite file with the stdlib sqlite3 module."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from queuectl.models import JobSpec, Outcome, OutcomeKind
from queuectl.settings import DB_NAME
from queuectl.store import Store, open_store

T = TypeVar("T")

#: the `cli` fixture: cli(*args, input=None, env=None, check=None) -> CompletedProcess
Cli = Callable[..., subprocess.CompletedProcess[str]]

CLI_TIMEOUT = 60.0


# --- polling ----------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """Call `predicate` until it returns something truthy, and return that; fail after
    `timeout` seconds. The predicate is always called once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"not true within {timeout}s: {predicate!r}")
        time.sleep(interval)


async def async_wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """`wait_for` for async tests: the predicate may be a plain or a coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(message or f"not true within {timeout}s: {predicate!r}")
        await asyncio.sleep(interval)


# --- the CLI ----------------------------------------------------------------------------------


def queuectl_argv(home: Path | None, *args: str) -> list[str]:
    """`python -m queuectl [--home HOME] ARGS...` as an argv."""
    home_args = [] if home is None else ["--home", str(home)]
    return [sys.executable, "-m", "queuectl", *home_args, *args]


def decoy_env(decoy_home: Path) -> dict[str, str]:
    """$QUEUECTL_HOME and $XDG_DATA_HOME pointing at a decoy that --home must leave unused."""
    return {"QUEUECTL_HOME": str(decoy_home), "XDG_DATA_HOME": str(decoy_home / "xdg")}


def run_cli(
    home: Path | None,
    *args: str,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool | int | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m queuectl [--home HOME] ARGS...` in a subprocess.

    `env` is laid over a copy of os.environ. `check`: None or False accepts any exit code,
    True requires 0, an int requires that code.
    """
    result = subprocess.run(
        queuectl_argv(home, *args),
        input=input,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=CLI_TIMEOUT,
    )
    if check is not None and check is not False:
        expected = 0 if check is True else int(check)
        assert result.returncode == expected, (
            f"queuectl {' '.join(args)}: exit {result.returncode}, expected {expected}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def run_cli_parallel(
    calls: Sequence[tuple[Path | None, Sequence[str], Mapping[str, Any]]],
) -> list[subprocess.CompletedProcess[str]]:
    """Run many independent CLI calls at once: (home, args, run_cli keywords) each.

    Process start-up dominates a CLI call, so independent calls overlap well across cores.
    """
    workers = max(2, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_cli, home, *args, **kwargs) for home, args, kwargs in calls]
        return [future.result() for future in futures]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The CLI's contract for an expected failure; returns the message."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("queuectl: error: "), result.stderr
    return result.stderr.removeprefix("queuectl: error: ").rstrip("\n")


def configure(cli: Cli, **values: str) -> None:
    """`config set` each value; `kill_grace="1"` sets kill-grace."""
    for key, value in values.items():
        cli("config", "set", key.replace("_", "-"), value, check=True)


def write_jobs_file(path: Path, specs: Iterable[Mapping[str, Any]]) -> Path:
    """A file of JSON lines for `enqueue --file`."""
    path.write_text("".join(json.dumps(spec) + "\n" for spec in specs))
    return path


def detached_pid(result: subprocess.CompletedProcess[str]) -> int:
    """The engine's pid from the output of a successful `worker start --detach`."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    match = re.search(r"\(pid (\d+)\)", result.stdout)
    assert match, result.stdout
    return int(match.group(1))


# --- another user -----------------------------------------------------------------------------

#: the start of a client script run as user nobody: it connects to the Unix socket argv[1], and
#: prints {"connect_error": ...} and exits if it cannot
NOBODY_CONNECT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect_error": type(exc).__name__}))
    raise SystemExit(0)
"""


def as_nobody(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `argv` as user nobody (needs root and setpriv)."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )


def nobody_python() -> str:
    """A Python interpreter that user nobody can run; skips the test where there is none."""
    import pytest  # here: scripts/soak.py imports this module (via chaos.py) outside pytest

    if os.geteuid() != 0:
        pytest.skip("needs root to run a client under another uid")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    for python in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(python, os.X_OK) and as_nobody([python, "-c", "pass"]).returncode == 0:
            return python
    pytest.skip("no Python interpreter that user nobody can run")


# --- looking inside a queue -------------------------------------------------------------------


def db_path(home: Path) -> Path:
    return home / DB_NAME


def read_only_db(home: Path) -> contextlib.closing[sqlite3.Connection]:
    """`with read_only_db(home) as conn:` a read-only connection to the queue file."""
    return contextlib.closing(sqlite3.connect(f"file:{db_path(home)}?mode=ro", uri=True, timeout=5))


def job_state(home: Path, job_id: str) -> str | None:
    """A job's state straight from the queue file; None if there is no such job."""
    with read_only_db(home) as conn:
        row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row[0] if row else None


def db_snapshot(home: Path) -> dict[str, Any] | None:
    """Every row of every table (sorted) and the schema version; None if there is no database.

    Compare snapshots taken before and after a command to show it changed nothing.
    """
    path = db_path(home)
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        snapshot: dict[str, Any] = {
            "user_version": conn.execute("PRAGMA user_version").fetchone()[0]
        }
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            snapshot[table] = sorted(rows, key=repr)
        return snapshot
    finally:
        conn.close()


def spec(command: str = "true", **fields: Any) -> JobSpec:
    """A JobSpec with a fixed cwd, for tests that talk to the store directly."""
    return JobSpec(command=command, cwd="/", **fields)


async def make_dead(
    store: Store, ids: Iterable[str], now: float, stdout: bytes = b"", stderr: bytes = b""
) -> None:
    """Enqueue jobs with no retries and fail their one attempt, as an engine would.

    Only these jobs may be runnable at `now` (claim picks by priority, not by id).
    """
    ids = list(ids)
    await store.enqueue([spec("false", id=job_id, max_retries=0) for job_id in ids], now)
    jobs = await store.claim("test-engine", len(ids), now, 30.0)
    assert sorted(job.id for job in jobs) == sorted(ids)
    for job in jobs:
        outcome = Outcome(
            OutcomeKind.FAILURE, exit_code=1, error="exit code 1", stdout=stdout, stderr=stderr
        )
        await store.finish(job, outcome, now + 1, now + 2)


def seed(
    home: Path,
    *,
    dead: Iterable[str] = (),
    pending: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> None:
    """Fill a queue in-process (much faster than one CLI process per job)."""

    async def fill() -> None:
        at = time.time() if now is None else now
        store = await open_store(home)
        try:
            await make_dead(store, dead, at - 10, stdout=b"out\n", stderr=b"err\n")
            if pending:
                await store.enqueue([spec(id=job_id) for job_id in pending], at)
            for name, value in (config or {}).items():
                await store.set_config(name, value)
        finally:
            await store.close()

    asyncio.run(fill())
