"""The SQLite store: the embedded, zero set-up default.

One file per queue in WAL mode. Writes run in BEGIN IMMEDIATE transactions (a deferred
transaction that later writes fails at once with SQLITE_BUSY instead of waiting); every
connection waits up to `BUSY_TIMEOUT_MS` for a lock. All SQL is in sqlite.sql.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiosqlite

from queuectl.errors import BadInput, InvalidTransition, JobNotFound, StorageError
from queuectl.models import Attempt, Job, JobSpec, JobState, Outcome, new_job_id
from queuectl.settings import CONFIG_KEYS, DB_NAME, ensure_home

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
_CHUNK = 500  # ids per IN (...) lookup
_INSERT_BATCH = 5000  # rows per executemany, so a bulk enqueue can report progress


def _load_sql() -> dict[str, str]:
    text = resources.files("queuectl.store").joinpath("sqlite.sql").read_text()
    blocks = re.split(r"^-- name: (\w+)\n", text, flags=re.MULTILINE)
    return {name: body.strip() for name, body in zip(blocks[1::2], blocks[2::2], strict=True)}


SQL = _load_sql()

P = ParamSpec("P")
R = TypeVar("R")


def _translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn sqlite3 errors into StorageError naming the database file and what to do."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, SqliteStore)
            raise store.storage_error(exc) from exc

    return wrapper


def _in_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], R]) -> R:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _states(conn: sqlite3.Connection, job_ids: list[str]) -> dict[str, JobState]:
    rows = conn.execute(SQL["states_of"], (json.dumps(job_ids),)).fetchall()
    return {row[0]: JobState(row[1]) for row in rows}


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        command=row["command"],
        state=JobState(row["state"]),
        priority=row["priority"],
        max_retries=row["max_retries"],
        timeout=row["timeout"],
        cwd=row["cwd"],
        env=json.loads(row["env"]),
        attempts=row["attempts"],
        runs=row["runs"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        run_at=row["run_at"],
        next_run_at=row["next_run_at"],
        last_error=row["last_error"],
        exit_code=row["exit_code"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        pid=row["pid"],
    )


def _attempt(row: sqlite3.Row) -> Attempt:
    return Attempt(
        job_id=row["job_id"],
        run=row["run"],
        engine=row["engine"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        error=row["error"],
        stdout=bytes(row["stdout"]),
        stderr=bytes(row["stderr"]),
        stdout_truncated=bool(row["stdout_truncated"]),
        stderr_truncated=bool(row["stderr_truncated"]),
    )


@dataclass(frozen=True, slots=True)
class _Write:
    kind: str  # a key of _WRITE_SQL
    params: dict[str, Any]
    future: asyncio.Future[JobState | None]


_WRITE_SQL = {"pid": "set_pid", "finish": "finish_job"}


class _PartialBatch(Exception):
    """A guarded update in a group commit matched no row."""


class DuplicateJobId(BadInput):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job id {job_id!r} already exists; choose another id or omit it")
        self.job_id = job_id


class SqliteStore:
    exclusive = True

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        self._write_lock = asyncio.Lock()
        self._pending: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        self._identity = self._file_identity()

    @classmethod
    async def open(cls, home: Path, *, durable: bool = True) -> SqliteStore:
        path = ensure_home(home) / DB_NAME
        try:
            # Created 0600 (it holds job output); SQLite gives -wal and -shm the same mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open queue database {str(path)!r}: {exc}") from None
        conn.row_factory = sqlite3.Row
        store = cls(path, conn)
        try:
            await store._setup(durable)
        except sqlite3.Error as exc:
            await conn.close()
            raise store.storage_error(exc) from None
        except BaseException:
            await conn.close()
            raise
        return store

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

    def storage_error(self, exc: sqlite3.Error) -> StorageError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            hint = "the file is corrupt; restore it from a backup or use another --home"
        elif "readonly" in text or "read-only" in text:
            hint = "the file or its directory is read-only; fix its permissions"
        elif "unable to open" in text:
            hint = "check that the directory exists and is readable and writable"
        elif "locked" in text or "busy" in text:
            hint = "another process held the database too long; try again"
        else:
            return StorageError(f"queue database {str(self.path)!r}: {text}")
        return StorageError(f"queue database {str(self.path)!r}: {text} ({hint})")

    async def _setup(self, durable: bool) -> None:
        conn = self._conn
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        rows = list(await conn.execute_fetchall("PRAGMA journal_mode"))
        if not rows or rows[0][0] != "wal":
            await conn.execute("PRAGMA journal_mode = WAL")
        version = await self._pragma("user_version")
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"queue database {str(self.path)!r} has schema {version}, newer than this "
                f"queuectl understands ({SCHEMA_VERSION}); upgrade queuectl"
            )
        async with self._write():
            # another process may have migrated meanwhile
            version = await self._pragma("user_version")
            if version < 1:
                for statement in SQL["schema_v1"].split(";\n"):
                    await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    async def _pragma(self, name: str) -> int:
        rows = list(await self._conn.execute_fetchall(f"PRAGMA {name}"))
        return int(rows[0][0]) if rows else 0

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
        async with self._write_lock:
            return await self._conn._execute(_in_transaction, self._conn._conn, body)

    async def _rows(
        self, name: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(SQL[name], params))

    async def close(self) -> None:
        await self._conn.close()

    # --- jobs as the CLI sees them -----------------------------------------------------------

    @_translated
    async def enqueue(
        self, specs: Sequence[JobSpec], now: float, progress: Callable[[int], None] | None = None
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
    def _job_row(spec: JobSpec, config: dict[str, Any], now: float) -> tuple[Any, ...]:
        timeout = spec.timeout if spec.timeout is not None else config["job-timeout"]
        max_retries = spec.max_retries if spec.max_retries is not None else config["max-retries"]
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
        return _job(rows[0])

    @_translated
    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        if state is None:
            rows = await self._rows("list_jobs", (limit,))
        else:
            rows = await self._rows("list_jobs_in_state", (state.value, limit))
        return [_job(row) for row in rows]

    @_translated
    async def counts(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in await self._rows("count_by_state"):
            counts[JobState(state)] = count
        return counts

    @_translated
    async def attempts(self, job_id: str) -> list[Attempt]:
        await self.get(job_id)
        return [_attempt(row) for row in await self._rows("list_attempts", (job_id,))]

    @_translated
    async def retry_dead(self, job_ids: Sequence[str] | None, now: float) -> list[str]:
        if job_ids is not None:
            job_ids = list(dict.fromkeys(job_ids))  # naming a job twice retries it once
        async with self._write() as conn:
            if job_ids is None:
                return [row[0] for row in await self._rows("retry_all_dead", {"now": now})]
            for job_id in job_ids:
                cur = await conn.execute(SQL["retry_dead"], {"id": job_id, "now": now})
                if cur.rowcount == 0:
                    job = await self.get(job_id)  # raises JobNotFound
                    raise BadInput(
                        f"job {job_id!r} is {job.state.value}, not dead; only dead jobs can be "
                        "retried (see `queuectl dlq list`)"
                    )
        return list(job_ids)

    @_translated
    async def cancel(self, job_id: str, now: float) -> Job:
        async with self._write() as conn:
            await conn.execute(SQL["cancel_waiting"], {"id": job_id, "now": now})
            return await self.get(job_id)

    # --- configuration -----------------------------------------------------------------------

    async def _config(self) -> dict[str, Any]:
        values = {name: key.default for name, key in CONFIG_KEYS.items()}
        for name, value in await self._rows("get_config"):
            if name in values:
                values[name] = json.loads(value)
        return values

    @_translated
    async def config(self) -> dict[str, Any]:
        return await self._config()

    @_translated
    async def set_config(self, name: str, value: Any) -> None:
        async with self._write() as conn:
            await conn.execute(SQL["set_config"], (name, json.dumps(value)))

    # --- the engine's side -------------------------------------------------------------------

    @_translated
    async def claim(self, owner: str, limit: int, now: float, lease: float) -> list[Job]:
        self._check_file()
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

        jobs = [_job(row) for row in await self._transact(claim_due)]
        jobs.sort(key=lambda job: (-job.priority, job.next_run_at, job.id))
        return jobs

    @_translated
    async def set_pid(self, job: Job, pid: int) -> None:
        await self._submit(
            "pid", {"pid": pid, "id": job.id, "owner": job.lease_owner, "run": job.runs}
        )

    @_translated
    async def renew_leases(self, owner: str, until: float) -> None:
        self._check_file()
        async with self._write() as conn:
            await conn.execute(SQL["renew_leases"], {"owner": owner, "until": until})

    @_translated
    async def finish(self, job: Job, outcome: Outcome, now: float, retry_at: float) -> JobState:
        state = await self._submit(
            "finish",
            {
                "id": job.id,
                "owner": job.lease_owner,
                "run": job.runs,
                "now": now,
                "kind": outcome.kind.value,
                "exit_code": outcome.exit_code,
                "error": outcome.error,
                "retry_at": retry_at,
                "stdout": outcome.stdout,
                "stderr": outcome.stderr,
                "stdout_truncated": outcome.stdout_truncated,
                "stderr_truncated": outcome.stderr_truncated,
            },
        )
        assert isinstance(state, JobState)
        return state

    # --- group commit: the engine's per-job writes share transactions ------------------------

    async def _submit(self, kind: str, params: dict[str, Any]) -> JobState | None:
        """Queue a write for the next group commit and wait for its result.

        Jobs that end together (and processes that start together) are written in one
        transaction of a few statements instead of one transaction each: the per-job cost of a
        commit and of aiosqlite's thread hops is what limits throughput, not SQLite itself.
        """
        future: asyncio.Future[JobState | None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(kind, params, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                try:
                    results = await self._apply_batch(batch)
                except _PartialBatch:
                    results = await self._apply_each(batch)
            except Exception as exc:
                for write in batch:
                    if not write.future.done():
                        write.future.set_exception(exc)
                continue
            for write, result in zip(batch, results, strict=True):
                if write.future.done():
                    continue
                if isinstance(result, Exception):
                    write.future.set_exception(result)
                else:
                    write.future.set_result(result)

    async def _apply_batch(self, batch: list[_Write]) -> list[JobState | Exception | None]:
        pids = [write.params for write in batch if write.kind == "pid"]
        finishes = [write.params for write in batch if write.kind == "finish"]

        def apply(conn: sqlite3.Connection) -> dict[str, JobState]:
            if pids:
                conn.executemany(SQL["set_pid"], pids)
            if not finishes:
                return {}
            if conn.executemany(SQL["finish_job"], finishes).rowcount != len(finishes):
                raise _PartialBatch  # some job moved on: roll back, redo one by one
            conn.executemany(SQL["finish_attempt"], finishes)
            return _states(conn, [params["id"] for params in finishes])

        states = await self._transact(apply)
        return [states[write.params["id"]] if write.kind == "finish" else None for write in batch]

    async def _apply_each(self, batch: list[_Write]) -> list[JobState | Exception | None]:
        def apply(conn: sqlite3.Connection) -> list[JobState | Exception | None]:
            results: list[JobState | Exception | None] = []
            for write in batch:
                cursor = conn.execute(SQL[_WRITE_SQL[write.kind]], write.params)
                if write.kind == "pid":
                    results.append(None)
                elif cursor.rowcount == 0:
                    results.append(
                        InvalidTransition(
                            f"job {write.params['id']!r} run {write.params['run']} is no longer "
                            f"held by {write.params['owner']}"
                        )
                    )
                else:
                    conn.execute(SQL["finish_attempt"], write.params)
                    results.append(None)
            done = [
                w.params["id"]
                for w, r in zip(batch, results, strict=True)
                if w.kind == "finish" and r is None
            ]
            states = _states(conn, done)
            return [
                states[write.params["id"]] if write.kind == "finish" and result is None else result
                for write, result in zip(batch, results, strict=True)
            ]

        return await self._transact(apply)

    @_translated
    async def orphans(self, owner: str, now: float) -> list[Job]:
        name = "orphans_all" if self.exclusive else "orphans_expired"
        return [_job(row) for row in await self._rows(name, {"owner": owner, "now": now})]

    @_translated
    async def next_due(self, retries_only: bool = False) -> float | None:
        rows = await self._rows("next_retry" if retries_only else "next_due")
        return rows[0][0] if rows else None

    @_translated
    async def change_marker(self) -> int:
        """PRAGMA data_version: it moves when another connection commits."""
        self._check_file()
        return await self._pragma("data_version")
