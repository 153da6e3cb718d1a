"""The engine's housekeeping in-process, on a real SQLite queue: its pace, a pass that fails,
and the engine's watch over it (end to end, with real engines: tests/test_cli_manage.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from helpers import ManualClock, async_wait_for, spec

from queuectl.config import Config
from queuectl.engine.dispatch import Engine
from queuectl.engine.housekeeping import INTERVAL, MIN_INTERVAL, Housekeeping, interval
from queuectl.errors import QueuectlError, StorageError
from queuectl.models import Outcome
from queuectl.states import ErrorKind, JobState, next_state
from queuectl.store import Finish, Store, open_store


def test_the_pace_follows_the_shortest_retention() -> None:
    assert interval(Config()) == INTERVAL
    assert interval(Config(retention=7 * 86400.0)) == INTERVAL
    assert interval(Config(retention=3600.0, output_retention=120.0)) == 30.0
    assert interval(Config(output_retention=2.0)) == MIN_INTERVAL


async def _completed(store: Store, job_id: str) -> None:
    [job] = await store.claim("e", 1, 30.0)
    assert job.id == job_id
    outcome = Outcome(exit_code=0, stdout=b"out")
    assert await store.finish_many([Finish(job, next_state(job, outcome, 1.0), outcome)])


async def test_one_pass_applies_both_retentions(home: Path) -> None:
    clock = ManualClock()
    store = await open_store(home, clock=clock)
    try:
        await store.enqueue([spec(id="old"), spec(id="mid"), spec(id="waiting")])
        await _completed(store, "mid")
        await _completed(store, "old")
        clock.advance(100)
        keeper = Housekeeping(store)
        await keeper.run_once(Config(retention=200.0, output_retention=50.0))
        assert (keeper.purged, keeper.dropped) == (0, 2)
        await keeper.run_once(Config(retention=50.0))
        assert keeper.purged == 2
        assert [job.id for job in await store.list_jobs(None, 10)] == ["waiting"]
        await keeper.run_once(Config())  # none set: nothing to do
        assert (keeper.purged, keeper.dropped) == (2, 2)
    finally:
        await store.close()


async def test_a_failed_pass_is_logged_and_tried_again(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(home)
    try:
        keeper = Housekeeping(store)
        calls = 0

        async def flaky(config: Config) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise StorageError("disk full")

        keeper.run_once = flaky  # type: ignore[method-assign]
        await store.set_config("retention", 1.0)  # the fastest pace
        with caplog.at_level(logging.ERROR, logger="queuectl.engine"):
            task = asyncio.create_task(keeper.keep())
            await async_wait_for(lambda: calls >= 2, timeout=5)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert "housekeeping failed (tried again later): disk full" in caplog.text
    finally:
        await store.close()


async def test_a_dead_housekeeper_stops_the_engine_and_its_jobs(home: Path) -> None:
    """Housekeeping that no longer runs would let the queue grow without bound: the engine says
    so and stops, its running jobs killed (back to pending), as when the lease keeper dies."""
    store = await open_store(home)
    try:
        await store.enqueue([spec("sleep 30", id="long")])
        engine = Engine(store, 2)

        async def broken() -> None:
            await async_wait_for(
                lambda: engine.running.get("long") and engine.running["long"].process
            )
            raise RuntimeError("housekeeping bug")

        engine.housekeeping.keep = broken  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(QueuectlError, match=r"housekeeping failed \(housekeeping bug\)"):
            await asyncio.wait_for(engine.run(), 20)
        assert time.monotonic() - started < 15, "the engine waited for the job instead"
        job = await store.get("long")
        assert job.state is JobState.PENDING and job.attempts == 0
        [attempt] = await store.attempts("long")
        assert attempt.error_kind is ErrorKind.INTERRUPTED
    finally:
        await store.close()
