"""Cron schedules, as every front end manages them: add, list, remove, pause, resume.

The running engines fire them (engine/scheduler.py); nothing here enqueues a tick's job. A
schedule's job is validated here by the rules of `enqueue`, once, so that every tick's job is
a valid one; its `now` is always the store's (the database's clock on PostgreSQL).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from queuectl.models import JobSpec
from queuectl.schedules import Cron, Schedule, Schedules, validate_name
from queuectl.service import Queue

#: the fields of a job spec that a schedule keeps for its jobs (an id or run-at time would be
#: the same for every tick; `queue` is kept once job specs have it)
JOB_FIELDS = ("command", "cwd", "env", "priority", "max_retries", "timeout", "label", "queue")


def job_fields(spec: JobSpec) -> dict[str, Any]:
    """The spec as the JSON fields a schedule stores (those of an `enqueue` JSON job): the
    command, the directory, and each option that is not the default (None for max_retries and
    timeout: the queue's config when the tick comes)."""
    defaults = JobSpec(command="", cwd="/")
    fields = dataclasses.asdict(spec)
    kept = {
        name: fields[name]
        for name in JOB_FIELDS
        if name in fields and fields[name] != getattr(defaults, name)
    }
    return kept | {"command": spec.command, "cwd": spec.cwd}


async def add(
    queue: Queue, name: str, cron: str, tz: str, spec: JobSpec, no_overlap: bool = False
) -> tuple[Schedule, float]:
    """Store a new schedule; the schedule as stored and the store's "now" (for its next fire
    time). Ticks count from now: the first is the first fire time after it."""
    timing = Cron.parse(cron, tz)
    schedule = Schedule(
        name=validate_name(name),
        cron=timing.expr,
        tz=timing.tz,
        job=job_fields(spec),
        no_overlap=no_overlap,
    )
    schedule.job_spec()  # the jobs it will enqueue pass `enqueue`'s checks (BadInput if not)
    async with queue.store() as store:
        await store.add_schedule(schedule)
        return _one(await store.list_schedules(), schedule.name)


async def remove(queue: Queue, name: str) -> None:
    """The schedule and its record of ticks; the jobs it enqueued stay in the queue."""
    async with queue.store(create=False) as store:
        await store.remove_schedule(name)


async def set_paused(queue: Queue, name: str, paused: bool) -> tuple[Schedule, float]:
    """Pause or resume; ticks that fall while paused are skipped (no catch-up on resume)."""
    async with queue.store(create=False) as store:
        await store.set_schedule_paused(name, paused)
        return _one(await store.list_schedules(), name)


async def list_schedules(queue: Queue) -> Schedules:
    async with queue.store(create=False) as store:
        return await store.list_schedules()


def _one(schedules: Schedules, name: str) -> tuple[Schedule, float]:
    [schedule] = [s for s in schedules.items if s.name == name]
    return schedule, schedules.now
