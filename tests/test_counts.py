"""The job counters (issue 14): `counts()` and the per-queue counts of `queues()` are read from
counters that triggers keep in the transaction of each change, never from a count of the
jobs. After every kind of change, and after random sequences of them, on every backend, they
must equal a count of the jobs as listed. PostgreSQL's concurrency and both backends'
migrations are in test_counts_pg.py and test_counts_migrate.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import ManualClock, failure, spec, store_on
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuectl.errors import QueuectlError
from queuectl.models import Outcome
from queuectl.schedules import Schedule, Tick, TickAction
from queuectl.states import AT_REST, CANCELABLE, RESTARTABLE, JobState, next_state
from queuectl.store import Finish, JobChanges, Store

T0 = 1_800_000_000.0
LEASE = 30.0
BACKENDS = ["sqlite", "postgres"]
QUEUES = ["default", "a", "b"]


async def assert_exact(store: Store, where: str = "") -> None:
    """counts() and queues() agree with the jobs as listed (which counts every row)."""
    jobs = await store.list_jobs(None, 1_000_000_000)
    by_state = Counter(job.state for job in jobs)
    assert await store.counts() == {s: by_state[s] for s in JobState}, where
    by_queue = Counter((job.queue, job.state) for job in jobs)
    want = {q: {s: by_queue[q, s] for s in JobState} for q in {job.queue for job in jobs}}
    listed = {info.name: info.counts for info in await store.queues()}
    assert {name: counts for name, counts in listed.items() if name in want} == want, where
    # a queue without jobs is listed only for its limit or pause, with nothing in it
    assert all(not any(listed[name].values()) for name in listed.keys() - want.keys()), where


OUTCOMES = {"ok": Outcome(), "fail": failure(), "dead": failure(permanent=True)}


async def end(store: Store, kind: str, limit: int, queues: list[str] | None = None) -> None:
    """Claim up to `limit` jobs and end them all alike (dead: a permanent failure), in one
    finish_many, as an engine's group commit does."""
    outcome = OUTCOMES[kind]
    jobs = await store.claim("engine", limit, LEASE, queues)
    await store.finish_many([Finish(job, next_state(job, outcome, 0.0), outcome) for job in jobs])


Step = Callable[[Store, ManualClock], Awaitable[object]]


async def _enqueue(store: Store, clock: ManualClock) -> None:
    await store.enqueue(
        [spec(id=f"j{n}", queue=QUEUES[n % 3], priority=n) for n in range(9)]
        + [spec(id="dead0", max_retries=0, priority=100), spec(id="u1", unique_key="k")]
        + [spec(id="P", priority=-5), spec(id="C1", after=("P",)), spec(id="C2", after=("C1",))]
        + [spec(id="Q", priority=-5, queue="b"), spec(id="D", after=("Q",), queue="a")]
    )
    await store.enqueue([spec(id="u2", unique_key="k")])  # the key is live: nothing made


async def _rescue(store: Store, clock: ManualClock) -> None:
    await store.claim("lost", 2, LEASE)
    clock.advance(LEASE + 1)
    async with store.rescuing():
        orphans = await store.orphans("rescuer")
        outcome = failure(error="the engine running the job died")
        await store.finish_many([Finish(j, next_state(j, outcome, 0.0), outcome) for j in orphans])


async def _schedule(store: Store, clock: ManualClock) -> None:
    job = {"command": "echo tick", "cwd": "/", "queue": "s"}
    await store.add_schedule(Schedule("tick", "* * * * *", "UTC", job))
    await store.fire_tick(Tick("tick", T0 + 60, TickAction.ENQUEUE))


async def _delete_parent(store: Store, clock: ManualClock) -> None:
    await store.enqueue([spec(id="R", run_at=T0 + 9999), spec(id="E", after=("R",))])
    await store.delete(["R"])  # its blocked child is canceled


async def _doomed(store: Store, clock: ManualClock) -> None:
    await store.enqueue([spec(id="late", after=("Q",))])  # Q was canceled: so is this


async def pick(store: Store, states: set[JobState], count: int) -> list[str]:
    """Ids of `count` jobs in `states` (some there must be: a step must change something)."""
    found = sorted(job.id for job in await store.list_jobs(None, 1000) if job.state in states)
    assert found, f"no job in {states}"
    return found[:count]


async def _retry_one(store: Store, clock: ManualClock) -> None:
    await store.retry_dead(await pick(store, {JobState.DEAD}, 1))


async def _cancel_many(store: Store, clock: ManualClock) -> None:
    await store.cancel_many(await pick(store, {JobState.PENDING, JobState.FAILED}, 2))


async def _restart(store: Store, clock: ManualClock) -> None:
    await store.restart(await pick(store, {JobState.COMPLETED, JobState.DEAD}, 2))


async def _edit(store: Store, clock: ManualClock) -> None:
    await store.edit((await pick(store, {JobState.PENDING}, 1))[0], JobChanges(priority=50))


async def _delete(store: Store, clock: ManualClock) -> None:
    await store.delete(await pick(store, {JobState.COMPLETED, JobState.CANCELED}, 2))


STEPS: list[tuple[str, Step]] = [
    ("enqueue", _enqueue),
    ("finish, dead", lambda s, c: end(s, "dead", 2)),
    ("claim", lambda s, c: s.claim("lost", 3, LEASE)),
    ("finish, some failed", lambda s, c: end(s, "fail", 4)),
    ("finish, completed", lambda s, c: end(s, "ok", 5)),
    ("parent completed", lambda s, c: end(s, "ok", 20, ["default"])),
    ("parent canceled", lambda s, c: s.cancel("Q")),
    ("cancel_many", _cancel_many),
    ("retry_dead ids", _retry_one),
    ("finish, dead again", lambda s, c: end(s, "dead", 3)),
    ("retry every dead job", lambda s, c: s.retry_dead(None)),
    ("restart", _restart),
    ("restart_in_state", lambda s, c: s.restart_in_state(JobState.CANCELED)),
    ("edit", _edit),
    ("cancel_in_state", lambda s, c: s.cancel_in_state(JobState.PENDING)),
    ("lease rescue", _rescue),
    ("delete a parent", _delete_parent),
    ("enqueue after an ended parent", _doomed),
    ("schedule tick", _schedule),
    ("delete", _delete),
    ("purge", lambda s, c: s.purge([JobState.COMPLETED, JobState.CANCELED], None)),
    ("purge one queue", lambda s, c: s.purge([JobState.PENDING], None, queue="s")),
]


@pytest.mark.parametrize("name", BACKENDS)
async def test_counts_are_exact_after_each_kind_of_change(name: str) -> None:
    clock = ManualClock(T0)
    async with store_on(name, clock) as store:
        for step, run in STEPS:
            await run(store, clock)
            clock.advance(1.0)
            await assert_exact(store, f"after {step}")
        assert sum((await store.counts()).values()) > 0  # not a queue emptied by the steps


# --- random sequences -------------------------------------------------------------------------

picks = st.lists(st.integers(0, 1000), min_size=1, max_size=4)

OPS = st.one_of(
    st.tuples(st.just("enqueue"), st.integers(1, 5), st.sampled_from(QUEUES), st.booleans()),
    st.tuples(st.just("end"), st.sampled_from(sorted(OUTCOMES)), st.integers(1, 6)),
    st.tuples(st.just("claim"), st.integers(1, 3)),
    st.tuples(st.just("cancel"), picks),
    st.tuples(st.just("delete"), picks),
    st.tuples(st.just("restart"), picks),
    st.tuples(st.just("retry_all")),
    st.tuples(st.just("purge"), st.sampled_from([None, *QUEUES])),
    st.tuples(st.just("rescue")),
)


#: the operations on jobs given by id, and the states of the jobs they take; a job in another
#: state is picked now and then (1 in 5) so that refusals happen too
TAKES: dict[str, Callable[[Store, list[str]], Awaitable[object]]] = {
    "cancel": lambda store, ids: store.cancel_many(ids),
    "delete": lambda store, ids: store.delete(ids),
    "restart": lambda store, ids: store.restart(ids),
}
TAKEN = {"cancel": CANCELABLE, "delete": AT_REST, "restart": RESTARTABLE}


async def chosen(store: Store, kind: str, picks: list[int]) -> list[str]:
    jobs = sorted(await store.list_jobs(None, 1000), key=lambda job: job.id)
    every = [job.id for job in jobs]
    fit = [job.id for job in jobs if job.state in TAKEN[kind]]
    found = []
    for n in picks:
        pool = every if n % 5 == 0 or not fit else fit
        found.append(pool[n % len(pool)] if pool else "none")
    return found


async def apply(store: Store, clock: ManualClock, op: tuple[Any, ...], made: list[int]) -> None:
    """One operation; a refused one (BadInput for a job in the wrong state, or a parent that
    was deleted) must change nothing, which the counts check as well."""
    kind, *args = op
    try:
        if kind == "enqueue":
            count, queue, chained = args
            first, made[0] = made[0], made[0] + count
            await store.enqueue(
                [
                    spec(id=f"r{n}", queue=queue, max_retries=1, after=after)
                    for n in range(first, made[0])
                    for after in [(f"r{n - 1}",) if chained and n > first else ()]
                ]
            )
        elif kind == "end":
            await end(store, *args)
        elif kind == "claim":
            await store.claim("lost", args[0], LEASE)
        elif kind in TAKES:
            await TAKES[kind](store, await chosen(store, kind, args[0]))
        elif kind == "retry_all":
            await store.retry_dead(None)
        elif kind == "purge":
            ended = [JobState.COMPLETED, JobState.CANCELED, JobState.DEAD]
            await store.purge(ended, None, queue=args[0])
        else:
            await _rescue(store, clock)
    except QueuectlError:
        pass
    clock.advance(1.0)


def _sequences(name: str) -> None:
    @settings(
        max_examples=60 if name == "sqlite" else 25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ops=st.lists(OPS, min_size=5, max_size=30))
    def run(ops: list[tuple[Any, ...]]) -> None:
        async def body() -> None:
            clock = ManualClock(T0)
            async with store_on(name, clock) as store:
                made = [0]
                for n, op in enumerate(ops):
                    await apply(store, clock, op, made)
                    await assert_exact(store, f"after step {n}: {op}")

        asyncio.run(body())

    run()


@pytest.mark.parametrize("name", BACKENDS)
def test_counts_are_exact_after_random_sequences(name: str) -> None:
    _sequences(name)
