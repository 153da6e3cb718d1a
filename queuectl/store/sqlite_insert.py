"""Inserting jobs into the SQLite store, as `enqueue` and a schedule's tick both do: the rows
in order (plain ones many at a time), the unique keys that make a job stand in for a new one,
then the new jobs' parents and their first state (store/enqueue_plan.py decides the rest)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from typing import Any

import aiosqlite

from queuectl.config import Config
from queuectl.models import JobSpec
from queuectl.states import JobState
from queuectl.store import Enqueued, Progress
from queuectl.store.enqueue_plan import Plan, missing_parents
from queuectl.store.sqlite_base import SqliteBase
from queuectl.store.sqlite_db import SQL

_CHUNK = 500  # ids per IN (...) lookup
_INSERT_BATCH = 5000  # rows per executemany, so a bulk enqueue can report progress


class SqliteInsertOps(SqliteBase):
    async def _insert_planned(
        self, conn: aiosqlite.Connection, planned: Plan, progress: Progress | None = None
    ) -> Enqueued:
        """Insert the planned jobs in the write transaction of `conn`; BadInput for a parent
        that does not exist (the caller rolls back)."""
        problem = missing_parents(planned, set(await self._existing_ids(planned.outside)))
        if problem is not None:
            raise problem
        config = await self._config()
        now = self.now()
        inserted: Counter[tuple[str, str]] = Counter()  # (queue, state) of each row inserted
        stands_for = await self._insert(conn, planned, config, now, progress, inserted)
        # counted before _link, whose cancels and releases move the counts on (schema_v5)
        await conn.executemany(SQL["count_inserted"], [(*key, n) for key, n in inserted.items()])
        if planned.has_parents:
            await self._link(conn, planned, stands_for, now)
        ids = [stands_for.get(job.id, job.id) for job in planned.jobs]
        return Enqueued(ids, list(stands_for.values()))

    async def _insert(
        self,
        conn: aiosqlite.Connection,
        planned: Plan,
        config: Config,
        now: float,
        progress: Progress | None,
        inserted: Counter[tuple[str, str]],
    ) -> dict[str, str]:
        """Insert the planned jobs, in order, counting them in `inserted`; the ids of the jobs
        that a unique key made stand in for planned ones (planned id -> existing id)."""
        stands_for: dict[str, str] = {}
        plain: list[tuple[Any, ...]] = []
        for job in planned.jobs:
            if job.same_key_as is not None:
                continue
            row = self._job_row(job.id, job.spec, config, now)
            key = (job.spec.queue, row[2])
            if job.spec.unique_key is None:
                inserted[key] += 1  # or the whole enqueue fails (a duplicate id)
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
                else:
                    inserted[key] += 1
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
