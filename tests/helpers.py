"""Helpers shared by the tests: polling instead of fixed sleeps, running the real CLI, and
looking inside a queue's SQLite file with the stdlib sqlite3 module."""

from __future__ import annotations

import asyncio
import inspect
import os
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
    home_args = [] if home is None else ["--home", str(home)]
    result = subprocess.run(
        [sys.executable, "-m", "queuectl", *home_args, *args],
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


# --- looking inside a queue -------------------------------------------------------------------


def db_path(home: Path) -> Path:
    return home / DB_NAME


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
