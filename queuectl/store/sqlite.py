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
from collections.abc import Sequence
from typing import Any

from queuectl.config import CONFIG_KEYS, Config
from queuectl.errors import BadInput, DuplicateJobId, JobNotFound
from queuectl.models import Attempt, Job, JobSpec
from queuectl.states import JobState, KillReason
from queuectl.store import Enqueued, Progress
from queuectl.store.enqueue_plan import plan
from queuectl.store.sqlite_base import translated
from queuectl.store.sqlite_db import SQL, attempt_of, job_of
from queuectl.store.sqlite_engine import SqliteEngineOps
from queuectl.store.sqlite_list import SqliteListOps
from queuectl.store.sqlite_manage import SqliteManageOps
from queuectl.store.sqlite_schedule import SqliteScheduleOps


class SqliteStore(SqliteListOps, SqliteManageOps, SqliteScheduleOps, SqliteEngineOps):
    # --- jobs as the CLI sees them -----------------------------------------------------------

    @translated
    async def enqueue(self, specs: Sequence[JobSpec], progress: Progress | None = None) -> Enqueued:
        planned = plan(specs)
        try:
            async with self._write() as conn:
                return await self._insert_planned(conn, planned, progress)
        except sqlite3.IntegrityError:
            given = sorted(spec.id for spec in specs if spec.id is not None)
            taken = await self._existing_ids(given)
            raise DuplicateJobId(taken[0] if taken else "?") from None

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
