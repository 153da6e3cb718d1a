"""scripts/bench_pg.py's plumbing: the PostgreSQL server and its throw-away databases, the
queues' contents, and the child processes (engines, drainers), all cleaned up on any exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

import bench
from bench import PYTHON, BenchError
from queuectl.models import JobSpec
from queuectl.store import open_store

DEFAULT_SERVER = os.environ.get(
    "QUEUECTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CONNECT_TIMEOUT = 5.0
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a child left running
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# --- the server and its databases -------------------------------------------------------------


class Server:
    """The server at an admin URL; each database() is a fresh one, dropped after use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"queuectl_bench_{os.getpid()}_"
        self._made = 0

    @property
    def location(self) -> str:
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        return f"{parts.username or ''}{'@' if parts.username else ''}{netloc}"

    def url_of(self, database: str) -> str:
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{database}"))

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)

    async def check(self) -> None:
        try:
            conn = await self._connect()
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise BenchError(
                f"cannot connect to PostgreSQL at {self.location}: {exc}; start it (.ci/run "
                "does) or name another server with --pg / $QUEUECTL_BENCH_PG"
            ) from None
        await conn.close()

    async def version(self) -> str:
        conn = await self._connect()
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    async def _create(self, name: str) -> None:
        conn = await self._connect()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def _drop(self, names: Sequence[str]) -> None:
        conn = await self._connect()
        try:
            for name in names:  # FORCE: sessions a killed child left behind
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh database's URL; the database is dropped afterwards, whatever happened."""
        self._made += 1
        name = f"{self.prefix}{self._made}"
        try:
            run(self._create(name))
            yield self.url_of(name)
        finally:
            run(self._drop([name]))

    async def sweep(self) -> None:
        """Drop this process's databases that an interruption left behind."""
        conn = await self._connect()
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", self.prefix
            )
        finally:
            await conn.close()
        if rows:
            await self._drop([str(row["datname"]) for row in rows])


# --- what the queues hold ---------------------------------------------------------------------


async def enqueue_commands(url: str, commands: Sequence[str], cwd: str) -> None:
    """One transaction, as `enqueue --file` does (untimed)."""
    store = await open_store(url)
    try:
        await store.enqueue([JobSpec(command=command, cwd=cwd) for command in commands])
    finally:
        await store.close()


async def enqueue_one_by_one(
    url: str, command: str, cwd: str, count: int, gap: float = 0.0
) -> dict[str, tuple[float, float]]:
    """Enqueue `count` jobs one transaction each, `gap` seconds apart; for each job id, the
    time.time() just before the enqueue and just after its commit returned."""
    store = await open_store(url)
    sent: dict[str, tuple[float, float]] = {}
    try:
        for _ in range(count):
            before = time.time()
            [job_id] = await store.enqueue([JobSpec(command=command, cwd=cwd)])
            sent[job_id] = (before, time.time())
            await asyncio.sleep(gap)
    finally:
        await store.close()
    return sent


@dataclass(frozen=True)
class BurnResult:
    completed: int
    attempts: int
    span: float  # first attempt's start → last attempt's end (the server's clock)


async def burn_result(url: str) -> BurnResult:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM queuectl_jobs WHERE state = 'completed') AS completed,"
            " count(*) AS attempts, max(finished_at) - min(started_at) AS span"
            " FROM queuectl_attempts"
        )
    finally:
        await conn.close()
    assert row is not None
    return BurnResult(int(row["completed"]), int(row["attempts"]), float(row["span"] or 0.0))


async def job_times(url: str, job_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Each job's created_at and its first attempt's start (the claim), both the server's."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT j.id, j.created_at, a.started_at FROM queuectl_jobs j"
            " JOIN queuectl_attempts a ON a.job_id = j.id AND a.run = 1"
            " WHERE j.id = ANY($1::text[])",
            list(job_ids),
        )
    finally:
        await conn.close()
    return {str(r["id"]): (float(r["created_at"]), float(r["started_at"])) for r in rows}


async def pgqueuer_fill(url: str, jobs: int) -> None:
    """pgqueuer's schema (its own install) and `jobs` no-op jobs, in one batch enqueue."""
    from bench_pg_store import PGQUEUER_ENTRYPOINT
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        await queries.enqueue([PGQUEUER_ENTRYPOINT] * jobs, [None] * jobs, [0] * jobs)
    finally:
        await conn.close()


async def undone(url: str, system: str) -> int:
    """Jobs a drain left: not completed (queuectl), still in the queue table (pgqueuer)."""
    sql = {
        "queuectl": "SELECT count(*) FROM queuectl_jobs WHERE state != 'completed'",
        "pgqueuer": "SELECT count(*) FROM pgqueuer",
    }[system]
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


# --- child processes --------------------------------------------------------------------------

#: every child started and not yet reaped: each leads its own session (Ctrl-C does not reach
#: it), so stop_children() ends them, and their process groups, on every way out
CHILDREN: list[subprocess.Popen[Any]] = []


def spawn(argv: Sequence[str], *, cwd: Path, stderr: IO[Any], pipes: bool = False) -> Any:
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipes else subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    CHILDREN.append(process)
    return process


def stop_children() -> None:
    """SIGTERM every child still running (an engine finishes its running jobs), SIGKILL
    those left after STOP_GRACE."""
    live = [p for p in CHILDREN if p.poll() is None]
    for process in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in live:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    CHILDREN.clear()


def _failed(what: str, process: Any, log: IO[Any]) -> BenchError:
    log.flush()
    log.seek(0)
    tail = log.read().strip()[-500:]
    return BenchError(f"{what} exited {process.returncode}: {tail}")


def _logs(stack: contextlib.ExitStack, count: int) -> list[IO[Any]]:
    return [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count)]


def run_all(argvs: Sequence[Sequence[str]], *, cwd: Path) -> float:
    """Start every command at once; seconds until the last one exits."""
    with contextlib.ExitStack() as stack:
        stack.callback(stop_children)
        logs = _logs(stack, len(argvs))
        start = time.perf_counter()
        processes = [spawn(a, cwd=cwd, stderr=log) for a, log in zip(argvs, logs, strict=True)]
        for process in processes:
            process.wait(bench.PROCESS_TIMEOUT)
        wall = time.perf_counter() - start
        for argv, process, log in zip(argvs, processes, logs, strict=True):
            if process.returncode != 0:
                raise _failed(f"`{bench.describe(argv)}`", process, log)
        return wall


def run_drainers(argv: Sequence[str], count: int, profile: Path | None = None) -> list[Any]:
    """Start `count` drainers (scripts/bench_pg_store.py), wait for each to be ready, let
    them go at once, and return what each reports. With `profile`, the first one runs under
    py-spy (idle time included: the waits for the server), its raw stacks written there."""
    argvs = [list(argv) for _ in range(count)]
    if profile is not None:
        spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
        if spy is None:
            raise BenchError("py-spy is not installed: `.venv/bin/pip install -e '.[bench]'`")
        profile.parent.mkdir(parents=True, exist_ok=True)
        argvs[0] = [spy, "record", "--idle", "--rate", "250", "--format", "raw", "-o",
                    str(profile), "--", *argv]  # fmt: skip
    with contextlib.ExitStack() as stack:
        stack.callback(stop_children)
        logs = _logs(stack, count)
        processes = [
            spawn(a, cwd=Path("/tmp"), stderr=log, pipes=True)
            for a, log in zip(argvs, logs, strict=True)
        ]
        # a drainer that hangs is killed: its pipe closes, and the read below ends
        watchdog = threading.Timer(bench.PROCESS_TIMEOUT, _kill, [processes])
        watchdog.start()
        stack.callback(watchdog.cancel)
        for process, log in zip(processes, logs, strict=True):
            if _line(process, "ready") is None:
                _kill([process])
                process.wait()
                raise _failed("a drainer", process, log)
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process, log in zip(processes, logs, strict=True):
            line = _line(process, "{")
            process.wait(bench.PROCESS_TIMEOUT)
            if process.returncode != 0 or line is None:
                raise _failed("a drainer", process, log)
            results.append(json.loads(line))
        return results


def _kill(processes: Sequence[Any]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _line(process: Any, start: str) -> str | None:
    """The next line of the child's stdout that starts so (py-spy prints lines of its own
    there); None if it ends first."""
    for line in process.stdout:
        if line.startswith(start):
            return str(line).strip()
    return None


@contextlib.contextmanager
def background(argv: Sequence[str], *, cwd: Path) -> Iterator[None]:
    """A long-running child (an idle engine) for the length of the block; stopped after it.
    One that exited early fails the block with its stderr."""
    with tempfile.TemporaryFile("w+") as log:
        process = spawn(argv, cwd=cwd, stderr=log)
        try:
            yield
        finally:
            early = process.poll()
            stop_children()
            if early is not None:
                raise _failed(f"`{bench.describe(argv)}`", process, log)
