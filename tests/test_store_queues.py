"""Contract tests of the Store's named queues, on every backend (as tests/test_store.py runs
its suite): listing, limits and pauses, and the claim that honours them, also when several
stores (other engines' views of one PostgreSQL database) claim at the same time.

Every store of a test reads one injected ManualClock, so due times are exact.
"""

from __future__ import annotations

import asyncio

import pytest
import test_store
from helpers import Backend, ManualClock, spec
from test_store import LEASE, T0, Opener

from queuectl.errors import BadInput
from queuectl.models import Job, Outcome
from queuectl.states import JobState, next_state
from queuectl.store import Finish, JobFilter, Store

# the store contract's fixtures (tests/test_store.py): each test runs on every backend, every
# store of a test on one ManualClock at T0
backend, clock, open_queue, store = (
    test_store.backend,
    test_store.clock,
    test_store.open_queue,
    test_store.store,
)


async def fill(store: Store, queue: str, n: int, priority: int = 0, delay: float = 0.0) -> None:
    run_at = T0 + delay if delay else None
    await store.enqueue(
        [spec(id=f"{queue}-{i}", queue=queue, priority=priority, run_at=run_at) for i in range(n)]
    )


async def complete(store: Store, job: Job) -> None:
    outcome = Outcome(None, exit_code=0)
    assert await store.finish_many([Finish(job, next_state(job, outcome, 1.0), outcome)]) == [True]


def queues_of(jobs: list[Job]) -> list[str]:
    return sorted(job.queue for job in jobs)


class TestQueues:
    async def test_list_shows_queues_with_jobs_or_settings(self, store: Store) -> None:
        assert await store.queues() == []
        await fill(store, "a", 2)
        await fill(store, "b", 1)
        await store.set_queue("c", 3)
        await store.set_queue_paused("b", True)
        await store.claim("e1", 1, LEASE, queues=["a"])
        listed = {info.name: info for info in await store.queues()}
        assert list(listed) == ["a", "b", "c"]
        assert (listed["a"].concurrency, listed["a"].paused) == (None, False)
        assert listed["a"].counts[JobState.PENDING] == 1
        assert listed["a"].counts[JobState.PROCESSING] == 1
        assert set(listed["a"].counts) == set(JobState)
        assert (listed["b"].paused, listed["b"].counts[JobState.PENDING]) == (True, 1)
        assert (listed["c"].concurrency, sum(listed["c"].counts.values())) == (3, 0)

    async def test_a_setting_taken_back_leaves_no_row(self, store: Store) -> None:
        await store.set_queue("x", 2)
        await store.set_queue_paused("y", True)
        await store.set_queue("x", None)
        await store.set_queue_paused("y", False)
        assert await store.queues() == []

    @pytest.mark.parametrize("bad", [0, -1, 1_000_001])
    async def test_a_bad_limit_is_refused_and_changes_nothing(self, store: Store, bad: int) -> None:
        await store.set_queue("x", 2)
        with pytest.raises(BadInput, match="concurrency"):
            await store.set_queue("x", bad)
        [info] = await store.queues()
        assert info.concurrency == 2

    async def test_the_limit_bounds_the_claim(self, store: Store) -> None:
        await fill(store, "slow", 5, priority=9)
        await fill(store, "fast", 5)
        await store.set_queue("slow", 2)
        first = await store.claim("e1", 4, LEASE)
        # the limited queue ranks first, yet gives only its 2 slots; the rest come from "fast"
        assert queues_of(first) == ["fast", "fast", "slow", "slow"]
        second = await store.claim("e1", 10, LEASE)
        assert queues_of(second) == ["fast"] * 3
        slow = [job for job in first if job.queue == "slow"]
        await complete(store, slow[0])
        assert queues_of(await store.claim("e1", 10, LEASE)) == ["slow"]
        assert await store.claim("e1", 10, LEASE) == []

    async def test_a_raised_limit_gives_room_at_once(self, store: Store) -> None:
        await fill(store, "q", 5)
        await store.set_queue("q", 1)
        assert len(await store.claim("e1", 5, LEASE)) == 1
        await store.set_queue("q", 3)
        assert len(await store.claim("e1", 5, LEASE)) == 2
        await store.set_queue("q", None)
        assert len(await store.claim("e1", 5, LEASE)) == 2

    async def test_a_paused_queue_gives_nothing(self, store: Store) -> None:
        await fill(store, "held", 3, priority=5)
        await fill(store, "free", 2)
        await store.set_queue_paused("held", True)
        assert queues_of(await store.claim("e1", 5, LEASE)) == ["free", "free"]
        assert await store.claim("e1", 5, LEASE) == []
        assert await store.due_in() is None  # what waits cannot be claimed
        await store.set_queue_paused("held", False)
        assert queues_of(await store.claim("e1", 5, LEASE)) == ["held"] * 3

    async def test_the_queue_wide_pause_holds_over_queues(self, store: Store) -> None:
        await fill(store, "a", 2)
        await store.set_queue("a", 5)
        await store.set_paused(True)
        assert await store.claim("e1", 5, LEASE) == []
        assert await store.claim("e1", 5, LEASE, queues=["a"]) == []
        await store.set_paused(False)
        assert len(await store.claim("e1", 5, LEASE, queues=["a"])) == 2

    async def test_queues_restricts_the_claim(self, store: Store) -> None:
        await fill(store, "a", 2, priority=5)
        await fill(store, "b", 2)
        await fill(store, "c", 2)
        assert queues_of(await store.claim("e1", 10, LEASE, queues=["b", "c"])) == [
            "b",
            "b",
            "c",
            "c",
        ]
        assert await store.claim("e1", 10, LEASE, queues=["nope"]) == []
        assert queues_of(await store.claim("e1", 10, LEASE)) == ["a", "a"]

    async def test_the_claim_keeps_its_order_across_queues(self, store: Store) -> None:
        await store.enqueue(
            [
                spec(id="low", queue="a", priority=1),
                spec(id="high", queue="b", priority=9),
                spec(id="mid", queue="a", priority=5),
                spec(id="later", queue="b", priority=9, run_at=T0 + 60),
            ]
        )
        await store.set_queue("a", 5)
        jobs = await store.claim("e1", 10, LEASE)
        assert [job.id for job in jobs] == ["high", "mid", "low"]

    async def test_due_in_skips_full_and_unselected_queues(
        self, store: Store, clock: ManualClock
    ) -> None:
        await fill(store, "a", 2)
        await fill(store, "b", 1, delay=30)
        await store.set_queue("a", 1)
        assert await store.due_in() == 0
        await store.claim("e1", 1, LEASE, queues=["a"])
        assert await store.due_in() == 30  # "a" is full: only b's job, due later
        assert await store.due_in(queues=["a"]) is None
        assert await store.due_in(queues=["b"]) == 30

    async def test_due_jobs_behind_a_full_queue_are_claimed(self, store: Store) -> None:
        """The limited queue holds most of the due jobs, ranked first: the others still fill
        the claim (an engine given fewer jobs than it asked for goes idle)."""
        await fill(store, "big", 200, priority=9)
        await fill(store, "small", 3)
        await store.set_queue("big", 1)
        jobs = await store.claim("e1", 4, LEASE)
        assert queues_of(jobs) == ["big", "small", "small", "small"]

    async def test_filters_take_a_queue(self, store: Store) -> None:
        await fill(store, "a", 3)
        await fill(store, "b", 2)
        listed = [job async for job in store.iter_jobs(JobFilter(queue="b"))]
        assert sorted(job.id for job in listed) == ["b-0", "b-1"]
        assert await store.count_jobs(JobFilter(queue="a")) == 3
        assert await store.count_jobs(JobFilter(queue="none")) == 0


async def test_concurrent_claims_never_exceed_the_limit(
    backend: Backend, open_queue: Opener
) -> None:
    """Six stores (six engines' views) claim at the same instant, each for 3 jobs, from a queue
    limited to 3 that holds 60, again and again: each round, at most 3 are claimed in all, and
    the other queue's jobs still go to whoever asks."""
    if backend.name == "sqlite":
        pytest.skip("one engine per SQLite file: claims cannot overlap")
    stores = [await open_queue() for _ in range(6)]
    await fill(stores[0], "lim", 60, priority=5)
    await fill(stores[0], "other", 600)
    await stores[0].set_queue("lim", 3)
    done = 0
    for _ in range(40):
        claims = await asyncio.gather(*(s.claim(f"e{n}", 3, LEASE) for n, s in enumerate(stores)))
        limited = [job for jobs in claims for job in jobs if job.queue == "lim"]
        assert len(limited) <= 3, [len(jobs) for jobs in claims]
        for store, jobs in zip(stores, claims, strict=True):
            for job in jobs:
                await complete(store, job)
        done += len(limited)
        if done == 60:
            break
    assert done == 60
