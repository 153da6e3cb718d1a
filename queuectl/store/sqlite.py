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
from queuectl.specs import new_job_id
from queuectl.states import JobState, KillReason
from queuectl.store import Progress, unique_ids
from queuectl.store.sqlite_base import translated
from queuectl.store.sqlite_db import SQL, attempt_of, job_of
from queuectl.store.sqlite_engine import SqliteEngineOps
from queuectl.store.sqlite_list import SqliteListOps
from queuectl.store.sqlite_manage import SqliteManageOps

_CHUNK = 500  # ids per IN (...) lookup
_INSERT_BATCH = 5000  # rows per executemany, so a bulk enqueue can report progress


class SqliteStore(SqliteListOps, SqliteManageOps, SqliteEngineOps):
    # --- jobs as the CLI sees them -----------------------------------------------------------

    @translated
    async def enqueue(
        self, specs: Sequence[JobSpec], progress: Progress | None = None
    ) -> list[str]:
        seen = unique_ids(specs)
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
            spec.label,
        )

    async def _existing_ids(self, ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = json.dumps(list(ids[start : start + _CHUNK]))
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
