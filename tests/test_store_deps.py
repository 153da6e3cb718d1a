"""The store contract for dependencies (`after`) and unique keys, on every backend: a blocked
job waits for all its parents to complete, a parent that ends dead or canceled (or is deleted
before it completed) cancels its blocked subtree, and a unique key has at most one live job."""

from __future__ import annotations

import asyncio

import pytest
import test_store
from helpers import spec
from test_store import LEASE, Opener, claim_one, finish, success

from queuectl.errors import BadInput, DuplicateJobId
from queuectl.models import Outcome
from queuectl.states import ErrorKind, JobState
from queuectl.store import Store

# the store contract's fixtures: every test here runs on each backend, on the manual clock
backend, clock, open_queue, store = (
    test_store.backend,
    test_store.clock,
    test_store.open_queue,
    test_store.store,
)

B, P, C = JobState.BLOCKED, JobState.PENDING, JobState.CANCELED


async def states(store: Store, *ids: str) -> list[JobState]:
    return [(await store.get(job_id)).state for job_id in ids]


async def complete(store: Store, job_id: str) -> None:
    await finish(store, await claim_one(store, job_id), success())


async def bury(store: Store, job_id: str) -> None:
    """Make the job dead: it fails with no retry left."""
    job = await claim_one(store, job_id)
    await finish(store, job, Outcome(ErrorKind.EXIT, exit_code=1, error="exit code 1"))


class TestDependencies:
    async def test_a_diamond_runs_in_order(self, store: Store) -> None:
        await store.enqueue(
            [
                spec(id="a"),
                spec(id="b", after=("a",)),
                spec(id="c", after=("a",)),
                spec(id="d", after=("b", "c")),
            ]
        )
        assert await states(store, "a", "b", "c", "d") == [P, B, B, B]
        assert [job.id for job in await store.claim("e1", 10, LEASE)] == ["a"]  # only a
        await complete_claimed(store, "a")
        assert await states(store, "b", "c", "d") == [P, P, B]
        await complete(store, "b")
        assert await states(store, "d") == [B]  # c has not completed yet
        await complete(store, "c")
        assert await states(store, "d") == [P]
        assert await store.relatives("d") == (["b", "c"], [])
        assert await store.relatives("a") == ([], ["b", "c"])

    async def test_a_dead_parent_cancels_its_subtree_and_retrying_it_revives_nothing(
        self, store: Store
    ) -> None:
        await store.enqueue(
            [
                spec(id="a", max_retries=0),
                spec(id="b", after=("a",)),
                spec(id="c", after=("b",)),
                spec(id="other"),
            ]
        )
        await bury(store, "a")
        assert await states(store, "a", "b", "c", "other") == [JobState.DEAD, C, C, P]
        b, c = await store.get("b"), await store.get("c")
        assert b.last_error == "canceled: its parent a ended dead"
        assert c.last_error == "canceled: its parent b ended canceled"
        assert b.error_kind is ErrorKind.CANCELED
        await store.retry_dead(["a"])
        assert await states(store, "a", "b", "c") == [P, C, C]
        await store.restart(["b"])  # a child restarted waits again for its parents
        assert await states(store, "b", "c") == [B, C]
        await complete(store, "a")
        assert await states(store, "b") == [P]

    async def test_canceling_a_parent_cancels_its_blocked_children(self, store: Store) -> None:
        await store.enqueue([spec(id="a"), spec(id="b", after=("a",))])
        await store.cancel_many(["a"])
        assert await states(store, "a", "b") == [C, C]

    async def test_deleting_an_unfinished_parent_cancels_its_children(self, store: Store) -> None:
        await store.enqueue([spec(id="a"), spec(id="b", after=("a",)), spec(id="z")])
        await store.delete(["a"])
        assert await states(store, "b") == [C]
        assert "was deleted" in ((await store.get("b")).last_error or "")

    async def test_purging_a_completed_parent_leaves_its_waiting_siblings_alone(
        self, store: Store
    ) -> None:
        await store.enqueue([spec(id="a"), spec(id="b"), spec(id="c", after=("a", "b"))])
        await complete(store, "a")
        await store.delete(["a"])  # completed: nothing to cancel
        assert await states(store, "c") == [B]
        await complete(store, "b")
        assert await states(store, "c") == [P]

    async def test_parents_must_exist_and_nothing_is_stored_otherwise(self, store: Store) -> None:
        with pytest.raises(BadInput, match="'after' names 'ghost', which does not exist"):
            await store.enqueue([spec(id="x"), spec(id="y", after=("ghost",))])
        with pytest.raises(BadInput, match="after itself"):
            await store.enqueue([spec(id="self", after=("self",))])
        with pytest.raises(BadInput, match="does not exist"):  # a later line is not a parent
            await store.enqueue([spec(id="early", after=("late",)), spec(id="late")])
        assert await store.counts() == dict.fromkeys(JobState, 0)

    async def test_parents_already_over_decide_at_once(self, store: Store) -> None:
        await store.enqueue([spec(id="done"), spec(id="gone", max_retries=0)])
        await complete(store, "done")
        await bury(store, "gone")
        await store.enqueue(
            [
                spec(id="ready", after=("done",)),
                spec(id="doomed", after=("done", "gone")),
                spec(id="grandchild", after=("doomed",)),
            ]
        )
        assert await states(store, "ready", "doomed", "grandchild") == [P, C, C]
        assert (await store.get("doomed")).last_error == "canceled: its parent gone is dead"

    async def test_a_blocked_job_is_never_claimed(self, store: Store) -> None:
        await store.enqueue([spec(id="a", run_at=10**10), spec(id="b", after=("a",))])
        assert await store.claim("e1", 10, LEASE) == []
        assert await store.due_in() is not None  # a is waiting; b is not counted as due


async def complete_claimed(store: Store, job_id: str) -> None:
    job = await store.get(job_id)
    assert job.state is JobState.PROCESSING
    await finish(store, job, success())


class TestUniqueKeys:
    async def test_a_live_key_creates_nothing_and_names_the_holder(self, store: Store) -> None:
        first = await store.enqueue([spec(id="one", unique_key="k")])
        again = await store.enqueue([spec(id="two", unique_key="k")])
        assert list(first) == ["one"] and first.created == 1 and not first.existing
        assert list(again) == ["one"] and again.created == 0 and again.existing == {"one"}
        assert (await store.counts())[P] == 1
        await complete(store, "one")  # over: the key is free again
        third = await store.enqueue([spec(id="three", unique_key="k")])
        assert list(third) == ["three"] and third.created == 1

    async def test_the_same_key_twice_in_one_batch_makes_one_job(self, store: Store) -> None:
        enqueued = await store.enqueue(
            [
                spec(id="a", unique_key="k"),
                spec(id="b", unique_key="k"),
                spec(id="c", after=("b",)),  # b stands for a
            ]
        )
        assert list(enqueued) == ["a", "a", "c"] and enqueued.created == 2
        assert await store.relatives("c") == (["a"], [])

    async def test_a_key_held_by_a_running_job_still_counts(self, store: Store) -> None:
        await store.enqueue([spec(id="r", unique_key="k")])
        await claim_one(store, "r")
        assert list(await store.enqueue([spec(unique_key="k")])) == ["r"]

    async def test_a_duplicate_id_is_still_refused(self, store: Store) -> None:
        await store.enqueue([spec(id="same", unique_key="k1")])
        with pytest.raises(DuplicateJobId):
            await store.enqueue([spec(id="same", unique_key="k2")])

    async def test_concurrent_enqueuers_make_one_live_job(self, open_queue: Opener) -> None:
        stores = [await open_queue() for _ in range(4)]

        async def many(store: Store) -> list[str]:
            return [(await store.enqueue([spec(unique_key="shared")]))[0] for _ in range(10)]

        results = await asyncio.gather(*(many(store) for store in stores))
        assert len({job_id for ids in results for job_id in ids}) == 1
        assert (await stores[0].counts())[P] == 1
