"""Cron schedules in the PostgreSQL store, fired by every engine of the database, each tick
exactly once.

An engine takes a tick in one transaction: it moves the schedule's last_fire_at forward to the
tick (`take_tick`: only forward, never while paused), inserts the (schedule, fire time) row
with ON CONFLICT DO NOTHING, and only when both changed a row enqueues the job, with the same
statement and columns as `enqueue`, and wakes the engines. Engines taking the same tick queue
on the schedule row's lock; PostgreSQL then reads the row again for the next in line, whose
guard (last_fire_at < the tick) no longer holds, so it changes nothing and rolls back. The row
lock comes first on every path (resume too), so two paths never wait on each other in a cycle.
Every "now" is the database's, so hosts with skewed clocks agree on which tick is due.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from queuectl.errors import BadInput, ScheduleNotFound
from queuectl.store.enqueue_plan import plan
from queuectl.store.postgres_base import Tx
from queuectl.store.postgres_db import Row, translated
from queuectl.store.postgres_insert import PostgresInsertOps

if TYPE_CHECKING:
    from queuectl.schedules import Fired, Schedule, Schedules, Tick

# queuectl.schedules (and its records) are imported inside the methods: every command that
# opens the store would pay for them at start-up, and only the schedule commands and the
# engine's scheduler use them.


class _Lost(Exception):
    """The tick was taken by then (or the schedule paused or removed): roll back."""


class PostgresScheduleOps(PostgresInsertOps):
    @translated
    async def add_schedule(self, schedule: Schedule) -> None:
        rows = await self._fetch(
            "add_schedule",
            schedule.name,
            schedule.cron,
            schedule.tz,
            schedule.no_overlap,
            json.dumps(schedule.job, sort_keys=True),
            schedule.paused,
        )
        if not rows:
            raise BadInput(
                f"schedule {schedule.name!r} already exists; remove it first "
                "(`queuectl schedule remove NAME`) or choose another name"
            )

    @translated
    async def remove_schedule(self, name: str) -> None:
        if not await self._fetch("remove_schedule", name):
            raise ScheduleNotFound(name)

    @translated
    async def set_schedule_paused(self, name: str, paused: bool) -> None:
        """Resuming takes the latest tick that fell while paused as skipped: a pause is not
        an outage, so it gives no catch-up run."""
        from queuectl.schedules import Tick, TickAction

        async with self._transaction() as tx:
            now = await _now(tx)
            rows = await tx.fetch("lock_schedule", name)
            if not rows:
                raise ScheduleNotFound(name)
            schedule = schedule_of(rows[0])
            await tx.execute("set_schedule_paused", name, paused)
            if schedule.paused and not paused:
                missed = schedule.timing.latest_at(now, schedule.anchor)
                if missed is not None:
                    await _take(tx, Tick(name, missed, TickAction.SKIP))

    @translated
    async def list_schedules(self) -> Schedules:
        from queuectl.schedules import Schedules

        rows = await self._fetch("list_schedules")
        items = tuple(schedule_of(row) for row in rows if row["name"] is not None)
        return Schedules(float(rows[0]["now"]), items)

    @translated
    async def fire_tick(self, tick: Tick) -> Fired:
        from queuectl.schedules import Fired, TickAction

        try:
            async with self._transaction() as tx:
                if not await _take(tx, tick):
                    raise _Lost
                if tick.action is TickAction.SKIP:
                    return Fired(True)
                rows = await tx.fetch("lock_schedule", tick.schedule)
                job_id = await self._insert_job(tx, schedule_of(rows[0]))
                await tx.execute("record_tick_job", tick.schedule, tick.fire_at, job_id)
                await tx.notify()
                return Fired(True, job_id)
        except _Lost:
            return Fired(False)

    async def _insert_job(self, tx: Tx, schedule: Schedule) -> str:
        """The tick's job, inserted as `enqueue` inserts one."""
        [job_id] = await self._insert_planned(tx, plan([schedule.job_spec()]))
        return job_id


async def _now(tx: Tx) -> float:
    return float((await tx.fetch("enqueue_context"))[0]["now"])


async def _take(tx: Tx, tick: Tick) -> bool:
    """Move the schedule's last_fire_at forward to the tick, then insert the tick's row;
    False (the caller rolls back) when either changed nothing."""
    from queuectl.schedules import KEEP_TICKS

    if not await tx.fetch("take_tick", tick.schedule, tick.fire_at):
        return False
    if not await tx.fetch("insert_tick", tick.schedule, tick.fire_at):
        return False
    await tx.execute("prune_ticks", tick.schedule, KEEP_TICKS - 1)
    return True


def schedule_of(row: Row) -> Schedule:
    from queuectl.schedules import Schedule

    job = json.loads(row["spec"])
    return Schedule(
        name=str(row["name"]),
        cron=str(row["cron"]),
        tz=str(row["tz"]),
        job={str(key): value for key, value in job.items()},
        no_overlap=bool(row["no_overlap"]),
        paused=bool(row["paused"]),
        created_at=float(row["created_at"]),
        last_fire_at=None if row["last_fire_at"] is None else float(row["last_fire_at"]),
        last_job_id=None if row["last_job_id"] is None else str(row["last_job_id"]),
        last_job_state=None if row["last_job_state"] is None else str(row["last_job_state"]),
    )
