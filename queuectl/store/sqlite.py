"""The SQLite store: the embedded, zero set-up default.

One file per queue in WAL mode. Writes run in BEGIN IMMEDIATE transactions (a deferred
transaction that later writes fails at once with SQLITE_BUSY instead of waiting); every
connection waits up to BUSY_TIMEOUT_MS for a lock. All SQL is in sqlite*.sql. The operations
are grouped by who uses them: the connection (sqlite_base), the engine's (sqlite_engine), and
the CLI's, here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

import aiosqlite

from queuectl.config import CONFIG_KEYS, Config
from queuectl.errors import BadInput, DuplicateJobId, JobNotFound
from queuectl.models import Attempt, Job, JobSpec
from queuectl.states import JobState, KillReason
from queuectl.store import Enqueued, Progress
from queuectl.store.enqueue_plan import Plan, missing_parents, plan
from queuectl.store.sqlite_base import translated
from queuectl.store.sqlite_db import SQL, attempt_of, job_of
from queuectl.store.sqlite_engine import SqliteEngineOps
from queuectl.store.sqlite_list import SqliteListOps
from queuectl.store.sqlite_manage import SqliteManageOps
from queuectl.store.sqlite_schedule import SqliteScheduleOps

_CHUNK = 500  # ids per IN (...) lookup
_INSERT_BATCH = 5000  # rows per executemany, so a bulk enqueue can report progress


class SqliteStore(SqliteListOps, SqliteManageOps, SqliteScheduleOps, SqliteEngineOps):
    # --- jobs as the CLI sees them -----------------------------------------------------------

    @translated
    async def enqueue(self, specs: Sequence[JobSpec], progress: Progress | None = None) -> Enqueued:
        planned = plan(specs)
        try:
            async with self._write() as conn:
                problem = missing_parents(planned, set(await self._existing_ids(planned.outside)))
                if problem is not None:
                    raise problem
                config = await self._config()
                now = self.now()
                stands_for = await self._insert(conn, planned, config, now, progress)
                if planned.has_parents:
                    await self._link(conn, planned, stands_for, now)
        except sqlite3.IntegrityError:
            given = sorted(spec.id for spec in specs if spec.id is not None)
            taken = await self._existing_ids(given)
            raise DuplicateJobId(taken[0] if taken else "?") from None
        ids = [stands_for.get(job.id, job.id) for job in planned.jobs]
        return Enqueued(ids, list(stands_for.values()))

    async def _insert(
        self,
        conn: aiosqlite.Connection,
        planned: Plan,
        config: Config,
        now: float,
        progress: Progress | None,
    ) -> dict[str, str]:
        """Insert the planned jobs, in order; the ids of the jobs that a unique key made stand
        in for planned ones (planned id -> existing id)."""
        stands_for: dict[str, str] = {}
        plain: list[tuple[Any, ...]] = []
        for job in planned.jobs:
            if job.same_key_as is not None:
                continue
            row = self._job_row(job.id, job.spec, config, now)
            if job.spec.unique_key is None:
                plain.append(row)
                if len(plain) == _INSERT_BATCH:
                    await self._insert_plain(conn, plain, progress)
            else:
                await self._insert_plain(conn, plain, progress)  # keep the order
                cursor = await conn.execute(SQL["insert_job"], row)
                if cursor.rowcount == 0:
                    [[existing]] = await conn.execute_fetchall(
                        SQL["live_with_key"], (job.spec.unique_key,)
                    )
                    stands_for[job.id] = str(existing)
        await self._insert_plain(conn, plain, progress)
        return stands_for

    @staticmethod
    async def _insert_plain(
        conn: aiosqlite.Connection, rows: list[tuple[Any, ...]], progress: Progress | None
    ) -> None:
        """The rows gathered so far, in one executemany (emptying the list)."""
        if rows:
            await conn.executemany(SQL["insert_job"], rows)
            if progress:
                progress(len(rows))
            rows.clear()

    @staticmethod
    async def _link(
        conn: aiosqlite.Connection, planned: Plan, stands_for: dict[str, str], now: float
    ) -> None:
        """Record the new jobs' parents, then cancel those with a parent that is already dead
        or canceled and release those whose parents have all completed."""
        pairs = planned.dependencies(stands_for)
        await conn.execute(SQL["insert_deps"], (json.dumps(pairs),))
        children = json.dumps(sorted({child for child, _ in pairs}))
        await conn.execute(SQL["cancel_doomed"], {"now": now, "ids": children})
        await conn.execute(SQL["release_ready"], {"ids": children})

    @staticmethod
    def _job_row(job_id: str, spec: JobSpec, config: Config, now: float) -> tuple[Any, ...]:
        timeout = spec.timeout if spec.timeout is not None else config.job_timeout
        max_retries = spec.max_retries if spec.max_retries is not None else config.max_retries
        run_at = spec.run_at if spec.run_at is not None else now
        return (
            job_id,
            spec.command,
            JobState.BLOCKED.value if spec.after else JobState.PENDING.value,
            spec.priority,
            max_retries,
            timeout,
            spec.cwd,
            json.dumps(spec.env),
            now,
            now,
            run_at,
            run_at,
            spec.label,
            spec.queue,
            spec.unique_key,
        )

    async def _existing_ids(self, ids: Collection[str]) -> list[str]:
        found: list[str] = []
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = json.dumps(ordered[start : start + _CHUNK])
            found += [row[0] for row in await self._rows("existing_ids", (chunk,))]
        return found

    @translated
    async def get(self, job_id: str) -> Job:
        rows = await self._rows("get_job", (job_id,))
        if not rows:
            raise JobNotFound(job_id)
        return job_of(rows[0])

    @translated
    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        if state is None:
            rows = await self._rows("list_jobs", (limit,))
        else:
            rows = await self._rows("list_jobs_in_state", (state.value, limit))
        return [job_of(row) for row in rows]

    @translated
    async def counts(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in await self._rows("count_by_state"):
            counts[JobState(state)] = count
        return counts

    @translated
    async def attempts(self, job_id: str) -> list[Attempt]:
        await self.get(job_id)
        return [attempt_of(row) for row in await self._rows("list_attempts", (job_id,))]

    @translated
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

    @translated
    async def cancel(self, job_id: str) -> Job:
        params = {"id": job_id, "now": self.now(), "error": KillReason.CANCEL.message}
        async with self._write() as conn:
            await conn.execute(SQL["cancel_waiting"], params)
            return await self.get(job_id)

    # --- configuration -----------------------------------------------------------------------

    @translated
    async def config(self) -> Config:
        return await self._config()

    @translated
    async def set_config(self, name: str, value: Any) -> None:
        if name not in CONFIG_KEYS:
            raise BadInput(f"unknown config key {name!r}")
        async with self._write() as conn:
            await conn.execute(SQL["set_config"], (name, json.dumps(value)))

    @translated
    async def paused(self) -> bool:
        return bool(await self._rows("is_paused"))

    @translated
    async def set_paused(self, paused: bool) -> None:
        async with self._write() as conn:
            await conn.execute(SQL["set_paused"], (json.dumps(paused),))
