"""PostgreSQL's job counters under concurrent writers: several stores (engines) claiming and
finishing at once while others enqueue and the counters are folded, and the counts stay exact
(test_counts.py checks every kind of change one at a time). These may talk SQL to the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pg
import pytest
from helpers import failure, spec
from test_counts import OUTCOMES, assert_exact

from queuectl.states import JobState, next_state
from queuectl.store import Finish, Store, open_store

LEASE = 30.0
ENGINES = 4
JOBS = 400


@pytest.fixture
async def db() -> AsyncIterator[str]:
    reason = pg.unavailable()
    if reason:
        pytest.skip(reason)
    url = pg.new_database()
    yield url
    pg.release_database(url)


async def work(store: Store, name: str, stop: asyncio.Event) -> int:
    """An engine's loop: claim up to 7, end them (each third fails, with a retry due at once,
    each seventh dies), in one finish_many; until told to stop and nothing is left."""
    done = 0
    while True:
        jobs = await store.claim(name, 7, LEASE)
        if not jobs:
            if stop.is_set():
                return done
            await asyncio.sleep(0.005)
            continue
        finishes = []
        for job in jobs:
            number = int(job.id.rsplit("-", 1)[1])
            kind = "dead" if number % 7 == 0 else "fail" if number % 3 == 0 else "ok"
            outcome = OUTCOMES[kind] if job.runs == 1 else OUTCOMES["ok"]
            finishes.append(Finish(job, next_state(job, outcome, 0.0), outcome))
        done += sum(await store.finish_many(finishes))


async def fold(url: str, stop: asyncio.Event) -> int:
    """Fold the counters again and again, as the triggers do now and then."""
    conn = await asyncpg.connect(url)
    folds = 0
    try:
        while not stop.is_set():
            await conn.execute("SELECT queuectl_fold_counts()")
            folds += 1
            await asyncio.sleep(0.002)
    finally:
        await conn.close()
    return folds


async def test_concurrent_engines_keep_the_counts_exact(db: str) -> None:
    stores = [await open_store(db, durable=False) for _ in range(ENGINES + 1)]
    feeder, engines = stores[0], stores[1:]
    stop = asyncio.Event()
    try:
        workers = [asyncio.create_task(work(s, f"e{n}", stop)) for n, s in enumerate(engines)]
        folder = asyncio.create_task(fold(db, stop))
        for batch in range(0, JOBS, 40):
            queue = "a" if batch % 80 else "b"
            await feeder.enqueue(
                [spec(id=f"j-{n}", queue=queue, max_retries=1) for n in range(batch, batch + 40)]
            )
            await asyncio.sleep(0.01)
        stop.set()
        ended = await asyncio.gather(*workers)
        assert await folder > 0
        assert sum(ended) >= JOBS
        await assert_exact(feeder, "after the engines")
        counts = await feeder.counts()
        assert counts == {**dict.fromkeys(counts, 0), **_expected()}
    finally:
        for store in stores:
            await store.close()


def _expected() -> dict[JobState, int]:
    dead = sum(1 for n in range(JOBS) if n % 7 == 0)
    return {JobState.DEAD: dead, JobState.COMPLETED: JOBS - dead}


async def test_the_counter_table_stays_small_and_folding_changes_no_count(db: str) -> None:
    """Deltas are folded now and then by the triggers themselves (1 statement in 100), so
    that a reader sums a few rows, not one per statement ever run."""
    store = await open_store(db, durable=False)
    conn = await asyncpg.connect(db)
    try:
        for n in range(600):  # 1,800 statements that move jobs, 3,000 deltas unfolded
            await store.enqueue([spec(id=f"s-{n}")])
            [job] = await store.claim("e", 1, LEASE)
            outcome = failure(permanent=True) if n % 2 else OUTCOMES["ok"]
            await store.finish_many([Finish(job, next_state(job, outcome, 0.0), outcome)])
        rows = await conn.fetchval("SELECT count(*) FROM queuectl_counts")
        assert rows < 2000, rows  # no fold in the last 1,200 statements: p = 0.99**1200
        before = await store.counts()
        await conn.execute("SELECT queuectl_fold_counts()")
        assert await conn.fetchval("SELECT count(*) FROM queuectl_counts") == 2
        assert await store.counts() == before
        await assert_exact(store)
    finally:
        await conn.close()
        await store.close()
