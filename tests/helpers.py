"""Helpers shared by the tests: polling instead of fixed sleeps, running the real CLI, the
backend under test, and looking inside a queue through the Store."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from queuectl.errors import JobNotFound
from queuectl.models import Attempt, Job, JobSpec, Outcome
from queuectl.paths import DB_NAME
from queuectl.states import ErrorKind, next_state
from queuectl.store import Finish, Store, open_store

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


def _inherited() -> dict[str, str]:
    """This process's environment for a CLI run, without the terminal's size: pytest-xdist's
    workers set COLUMNS, which would lay tables out for a terminal the CLI does not have."""
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


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
        env={**_inherited(), **(env or {})},
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


# --- the backend under test, and looking inside a queue through the Store -------------------


@dataclass(frozen=True)
class Backend:
    """Where a test's queue is stored. `db` is the --db URL; None means the SQLite file in the
    home (the zero set-up default). Tests look inside the queue only through the Store or the
    CLI's --json, so each runs unchanged on every backend."""

    name: str
    home: Path
    db: str | None = None

    @property
    def target(self) -> Path | str:
        return self.db or self.home

    def cli_args(self) -> list[str]:
        return ["--db", self.db] if self.db else []

    async def open(self, **options: Any) -> Store:
        return await open_store(self.target, **options)

    def exists(self) -> bool:
        """Whether the queue's database has been created (a refused command must not)."""
        return self.db is not None or (self.home / DB_NAME).exists()


def spec(command: str = "true", **fields: Any) -> JobSpec:
    """A JobSpec with a fixed cwd, for tests that talk to the store directly."""
    return JobSpec(command=command, cwd="/", **fields)


def failure(code: int = 1, error: str = "exit code 1", **fields: Any) -> Outcome:
    return Outcome(ErrorKind.EXIT, exit_code=code, error=error, **fields)


async def finish(store: Store, job: Job, outcome: Outcome, retry_delay: float = 1.0) -> bool:
    """End a claimed job's attempt as the engine does: decide with next_state, then apply."""
    [applied] = await store.finish_many(
        [Finish(job, next_state(job, outcome, retry_delay), outcome)]
    )
    return applied


async def make_dead(
    store: Store, ids: Iterable[str], stdout: bytes = b"", stderr: bytes = b""
) -> None:
    """Enqueue jobs with no retries and fail their one attempt, as an engine would.

    Only these jobs may be runnable now (claim picks by priority, not by id).
    """
    ids = list(ids)
    await store.enqueue([spec("false", id=job_id, max_retries=0) for job_id in ids])
    jobs = await store.claim("test-engine", len(ids), 30.0)
    assert sorted(job.id for job in jobs) == sorted(ids)
    for job in jobs:
        assert await finish(store, job, failure(stdout=stdout, stderr=stderr))


async def store_snapshot(store: Store) -> dict[str, Any]:
    """Every job with its attempts, and the config: compare snapshots taken before and after
    an operation to show that it changed nothing."""
    jobs = sorted(await store.list_jobs(None, 1_000_000_000), key=lambda job: job.id)
    return {
        "jobs": jobs,
        "attempts": {job.id: await store.attempts(job.id) for job in jobs},
        "config": await store.config(),
    }


def in_store(backend: Backend, use: Callable[[Store], Awaitable[T]]) -> T:
    """Run `use(store)` on a store of the backend's queue, from synchronous test code."""

    async def run() -> T:
        store = await backend.open()
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def queue_snapshot(backend: Backend) -> dict[str, Any] | None:
    """store_snapshot of the queue; None if its database was never created."""
    return in_store(backend, store_snapshot) if backend.exists() else None


def all_jobs(backend: Backend) -> dict[str, Job]:
    async def read(store: Store) -> dict[str, Job]:
        return {job.id: job for job in await store.list_jobs(None, 1_000_000_000)}

    return in_store(backend, read)


def job_state(backend: Backend, job_id: str) -> str | None:
    """A job's state; None if there is no such job."""
    job = all_jobs(backend).get(job_id) if backend.exists() else None
    return None if job is None else job.state.value


def seed(
    backend: Backend,
    *,
    dead: Iterable[str] = (),
    pending: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
) -> None:
    """Fill a queue in-process (much faster than one CLI process per job)."""

    async def fill(store: Store) -> None:
        await make_dead(store, dead, stdout=b"out\n", stderr=b"err\n")
        if pending:
            await store.enqueue([spec(id=job_id) for job_id in pending])
        for name, value in (config or {}).items():
            await store.set_config(name, value)

    in_store(backend, fill)


# --- backends, a clock, and single jobs, for the end-to-end tests ---------------------------

#: the backends that the `backend` fixture (conftest.py) runs each end-to-end test on
BACKENDS = ("sqlite", "postgres")


def make_backend(name: str, home: Path) -> Backend:
    """The queue of backend `name` for a test whose home is `home`: for PostgreSQL, a new
    database of its own on the local server (tests/pg.py; the test is skipped if no server
    answers). Hand it to release_backend when done."""
    if name == "sqlite":
        return Backend(name, home)
    if name == "postgres":
        import pg

        return Backend(name, home, pg.new_database())
    raise ValueError(f"unknown backend {name!r}")


def release_backend(backend: Backend) -> None:
    """Give back what make_backend made outside the home (a PostgreSQL database, emptied for
    the next test); a queue that is never released is dropped when the test process exits."""
    if backend.name == "postgres" and backend.db is not None:
        import pg

        pg.release_database(backend.db)


@contextlib.asynccontextmanager
async def store_on(name: str, clock: ManualClock) -> AsyncIterator[Store]:
    """An open store of backend `name` in a home of its own, on `clock`, gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="qs", dir="/tmp") as home:
        backend = make_backend(name, Path(home))
        try:
            store = await backend.open(clock=clock)
            try:
                yield store
            finally:
                await store.close()
        finally:
            release_backend(backend)


class ManualClock:
    """A store clock that moves only when told: exact times for seeded attempts."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def in_store_with(backend: Backend, use: Callable[[Store], Awaitable[T]], **options: Any) -> T:
    """`in_store` on a store opened with `options` (e.g. clock=ManualClock())."""

    async def run() -> T:
        store = await backend.open(**options)
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def get_job(backend: Backend, job_id: str) -> Job:
    """The job, through the Store; fails the test if there is no such job."""

    async def read(store: Store) -> Job | None:
        try:
            return await store.get(job_id)
        except JobNotFound:
            return None

    found = in_store(backend, read) if backend.exists() else None
    assert found is not None, f"no job {job_id!r} in the {backend.name} queue of {backend.home}"
    return found


def job_attempts(backend: Backend, job_id: str) -> list[Attempt]:
    """The job's attempts in order, through the Store; [] if there is no such job."""

    async def read(store: Store) -> list[Attempt]:
        try:
            return await store.attempts(job_id)
        except JobNotFound:
            return []

    return in_store(backend, read) if backend.exists() else []


def job_counts(backend: Backend) -> dict[str, int]:
    """Jobs per state (every state, zeros included), through the Store."""

    async def read(store: Store) -> dict[str, int]:
        return {state.value: count for state, count in (await store.counts()).items()}

    return in_store(backend, read)
