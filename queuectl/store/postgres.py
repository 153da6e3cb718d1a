"""The PostgreSQL store: one queue shared by engines on many hosts.

asyncpg, a small pool per store, and all SQL in postgres.sql; the schema is created and
upgraded on first use (postgres_schema.py). Every "now" is the database server's, unless a
clock was injected (tests), so that hosts whose clocks disagree still agree on leases, run-at
times and backoff. The operations are grouped by who uses them: the connections
(postgres_base), the engine's (postgres_engine), and the CLI's, here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from queuectl.config import CONFIG_KEYS, Config
from queuectl.errors import BadInput, DuplicateJobId, JobNotFound
from queuectl.models import Attempt, Job, JobSpec
from queuectl.states import JobState, KillReason
from queuectl.store import Enqueued, Progress
from queuectl.store.enqueue_plan import plan
from queuectl.store.postgres_db import attempt_of, job_of, translated
from queuectl.store.postgres_engine import PostgresEngineOps
from queuectl.store.postgres_list import PostgresListOps
from queuectl.store.postgres_manage import PostgresManageOps
from queuectl.store.postgres_queues import PostgresQueueOps
from queuectl.store.postgres_schedule import PostgresScheduleOps


class PostgresStore(
    PostgresListOps, PostgresManageOps, PostgresScheduleOps, PostgresQueueOps, PostgresEngineOps
):
    # --- jobs as the CLI sees them -----------------------------------------------------------

    @translated
    async def enqueue(self, specs: Sequence[JobSpec], progress: Progress | None = None) -> Enqueued:
        planned = plan(specs)
        if not specs:
            return Enqueued()
        try:
            async with self._transaction() as tx:
                enqueued = await self._insert_planned(tx, planned, progress)
                await tx.notify()
        except asyncpg.UniqueViolationError:
            given = [spec.id for spec in specs if spec.id is not None]
            taken = {str(row["id"]) for row in await self._fetch("existing_ids", given)}
            raise DuplicateJobId(next((i for i in given if i in taken), "?")) from None
        return enqueued

    @translated
    async def get(self, job_id: str) -> Job:
        rows = await self._fetch("get_job", job_id)
        if not rows:
            raise JobNotFound(job_id)
        return job_of(rows[0])

    @translated
    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        if state is None:
            rows = await self._fetch("list_jobs", limit)
        else:
            rows = await self._fetch("list_jobs_in_state", state.value, limit)
        return [job_of(row) for row in rows]

    @translated
    async def counts(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for row in await self._fetch("count_states"):  # postgres_queues.sql
            counts[JobState(row["state"])] = int(row["n"])
        return counts

    @translated
    async def attempts(self, job_id: str) -> list[Attempt]:
        rows = await self._fetch("list_attempts", job_id)
        if not rows:
            raise JobNotFound(job_id)
        return [attempt_of(row) for row in rows if row["run"] is not None]

    @translated
    async def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        async with self._transaction() as tx:
            if job_ids is None:
                retried = [str(row["id"]) for row in await tx.fetch("retry_all_dead")]
            else:
                job_ids = list(dict.fromkeys(job_ids))  # naming a job twice retries it once
                done = {str(row["id"]) for row in await tx.fetch("retry_dead", job_ids)}
                for job_id in job_ids:
                    if job_id not in done:  # nothing is retried: the transaction rolls back
                        job = await self.get(job_id)  # raises JobNotFound
                        raise BadInput(
                            f"job {job_id!r} is {job.state.value}, not dead; only dead jobs "
                            "can be retried (see `queuectl dlq list`)"
                        )
                retried = job_ids
            if retried:
                await tx.notify()
        return retried

    @translated
    async def cancel(self, job_id: str) -> Job:
        rows = await self._fetch("cancel_waiting", job_id, KillReason.CANCEL.message)
        if not rows:
            raise JobNotFound(job_id)
        return job_of(rows[0])

    # --- configuration -----------------------------------------------------------------------

    @translated
    async def config(self) -> Config:
        return self._config_of(await self._fetch("get_config"))

    @translated
    async def set_config(self, name: str, value: Any) -> None:
        if name not in CONFIG_KEYS:
            raise BadInput(f"unknown config key {name!r}")
        await self._execute("set_config", name, json.dumps(value))

    @translated
    async def paused(self) -> bool:
        return bool(await self._fetch("is_paused"))

    @translated
    async def set_paused(self, paused: bool) -> None:
        """Resuming wakes the listening engines: jobs may have been due for a while."""
        async with self._transaction() as tx:
            await tx.execute("set_paused", json.dumps(paused))
            if not paused:
                await tx.notify()
