"""The SQLite store: the embedded, zero set-up default.

One file per queue in WAL mode. Writes run in BEGIN IMMEDIATE transactions (a deferred
transaction that later writes fails at once with SQLITE_BUSY instead of waiting); every
connection waits up to BUSY_TIMEOUT_MS for a lock. All SQL is in sqlite.sql.

One engine per database file: an engine attaches by taking a lock next to the file that the
kernel drops when its process dies, so while attached, every job leased by another owner is
known to be an orphan, with no need to wait for its lease to run out.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import aiosqlite

from queuectl.config import CONFIG_KEYS, Config
from queuectl.errors import BadInput, DuplicateJobId, JobNotFound, StorageError
from queuectl.lock import EngineLock
from queuectl.models import Attempt, Job, JobSpec
from queuectl.paths import ensure_home
from queuectl.specs import new_job_id
from queuectl.states import JobState, KillReason
from queuectl.store import Clock, Finish, PidUpdate, Progress
from queuectl.store.sqlite_db import (
    SQL,
    attempt_of,
    connect,
    in_transaction,
    job_of,
    pragma,
    storage_error,
)

_CHUNK = 500  # ids per IN (...) lookup
_INSERT_BATCH = 5000  # rows per executemany, so a bulk enqueue can report progress
CHANGE_POLL = 0.05  # seconds between looks at data_version while waiting for a change

P = ParamSpec("P")
R = TypeVar("R")


def _translated(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn sqlite3 errors into StorageError naming the database file and what to do."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, SqliteStore)
            raise storage_error(store.path, exc) from exc

    return wrapper


class SqliteStore:
    def __init__(self, path: Path, conn: aiosqlite.Connection, clock: Clock) -> None:
        self.path = path
        self.now = clock
        self._conn = conn
        self._write_lock = asyncio.Lock()
        self._identity = self._file_identity()
        self._engine_lock: EngineLock | None = None
        self._version = 0  # data_version when the queue was last read for due jobs

    @classmethod
    async def open(
        cls, path: Path, *, durable: bool = True, clock: Clock | None = None
    ) -> SqliteStore:
        ensure_home(path.parent)
        store = cls(path, await connect(path, durable), clock or time.time)
        store._version = await pragma(store._conn, "data_version")
        return store

    @property
    def location(self) -> str:
        return str(self.path)

    def _file_identity(self) -> tuple[int, int]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise StorageError(
                f"queue database {str(self.path)!r} was deleted while in use; "
                "its queue is gone (restore it from a backup)"
            ) from None
        return info.st_dev, info.st_ino

    def _check_file(self) -> None:
        """SQLite in WAL mode goes on writing to a deleted file; a long-lived engine must
        notice instead of running jobs whose results vanish (a new queue may stand there)."""
        if self._file_identity() != self._identity:
            raise StorageError(
                f"queue database {str(self.path)!r} was replaced by another "
                "file while in use; restart the engine"
            )

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time: the engine's coroutines share this connection."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def _transact(self, body: Callable[[sqlite3.Connection], R]) -> R:
        """Run `body` as one write transaction on aiosqlite's thread.

        One hop to that thread for the whole transaction instead of one per statement: the
        hops, not SQLite, are what limit the engine's throughput. aiosqlite has no public call
        for this; Connection._execute is the method each of its public calls goes through
        (the version range is pinned in pyproject.toml).
        """
        execute = cast(Callable[..., Awaitable[R]], self._conn._execute)
        async with self._write_lock:
            return await execute(in_transaction, self._conn._conn, body)

    async def _rows(
        self, name: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(SQL[name], params))

    async def close(self) -> None:
        await self._conn.close()
        if self._engine_lock is not None:
            self._engine_lock.release()

    # --- jobs as the CLI sees them -----------------------------------------------------------

    @_translated
    async def enqueue(
        self, specs: Sequence[JobSpec], progress: Progress | None = None
    ) -> list[str]:
        seen: set[str] = set()
        for spec in specs:
            if spec.id is not None:
                if spec.id in seen:
                    raise DuplicateJobId(spec.id)
                seen.add(spec.id)
        try:
            async with self._write() as conn:
                config = await self._config()
                now = self.now()
                rows = [self._job_row(spec, config, now) for spec in specs]
                for start in range(0, len(rows), _INSERT_BATCH):
                    batch = rows[start : start + _INSERT_BATCH]
                    await conn.executemany(SQL["insert_job"], batch)
                    if progress:
                        progress(len(batch))
        except sqlite3.IntegrityError:
            taken = await self._existing_ids(sorted(seen))
            raise DuplicateJobId(taken[0] if taken else "?") from None
        return [row[0] for row in rows]

    @staticmethod
    def _job_row(spec: JobSpec, config: Config, now: float) -> tuple[Any, ...]:
        timeout = spec.timeout if spec.timeout is not None else config.job_timeout
        max_retries = spec.max_retries if spec.max_retries is not None else config.max_retries
        run_at = spec.run_at if spec.run_at is not None else now
        return (
            spec.id or new_job_id(),
            spec.command,
            spec.priority,
            max_retries,
            timeout,
            spec.cwd,
            json.dumps(spec.env),
            now,
            now,
            run_at,
            run_at,
        )

    async def _existing_ids(self, ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = json.dumps(list(ids[start : start + _CHUNK]))
            found += [row[0] for row in await self._rows("existing_ids", (chunk,))]
        return found

    @_translated
    async def get(self, job_id: str) -> Job:
        rows = await self._rows("get_job", (job_id,))
        if not rows:
            raise JobNotFound(job_id)
        return job_of(rows[0])

    @_translated
    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        if state is None:
            rows = await self._rows("list_jobs", (limit,))
        else:
            rows = await self._rows("list_jobs_in_state", (state.value, limit))
        return [job_of(row) for row in rows]

    @_translated
    async def counts(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in await self._rows("count_by_state"):
            counts[JobState(state)] = count
        return counts

    @_translated
    async def attempts(self, job_id: str) -> list[Attempt]:
        await self.get(job_id)
        return [attempt_of(row) for row in await self._rows("list_attempts", (job_id,))]

    @_translated
    async def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        now = self.now()
        if job_ids is None:
            async with self._write():
                return [row[0] for row in await self._rows("retry_all_dead", {"now": now})]
        job_ids = list(dict.fromkeys(job_ids))  # naming a job twice retries it once
        async with self._write() as conn:
            for job_id in job_ids:
                cur = await conn.execute(SQL["retry_dead"], {"id": job_id, "now": now})
                if cur.rowcount == 0:
                    job = await self.get(job_id)  # raises JobNotFound
                    raise BadInput(
                        f"job {job_id!r} is {job.state.value}, not dead; only dead jobs can be "
                        "retried (see `queuectl dlq list`)"
                    )
        return job_ids

    @_translated
    async def cancel(self, job_id: str) -> Job:
        params = {"id": job_id, "now": self.now(), "error": KillReason.CANCEL.message}
        async with self._write() as conn:
            await conn.execute(SQL["cancel_waiting"], params)
            return await self.get(job_id)

    # --- configuration -----------------------------------------------------------------------

    async def _config(self) -> Config:
        return Config.from_stored(
            {name: json.loads(value) for name, value in await self._rows("get_config")}
        )

    @_translated
    async def config(self) -> Config:
        return await self._config()

    @_translated
    async def set_config(self, name: str, value: Any) -> None:
        if name not in CONFIG_KEYS:
            raise BadInput(f"unknown config key {name!r}")
        async with self._write() as conn:
            await conn.execute(SQL["set_config"], (name, json.dumps(value)))

    # --- the engine's side -------------------------------------------------------------------

    async def attach_engine(self, engine_id: str) -> None:
        lock = EngineLock(self.path.with_name(self.path.name + ".lock"))
        lock.acquire()
        self._engine_lock = lock

    async def detach_engine(self, engine_id: str) -> None:
        if self._engine_lock is not None:
            self._engine_lock.release()
            self._engine_lock = None

    @_translated
    async def claim(self, owner: str, limit: int, lease: float) -> list[Job]:
        self._check_file()
        now = self.now()
        # data_version first: a commit by another process after this read wakes the engine
        self._version = await pragma(self._conn, "data_version")
        due = (await self._rows("count_due", {"now": now, "limit": limit}))[0][0]
        if not due:
            return []  # the common idle case costs no write transaction
        params = {"owner": owner, "until": now + lease, "now": now, "limit": due}

        def claim_due(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            rows = conn.execute(SQL["claim"], params).fetchall()
            conn.executemany(
                SQL["insert_attempt"], [(row["id"], row["runs"], owner, now) for row in rows]
            )
            return rows

        jobs = [job_of(row) for row in await self._transact(claim_due)]
        jobs.sort(key=lambda job: (-job.priority, job.next_run_at, job.id))
        return jobs

    @_translated
    async def renew_leases(self, owner: str, lease: float) -> None:
        self._check_file()
        async with self._write() as conn:
            await conn.execute(SQL["renew_leases"], {"owner": owner, "until": self.now() + lease})

    @_translated
    async def finish_many(
        self, finishes: Sequence[Finish], pids: Sequence[PidUpdate] = ()
    ) -> list[bool]:
        now = self.now()
        pid_params = [
            {"pid": p.pid, "id": p.job.id, "owner": p.job.lease_owner, "run": p.job.runs}
            for p in pids
        ]
        params = [finish_params(finish, now) for finish in finishes]

        def apply_all(conn: sqlite3.Connection) -> list[bool]:
            if pid_params:
                conn.executemany(SQL["set_pid"], pid_params)
            if not params:
                return []
            if conn.executemany(SQL["finish_job"], params).rowcount != len(params):
                raise _Partial  # some job moved on: roll back, then apply one by one
            conn.executemany(SQL["finish_attempt"], params)
            return [True] * len(params)

        def apply_each(conn: sqlite3.Connection) -> list[bool]:
            conn.executemany(SQL["set_pid"], pid_params)
            applied = [conn.execute(SQL["finish_job"], p).rowcount == 1 for p in params]
            conn.executemany(
                SQL["finish_attempt"], [p for p, ok in zip(params, applied, strict=True) if ok]
            )
            return applied

        try:
            return await self._transact(apply_all)
        except _Partial:
            return await self._transact(apply_each)

    @_translated
    async def orphans(self, owner: str) -> list[Job]:
        name = "orphans_all" if self._engine_lock is not None else "orphans_expired"
        return [job_of(row) for row in await self._rows(name, {"owner": owner, "now": self.now()})]

    @_translated
    async def due_in(self, retries_only: bool = False) -> float | None:
        rows = await self._rows("next_retry" if retries_only else "next_due")
        due = rows[0][0] if rows else None
        return None if due is None else due - self.now()

    @_translated
    async def wait_for_change(self, timeout: float) -> bool:
        """PRAGMA data_version moves when another connection commits; it is polled, as
        SQLite has no notification across processes."""
        self._check_file()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(CHANGE_POLL, left))
            version = await pragma(self._conn, "data_version")
            if version != self._version:
                self._version = version
                return True
        return False


class _Partial(Exception):
    """A guarded update in a group commit matched no row."""


def finish_params(finish: Finish, now: float) -> dict[str, Any]:
    job, transition, outcome = finish.job, finish.transition, finish.outcome
    return {
        "id": job.id,
        "owner": job.lease_owner,
        "run": job.runs,
        "from_state": transition.from_state.value,
        "state": transition.state.value,
        "attempts": transition.attempts,
        "due_in": transition.due_in,
        "now": now,
        "exit_code": outcome.exit_code,
        "error": outcome.error,
        "error_kind": None if outcome.error_kind is None else outcome.error_kind.value,
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
        "stdout_truncated": outcome.stdout_truncated,
        "stderr_truncated": outcome.stderr_truncated,
    }
