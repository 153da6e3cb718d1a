"""The engine's parts in-process, on a real SQLite queue with real job processes: the watch
over side tasks, the event fan-out, and fenced (late) results."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from helpers import async_wait_for, spec

from queuectl.config import Config
from queuectl.engine.dispatch import Engine
from queuectl.engine.events import EventKind, JobEvent
from queuectl.errors import QueuectlError
from queuectl.models import Outcome
from queuectl.states import ErrorKind, JobState
from queuectl.store import Store, open_store


async def test_a_dead_lease_keeper_stops_the_engine_and_its_jobs(home: Path) -> None:
    """If leases were no longer renewed, another engine could take the jobs over while they
    still run here: the engine must say so and stop, killing its jobs (back to pending)."""
    store = await open_store(home)
    try:
        await store.enqueue([spec("sleep 30", id="long")])
        engine = Engine(store, 2)

        async def broken_keeper(config: Config) -> None:
            await async_wait_for(
                lambda: engine.running.get("long") and engine.running["long"].process
            )
            raise RuntimeError("renewal bug")

        engine.leases.keep = broken_keeper  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(QueuectlError, match=r"lease renewal failed \(renewal bug\)"):
            await asyncio.wait_for(engine.run(), 20)
        assert time.monotonic() - started < 15, "the engine waited for the job instead"
        job = await store.get("long")
        assert job.state is JobState.PENDING and job.attempts == 0
        [attempt] = await store.attempts("long")
        assert attempt.error_kind is ErrorKind.INTERRUPTED
    finally:
        await store.close()


async def test_events_report_each_start_and_transition(home: Path) -> None:
    store = await open_store(home)
    try:
        await store.set_config("backoff-base", 1.0)
        await store.set_config("backoff-jitter", 0.0)
        await store.enqueue([spec("true", id="ok"), spec("exit 3", id="bad", max_retries=1)])
        engine = Engine(store, 4, until_empty=True)
        seen: list[JobEvent] = []
        engine.events.subscribe(seen.append)
        await asyncio.wait_for(engine.run(), 30)
    finally:
        await store.close()
    finished = {
        (e.job_id, e.attempt): (e.state, e.error_kind) for e in seen if e.kind is EventKind.FINISHED
    }
    assert finished == {
        ("ok", 1): (JobState.COMPLETED, None),
        ("bad", 1): (JobState.FAILED, ErrorKind.EXIT),
        ("bad", 2): (JobState.DEAD, ErrorKind.EXIT),
    }
    assert sorted((e.job_id, e.attempt) for e in seen if e.kind is EventKind.STARTED) == [
        ("bad", 1),
        ("bad", 2),
        ("ok", 1),
    ]
    assert (engine.completed, engine.failed) == (1, 2)


async def test_a_listener_that_raises_is_dropped_and_the_others_go_on(home: Path) -> None:
    store = await open_store(home)
    try:
        await store.enqueue([spec("true", id=f"j{i}") for i in range(3)])
        engine = Engine(store, 1, until_empty=True)
        calls: list[str] = []

        def broken(event: JobEvent) -> None:
            calls.append("broken")
            raise ValueError("listener bug")

        engine.events.subscribe(broken)
        good: list[JobEvent] = []
        engine.events.subscribe(good.append)
        await asyncio.wait_for(engine.run(), 30)
    finally:
        await store.close()
    assert calls == ["broken"]
    assert len([e for e in good if e.kind is EventKind.FINISHED]) == 3


async def test_a_late_result_is_fenced_counted_and_changes_nothing(home: Path) -> None:
    """A result for a run that is no longer the job's current one (it was rescued and ran
    again, or was already recorded) must not overwrite what is there."""
    store = await open_store(home)
    try:
        await store.enqueue([spec("true", id="j")])
        engine = Engine(store, 1)
        seen: list[JobEvent] = []
        engine.events.subscribe(seen.append)
        config = await store.config()
        [first] = await store.claim(engine.id, 1, 30.0)
        failed = Outcome(ErrorKind.EXIT, exit_code=1, error="exit code 1")
        await store.set_config("backoff-base", 1.0)
        assert await engine.executor.finish(first, failed, config, 0.1) is JobState.FAILED
        await async_wait_for(lambda: _claim_again(store, engine.id), timeout=10)
        assert await engine.executor.finish(first, Outcome(None, exit_code=0), config, 0.1) is None
        assert engine.executor.fenced == 1
        assert [e.kind for e in seen] == [EventKind.FINISHED, EventKind.FENCED]
        job = await store.get("j")
        assert (job.state, job.runs, job.lease_owner) == (JobState.PROCESSING, 2, engine.id)
        [_, second] = await store.attempts("j")
        assert second.finished_at is None and second.error_kind is None
    finally:
        await store.close()


async def _claim_again(store: Store, owner: str) -> bool:
    return bool(await store.claim(owner, 1, 30.0))
