"""The scheduler: the engine's side task that enqueues the due ticks of the cron schedules.

It wakes at the next fire time of any schedule (and at least every MAX_SLEEP, so that a
schedule added or resumed meanwhile is seen), takes each due tick through the store, and wakes
the dispatcher when it enqueued a job. Every engine of a database runs one: the store takes
each tick in one guarded transaction, so however many engines try, one enqueues it
(store/postgres_schedule.py); the others change nothing. The decision of which tick is due is
schedules.due_tick's, on the store's "now" (the database's clock), not this host's.

Watched like housekeeping: a failed pass (a lost connection, a busy database) is logged and
tried again at the next wake; only a bug escapes, and the engine then stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from queuectl.errors import ConnectionLost, QueuectlError
from queuectl.schedules import Fired, Tick, TickAction, due_tick, seconds_to_next
from queuectl.store import Store

log = logging.getLogger("queuectl.engine")

#: seconds between looks at the schedules at most: a new or resumed schedule is seen within it
MAX_SLEEP = 10.0
#: and at least, after a pass (a clock a little behind the database's wakes a little early)
MIN_SLEEP = 0.05
#: past the fire time: the database's "now" must have reached it when the pass reads it
SLACK = 0.01


async def fire_due(store: Store) -> tuple[list[tuple[Tick, Fired]], float | None]:
    """One pass: take every due tick; what each came to, and the seconds until the next fire
    time (None: no schedule will fire)."""
    schedules = await store.list_schedules()
    fired: list[tuple[Tick, Fired]] = []
    for schedule in schedules.items:
        tick = due_tick(schedule, schedules.now)
        if tick is None:
            continue
        try:
            fired.append((tick, await store.fire_tick(tick)))
        except QueuectlError as exc:  # this schedule's, or the store's: the others go on
            log.error(
                "schedule %s: could not take its tick (tried again later): %s", tick.schedule, exc
            )
    if fired:  # their last_fire_at moved: the next fire times are read again
        schedules = await store.list_schedules()
    return fired, seconds_to_next(schedules)


class Scheduler:
    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        self.store = store
        self.wake = wake
        self.enqueued = 0  # jobs enqueued by this engine's scheduler since it started
        self.skipped = 0  # ticks it skipped for --no-overlap

    async def keep(self) -> None:
        """A pass at once, then one at each next fire time, until cancelled."""
        while True:
            delay = MAX_SLEEP
            try:
                delay = await self.run_once()
            except ConnectionLost as exc:  # the dispatcher reports the outage, once
                log.debug("could not read the schedules (tried again later): %s", exc)
            except QueuectlError as exc:
                log.error("scheduling failed (tried again later): %s", exc)
            await asyncio.sleep(delay)

    async def run_once(self) -> float:
        """A pass; how long to sleep until the next one."""
        fired, delay = await fire_due(self.store)
        for tick, result in fired:
            if not result.taken:
                continue  # another engine took it first
            if tick.action is TickAction.SKIP:
                self.skipped += 1
                log.info("schedule %s: tick skipped, its previous job is unfinished", tick.schedule)
            else:
                self.enqueued += 1
                log.info("schedule %s: enqueued %s", tick.schedule, result.job_id)
        if any(result.job_id is not None for _, result in fired):
            self.wake()
        if delay is None:
            return MAX_SLEEP
        return min(max(delay + SLACK, MIN_SLEEP), MAX_SLEEP)
