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
from queuectl.store.enqueue_plan import Plan, Planned, missing_parents, plan
from queuectl.store.postgres_base import Tx
from queuectl.store.postgres_db import attempt_of, job_of, translated
from queuectl.store.postgres_engine import PostgresEngineOps
from queuectl.store.postgres_list import PostgresListOps
from queuectl.store.postgres_manage import PostgresManageOps
from queuectl.store.postgres_queues import PostgresQueueOps
from queuectl.store.postgres_schedule import PostgresScheduleOps

_INSERT_BATCH = 5000  # jobs per INSERT, so that a bulk enqueue can report progress


class PostgresStore(
    PostgresListOps, PostgresManageOps, PostgresScheduleOps, PostgresQueueOps, PostgresEngineOps
):
    # --- jobs as the CLI sees them -----------------------------------------------------------

    @translated
    async def enqueue(self, specs: Sequence[JobSpec], progress: Progress | None = None) -> Enqueued:
        planned = plan(specs)
        if not specs:
            return Enqueued()
        jobs = [job for job in planned.jobs if job.same_key_as is None]
        try:
            async with self._transaction() as tx:
                if planned.outside:
                    rows = await tx.fetch("existing_ids", sorted(planned.outside))
                    problem = missing_parents(planned, {str(row["id"]) for row in rows})
                    if problem is not None:
                        raise problem
                now, config = await self._enqueue_context(tx)
                inserted: set[str] = set()
                for start in range(0, len(jobs), _INSERT_BATCH):
                    batch = jobs[start : start + _INSERT_BATCH]
                    rows = await tx.fetch("insert_jobs", now, *_job_columns(batch, config))
                    inserted.update(str(row["id"]) for row in rows)
                    if progress:
                        progress(len(batch))
                refused = [job for job in jobs if job.id not in inserted]
                stands_for = await _stand_ins(tx, refused, now, config)
                if planned.has_parents:
                    await _link(tx, planned, stands_for, now)
                await tx.notify()
        except asyncpg.UniqueViolationError:
            given = [spec.id for spec in specs if spec.id is not None]
            taken = {str(row["id"]) for row in await self._fetch("existing_ids", given)}
            raise DuplicateJobId(next((i for i in given if i in taken), "?")) from None
        ids = [stands_for.get(job.id, job.id) for job in planned.jobs]
        return Enqueued(ids, list(stands_for.values()))

    async def _enqueue_context(self, tx: Tx) -> tuple[float, Config]:
        """The transaction's "now" and the config that gives the jobs their defaults."""
        rows = await tx.fetch("enqueue_context")
        return float(rows[0]["now"]), self._config_of(rows)

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
        for row in await self._fetch("count_by_state"):
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


def _job_columns(jobs: Sequence[Planned], config: Config) -> list[list[Any]]:
    """The insert_jobs arrays (one per column) for these jobs; None run_at means now."""
    specs = [job.spec for job in jobs]
    return [
        [job.id for job in jobs],
        [spec.command for spec in specs],
        [spec.label for spec in specs],
        [spec.priority for spec in specs],
        [config.max_retries if s.max_retries is None else s.max_retries for s in specs],
        [config.job_timeout if s.timeout is None else s.timeout for s in specs],
        [spec.cwd for spec in specs],
        [json.dumps(spec.env) for spec in specs],
        [spec.run_at for spec in specs],
        [JobState.BLOCKED.value if s.after else JobState.PENDING.value for s in specs],
        [spec.queue for spec in specs],
        [spec.unique_key for spec in specs],
    ]


async def _stand_ins(
    tx: Tx, refused: Sequence[Planned], now: float, config: Config
) -> dict[str, str]:
    """For the jobs not inserted (a live job held their unique key): planned id -> the id of
    the job that holds it. A holder may have ended between the insert and this look (each
    statement sees what committed before it): those jobs are inserted after all."""
    stands_for: dict[str, str] = {}
    while refused:
        rows = await tx.fetch("live_with_keys", [job.spec.unique_key for job in refused])
        holders = {str(row["unique_key"]): str(row["id"]) for row in rows}
        for job in refused:
            if job.spec.unique_key in holders:
                stands_for[job.id] = holders[job.spec.unique_key]
        free = [job for job in refused if job.spec.unique_key not in holders]
        if not free:
            break
        inserted = {
            str(r["id"]) for r in await tx.fetch("insert_jobs", now, *_job_columns(free, config))
        }
        refused = [job for job in free if job.id not in inserted]
    return stands_for


async def _link(tx: Tx, planned: Plan, stands_for: dict[str, str], now: float) -> None:
    """Record the new jobs' parents, then cancel those with a parent that is already dead or
    canceled and release those whose parents have all completed."""
    pairs = planned.dependencies(stands_for)
    await tx.execute("insert_deps", [c for c, _ in pairs], [p for _, p in pairs])
    children = sorted({child for child, _ in pairs})
    await tx.execute("cancel_doomed", children, now)
    await tx.execute("release_ready", children)
