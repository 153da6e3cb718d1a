"""Inserting jobs into the PostgreSQL store, as `enqueue` and a schedule's tick both do: the
rows many at a time (one INSERT ... SELECT FROM unnest per batch), the unique keys that make a
job stand in for a new one, then the new jobs' parents and their first state
(store/enqueue_plan.py decides the rest)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from queuectl.config import Config
from queuectl.states import JobState
from queuectl.store import Enqueued, Progress
from queuectl.store.enqueue_plan import Plan, Planned, missing_parents
from queuectl.store.postgres_base import PostgresBase, Tx

_INSERT_BATCH = 5000  # jobs per INSERT, so that a bulk enqueue can report progress


class PostgresInsertOps(PostgresBase):
    async def _insert_planned(
        self, tx: Tx, planned: Plan, progress: Progress | None = None
    ) -> Enqueued:
        """Insert the planned jobs in the transaction `tx`; BadInput for a parent that does
        not exist (the caller's transaction rolls back)."""
        if planned.outside:
            rows = await tx.fetch("existing_ids", sorted(planned.outside))
            problem = missing_parents(planned, {str(row["id"]) for row in rows})
            if problem is not None:
                raise problem
        now, config = await self._enqueue_context(tx)
        jobs = [job for job in planned.jobs if job.same_key_as is None]
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
        ids = [stands_for.get(job.id, job.id) for job in planned.jobs]
        return Enqueued(ids, list(stands_for.values()))

    async def _enqueue_context(self, tx: Tx) -> tuple[float, Config]:
        """The transaction's "now" and the config that gives the jobs their defaults."""
        rows = await tx.fetch("enqueue_context")
        return float(rows[0]["now"]), self._config_of(rows)


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
