"""Contract tests of the Store's cron schedules, on every backend (as tests/test_store.py runs
its suite): adding, listing, pausing and removing them, and taking a tick exactly once, also
when several stores (other engines' views) try the same tick at the same time.

Every store of a test reads one injected ManualClock; the engine's pass (engine/scheduler.py
fire_due) is driven on it, so catch-up and --no-overlap are exact and need no real minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import test_store
from helpers import ManualClock, spec
from test_store import T0, Opener

from queuectl.engine.scheduler import fire_due
from queuectl.errors import BadInput, ScheduleNotFound
from queuectl.models import Outcome
from queuectl.schedules import Fired, Schedule, Tick, TickAction
from queuectl.states import JobState, next_state
from queuectl.store import Finish, Store

MINUTE = 60.0


# the store contract's fixtures (tests/test_store.py): each test runs on every backend, every
# store of a test on one ManualClock at T0
backend, clock, open_queue, store = (
    test_store.backend,
    test_store.clock,
    test_store.open_queue,
    test_store.store,
)


def every_minute(name: str = "s", **fields: Any) -> Schedule:
    made = Schedule(name=name, cron="* * * * *", tz="UTC", job={"command": "echo tick", "cwd": "/"})
    return dataclasses.replace(made, **fields)


async def one(store: Store, name: str = "s") -> Schedule:
    [found] = [s for s in (await store.list_schedules()).items if s.name == name]
    return found


async def complete(store: Store, job_id: str) -> None:
    """Run the job to completion as an engine would."""
    [job] = await store.claim("e1", 1, 30.0)
    assert job.id == job_id
    outcome = Outcome(None, exit_code=0)
    assert await store.finish_many([Finish(job, next_state(job, outcome, 1.0), outcome)]) == [True]


class TestSchedules:
    # --- managing them --------------------------------------------------------------------

    async def test_add_and_list(self, store: Store, clock: ManualClock) -> None:
        assert (await store.list_schedules()).items == ()
        job = {"command": "make report", "cwd": "/srv", "env": {"A": "1"}, "priority": 3}
        await store.add_schedule(
            Schedule("report", "0 9 * * 1-5", "Europe/Berlin", job, no_overlap=True)
        )
        await store.add_schedule(every_minute("a-first"))
        clock.advance(5)
        listed = await store.list_schedules()
        assert listed.now == T0 + 5
        assert [s.name for s in listed.items] == ["a-first", "report"]  # by name
        report = listed.items[1]
        assert (report.cron, report.tz, report.job) == ("0 9 * * 1-5", "Europe/Berlin", job)
        assert report.no_overlap and not report.paused
        assert report.created_at == T0  # the store's clock
        assert report.last_fire_at is report.last_job_id is report.last_job_state is None
        assert listed.items[0].next_fire(listed.now) == T0 + MINUTE

    async def test_a_name_is_taken_once(self, store: Store) -> None:
        await store.add_schedule(every_minute("dup"))
        with pytest.raises(BadInput, match="'dup' already exists"):
            await store.add_schedule(every_minute("dup", cron="0 0 * * *"))
        assert (await one(store, "dup")).cron == "* * * * *"

    async def test_remove(self, store: Store) -> None:
        await store.add_schedule(every_minute("gone"))
        await store.add_schedule(every_minute("kept"))
        fired = await store.fire_tick(Tick("gone", T0, TickAction.ENQUEUE))
        assert fired.taken and fired.job_id is not None
        await store.remove_schedule("gone")
        assert [s.name for s in (await store.list_schedules()).items] == ["kept"]
        assert (await store.get(fired.job_id)).state is JobState.PENDING  # its jobs stay
        with pytest.raises(ScheduleNotFound, match="'gone' not found"):
            await store.remove_schedule("gone")
        assert not (await store.fire_tick(Tick("gone", T0 + MINUTE, TickAction.ENQUEUE))).taken

    async def test_unknown_names_are_bad_input(self, store: Store) -> None:
        for call in (
            store.remove_schedule("nope"),
            store.set_schedule_paused("nope", True),
            store.set_schedule_paused("nope", False),
        ):
            with pytest.raises(ScheduleNotFound) as caught:
                await call
            assert isinstance(caught.value, BadInput)

    async def test_a_name_removed_and_added_again_starts_afresh(self, store: Store) -> None:
        await store.add_schedule(every_minute())
        assert (await store.fire_tick(Tick("s", T0 + MINUTE, TickAction.ENQUEUE))).taken
        await store.remove_schedule("s")
        await store.add_schedule(every_minute())
        assert (await one(store)).last_fire_at is None
        again = await store.fire_tick(Tick("s", T0 + MINUTE, TickAction.ENQUEUE))
        assert again.taken  # its old tick was forgotten with it

    # --- taking a tick ----------------------------------------------------------------------

    async def test_a_tick_enqueues_the_schedules_job(self, store: Store) -> None:
        job = {
            "command": "echo hi",
            "cwd": "/tmp",
            "env": {"K": "v"},
            "priority": 7,
            "max_retries": 0,
            "timeout": 30.0,
        }
        await store.add_schedule(Schedule("s", "* * * * *", "UTC", job))
        fired = await store.fire_tick(Tick("s", T0 + MINUTE, TickAction.ENQUEUE))
        assert fired.taken and fired.job_id is not None
        made = await store.get(fired.job_id)
        assert (made.command, made.cwd, made.env) == ("echo hi", "/tmp", {"K": "v"})
        assert (made.priority, made.max_retries, made.timeout) == (7, 0, 30.0)
        assert made.label == "schedule:s"  # none given
        assert made.state is JobState.PENDING and made.created_at == T0
        s = await one(store)
        assert (s.last_fire_at, s.last_job_id, s.last_job_state) == (
            T0 + MINUTE,
            fired.job_id,
            "pending",
        )

    async def test_the_jobs_take_the_configured_defaults_and_their_own_label(
        self, store: Store
    ) -> None:
        await store.set_config("max-retries", 9)
        job = {"command": "true", "cwd": "/", "label": "nightly"}
        await store.add_schedule(Schedule("s", "* * * * *", "UTC", job))
        fired = await store.fire_tick(Tick("s", T0 + MINUTE, TickAction.ENQUEUE))
        assert fired.job_id is not None
        made = await store.get(fired.job_id)
        assert (made.max_retries, made.label) == (9, "nightly")

    async def test_a_tick_is_taken_once(self, open_queue: Opener) -> None:
        mine, theirs = await open_queue(), await open_queue()
        await mine.add_schedule(every_minute())
        tick = Tick("s", T0 + MINUTE, TickAction.ENQUEUE)
        assert (await mine.fire_tick(tick)).taken
        assert await theirs.fire_tick(tick) == Fired(False)
        assert await mine.fire_tick(tick) == Fired(False)
        assert sum((await mine.counts()).values()) == 1

    async def test_many_stores_taking_one_tick_at_once_enqueue_it_once(
        self, open_queue: Opener
    ) -> None:
        stores = [await open_queue() for _ in range(6)]
        await stores[0].add_schedule(every_minute())
        for minute in range(1, 4):
            tick = Tick("s", T0 + minute * MINUTE, TickAction.ENQUEUE)
            results = await asyncio.gather(*(store.fire_tick(tick) for store in stores))
            assert sum(result.taken for result in results) == 1, results
        jobs = await stores[0].list_jobs(None, 100)
        assert len(jobs) == 3
        assert (await one(stores[0])).last_job_id == jobs[0].id  # the newest

    async def test_an_earlier_tick_is_never_taken_after_a_later_one(self, store: Store) -> None:
        """An engine that read the schedule before another took a later tick (a catch-up)
        must not take the earlier one: that would be a second run."""
        await store.add_schedule(every_minute())
        assert (await store.fire_tick(Tick("s", T0 + 5 * MINUTE, TickAction.ENQUEUE))).taken
        stale = await store.fire_tick(Tick("s", T0 + 4 * MINUTE, TickAction.ENQUEUE))
        assert stale == Fired(False)
        assert sum((await store.counts()).values()) == 1
        assert (await one(store)).last_fire_at == T0 + 5 * MINUTE

    async def test_a_skipped_tick_is_taken_with_no_job(self, store: Store) -> None:
        await store.add_schedule(every_minute())
        first = await store.fire_tick(Tick("s", T0 + MINUTE, TickAction.ENQUEUE))
        skipped = await store.fire_tick(Tick("s", T0 + 2 * MINUTE, TickAction.SKIP))
        assert skipped == Fired(True, None)
        s = await one(store)
        assert (s.last_fire_at, s.last_job_id) == (T0 + 2 * MINUTE, first.job_id)
        assert sum((await store.counts()).values()) == 1
        again = await store.fire_tick(Tick("s", T0 + 2 * MINUTE, TickAction.ENQUEUE))
        assert again == Fired(False)  # a skipped tick is not tried again

    async def test_a_paused_schedule_takes_no_tick(self, store: Store) -> None:
        await store.add_schedule(every_minute())
        await store.set_schedule_paused("s", True)
        assert (await one(store)).paused
        assert (await store.fire_tick(Tick("s", T0 + MINUTE, TickAction.ENQUEUE))) == Fired(False)
        assert sum((await store.counts()).values()) == 0

    async def test_resume_skips_the_ticks_that_fell_while_paused(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.add_schedule(every_minute())
        await store.set_schedule_paused("s", True)
        await store.set_schedule_paused("s", True)  # pausing twice changes nothing
        clock.advance(10 * MINUTE + 30)
        assert (await fire_due(store))[0] == []
        await store.set_schedule_paused("s", False)
        s = await one(store)
        assert not s.paused and s.last_fire_at == T0 + 10 * MINUTE  # taken as skipped
        assert (await fire_due(store))[0] == []  # no catch-up run for the pause
        clock.advance(30)
        fired, _ = await fire_due(store)
        assert [(t.fire_at, f.taken) for t, f in fired] == [(T0 + 11 * MINUTE, True)]

    # --- the engine's pass over the schedules, on the store's clock ---------------------------

    async def test_fire_due_says_when_to_look_again(self, store: Store, clock: ManualClock) -> None:
        assert await fire_due(store) == ([], None)
        await store.add_schedule(every_minute())
        clock.advance(20)
        assert await fire_due(store) == ([], 40.0)
        clock.advance(40)
        fired, delay = await fire_due(store)
        assert [(t.fire_at, t.action, f.taken) for t, f in fired] == [
            (T0 + MINUTE, TickAction.ENQUEUE, True)
        ]
        assert delay == 60.0

    async def test_missed_ticks_give_one_catch_up_run(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.add_schedule(every_minute())
        clock.advance(3 * 3600 + 15)  # no engine for three hours: 180 ticks missed
        fired, delay = await fire_due(store)
        assert [t.fire_at for t, _ in fired] == [T0 + 3 * 3600]  # the latest missed tick
        assert delay == 45.0
        assert (await fire_due(store))[0] == []
        assert sum((await store.counts()).values()) == 1

    async def test_no_overlap_skips_while_the_previous_job_is_unfinished(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.add_schedule(every_minute(no_overlap=True))
        clock.advance(MINUTE)
        [(_, first)] = (await fire_due(store))[0]
        assert first.job_id is not None
        clock.advance(MINUTE)  # the first job still pending
        [(tick, skipped)] = (await fire_due(store))[0]
        assert tick.action is TickAction.SKIP and skipped == Fired(True, None)
        await complete(store, first.job_id)
        assert (await one(store)).last_job_state == "completed"
        assert (await fire_due(store))[0] == []  # the skipped tick is not retried
        clock.advance(MINUTE)
        [(tick, second)] = (await fire_due(store))[0]
        assert tick.action is TickAction.ENQUEUE and second.job_id not in (None, first.job_id)

    async def test_without_no_overlap_ticks_enqueue_while_a_job_waits(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.add_schedule(every_minute())
        for _ in range(3):
            clock.advance(MINUTE)
            await fire_due(store)
        assert (await store.counts())[JobState.PENDING] == 3

    async def test_a_schedules_job_is_an_ordinary_job(self, store: Store) -> None:
        """The tick's job goes where `enqueue`'s go: the claim takes it."""
        await store.enqueue([spec("other", id="other", priority=-1)])
        await store.add_schedule(every_minute())
        fired = await store.fire_tick(Tick("s", T0, TickAction.ENQUEUE))
        [claimed] = await store.claim("e1", 1, 30.0)
        assert claimed.id == fired.job_id

    async def test_a_schedules_job_goes_to_its_named_queue(self, store: Store) -> None:
        job = {"command": "true", "cwd": "/", "queue": "reports"}
        await store.add_schedule(Schedule("s", "* * * * *", "UTC", job))
        fired = await store.fire_tick(Tick("s", T0, TickAction.ENQUEUE))
        assert fired.job_id is not None
        assert (await store.get(fired.job_id)).queue == "reports"
