"""Cron schedules in the SQLite store: the schedules table, and taking a tick.

A tick is taken in one write transaction: its (schedule, fire time) row is inserted with
ON CONFLICT DO NOTHING, the schedule's last_fire_at moves forward (never back, never while
paused), and only then is the job enqueued, through the same row builder and statement as
`enqueue`. One engine runs per SQLite file, so the guards matter less here than on PostgreSQL,
but they are the same, and the contract tests hold both stores to them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

import aiosqlite

from queuectl.errors import BadInput, ScheduleNotFound
from queuectl.store.enqueue_plan import plan
from queuectl.store.sqlite_base import translated
from queuectl.store.sqlite_db import SQL
from queuectl.store.sqlite_insert import SqliteInsertOps

if TYPE_CHECKING:
    from queuectl.schedules import Fired, Schedule, Schedules, Tick

# queuectl.schedules (and its records) are imported inside the methods: every command that
# opens the store would pay for them at start-up, and only the schedule commands and the
# engine's scheduler use them.


class _Lost(Exception):
    """The tick was taken by then (or the schedule paused or removed): roll back."""


class SqliteScheduleOps(SqliteInsertOps):
    @translated
    async def add_schedule(self, schedule: Schedule) -> None:
        params = {
            "name": schedule.name,
            "cron": schedule.cron,
            "tz": schedule.tz,
            "no_overlap": int(schedule.no_overlap),
            "spec": json.dumps(schedule.job, sort_keys=True),
            "paused": int(schedule.paused),
            "now": self.now(),
        }
        try:
            async with self._write() as conn:
                await conn.execute(SQL["add_schedule"], params)
        except sqlite3.IntegrityError:
            raise BadInput(
                f"schedule {schedule.name!r} already exists; remove it first "
                "(`queuectl schedule remove NAME`) or choose another name"
            ) from None

    @translated
    async def remove_schedule(self, name: str) -> None:
        async with self._write() as conn:
            cur = await conn.execute(SQL["remove_schedule"], (name,))
            if cur.rowcount == 0:
                raise ScheduleNotFound(name)
            await conn.execute(SQL["remove_schedule_ticks"], (name,))

    @translated
    async def set_schedule_paused(self, name: str, paused: bool) -> None:
        """Resuming takes the latest tick that fell while paused as skipped: a pause is not
        an outage, so it gives no catch-up run."""
        from queuectl.schedules import Tick, TickAction

        async with self._write() as conn:
            rows = list(await conn.execute_fetchall(SQL["get_schedule"], (name,)))
            if not rows:
                raise ScheduleNotFound(name)
            schedule = schedule_of(rows[0])
            await conn.execute(SQL["set_schedule_paused"], {"name": name, "paused": int(paused)})
            if schedule.paused and not paused:
                missed = schedule.timing.latest_at(self.now(), schedule.anchor)
                if missed is not None:
                    await self._take(conn, Tick(name, missed, TickAction.SKIP))

    @translated
    async def list_schedules(self) -> Schedules:
        from queuectl.schedules import Schedules

        now = self.now()
        return Schedules(now, tuple(schedule_of(row) for row in await self._rows("list_schedules")))

    @translated
    async def fire_tick(self, tick: Tick) -> Fired:
        from queuectl.schedules import Fired, TickAction

        try:
            async with self._write() as conn:
                if not await self._take(conn, tick):
                    raise _Lost
                if tick.action is TickAction.SKIP:
                    return Fired(True)
                rows = list(await conn.execute_fetchall(SQL["get_schedule"], (tick.schedule,)))
                job_id = await self._insert_job(conn, schedule_of(rows[0]))
                params = {"name": tick.schedule, "fire_at": tick.fire_at, "job_id": job_id}
                await conn.execute(SQL["tick_job"], params)
                await conn.execute(SQL["schedule_job"], params)
                return Fired(True, job_id)
        except _Lost:
            return Fired(False)

    async def _take(self, conn: aiosqlite.Connection, tick: Tick) -> bool:
        """Move the schedule's last_fire_at forward to the tick, then insert the tick's row;
        False (the caller rolls back) when either changed nothing."""
        from queuectl.schedules import KEEP_TICKS

        params = {"name": tick.schedule, "fire_at": tick.fire_at, "keep": KEEP_TICKS - 1}
        if (await conn.execute(SQL["take_tick"], params)).rowcount == 0:
            return False
        if (await conn.execute(SQL["insert_tick"], params)).rowcount == 0:
            return False
        await conn.execute(SQL["prune_ticks"], params)
        return True

    async def _insert_job(self, conn: aiosqlite.Connection, schedule: Schedule) -> str:
        """The tick's job, inserted as `enqueue` inserts one."""
        [job_id] = await self._insert_planned(conn, plan([schedule.job_spec()]))
        return job_id


def schedule_of(row: sqlite3.Row) -> Schedule:
    from queuectl.schedules import Schedule

    return Schedule(
        name=row["name"],
        cron=row["cron"],
        tz=row["tz"],
        job=json.loads(row["spec"]),
        no_overlap=bool(row["no_overlap"]),
        paused=bool(row["paused"]),
        created_at=row["created_at"],
        last_fire_at=row["last_fire_at"],
        last_job_id=row["last_job_id"],
        last_job_state=row["last_job_state"],
    )
