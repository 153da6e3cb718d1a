"""Store.ended_since, the statistics' narrow read, against finished_since on every backend: the
same jobs in the same order, only their state and run times; the window and the limit hold."""

from __future__ import annotations

import pytest
from helpers import ManualClock, failure, spec, store_on

from queuectl.models import Ended, Outcome
from queuectl.states import JobState, next_state
from queuectl.store import Finish

T0 = 1_800_000_000.0


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"])
async def test_ended_since_is_finished_since_narrowed(backend_name: str) -> None:
    clock = ManualClock(T0)
    async with store_on(backend_name, clock) as store:
        outcomes = [Outcome(), failure(), failure(permanent=True)]
        await store.enqueue([spec(id=f"j{n}", max_retries=1, priority=-n) for n in range(9)])
        await store.enqueue([spec(id="waiting", priority=-100)])  # never ends: in neither read
        for n in range(9):
            clock.advance(10.0)
            [job] = await store.claim("engine", 1, 30.0)
            clock.advance(1.0 + n)
            outcome = outcomes[n % 3]
            await store.finish_many([Finish(job, next_state(job, outcome, 3600.0), outcome)])
        full = await store.finished_since(T0, 100)
        assert {job.state for job in full} == {
            JobState.COMPLETED, JobState.FAILED, JobState.DEAD
        }  # fmt: skip
        assert len(full) == 9 and "waiting" not in {job.id for job in full}
        ended = await store.ended_since(T0, 100)
        assert ended == [Ended(j.state, j.started_at, j.finished_at) for j in full]
        assert [e.finished_at - (e.started_at or 0.0) for e in ended[::3]] == [9.0, 6.0, 3.0]
        since = full[3].finished_at
        assert since is not None
        assert await store.ended_since(since, 100) == ended[:4]  # the window
        assert await store.ended_since(T0, 2) == ended[:2]  # the limit, newest first
