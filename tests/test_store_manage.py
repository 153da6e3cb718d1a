"""Contract tests of the Store's job management: restart, edit, delete, cancel many, purge and
dropping old output, on every backend of STORE_BACKENDS (test_store.py's fixtures: one
ManualClock for every store of a test, stores closed after it).

Every refusal is checked to change nothing: the queue is compared with a snapshot taken before.
"""

from __future__ import annotations

import pytest
import test_store
from helpers import ManualClock, failure, spec, store_snapshot
from test_store import LEASE, T0, claim_one, finish, success

from queuectl.errors import BadInput, JobNotFound
from queuectl.states import AT_REST, FINISHED, RESTARTABLE, ErrorKind, JobState, next_state
from queuectl.store import Finish, JobChanges, Store

#: enough jobs for several batches of a bulk operation on every backend
MANY = 5000
#: more attempts than one page of drop_output reads on every backend
MANY_ATTEMPTS = 1100

# test_store.py's fixtures, used here by name: the same backends, stores and clock
backend = test_store.backend
clock = test_store.clock
open_queue = test_store.open_queue
store = test_store.store


async def one_of_each(store: Store) -> dict[str, JobState]:
    """Jobs p (pending), r (processing), c (completed), f (failed, waiting for its retry),
    d (dead), x (canceled), each finished ones with one attempt."""
    await store.enqueue(
        [spec(id=job_id, max_retries=0 if job_id == "d" else 3) for job_id in "cfdr"]
    )
    for job_id, outcome in (("c", success()), ("d", failure()), ("f", failure())):
        await finish(store, await claim_one(store, job_id), outcome)
    await claim_one(store, "r")
    await store.enqueue([spec(id="x"), spec(id="p")])
    await store.cancel("x")
    states = {job.id: job.state for job in await store.list_jobs(None, 100)}
    assert states == {
        "p": JobState.PENDING,
        "r": JobState.PROCESSING,
        "c": JobState.COMPLETED,
        "f": JobState.FAILED,
        "d": JobState.DEAD,
        "x": JobState.CANCELED,
    }
    return states


async def ids_in(store: Store, state: JobState) -> set[str]:
    return {job.id for job in await store.list_jobs(state, 1_000_000)}


class StoreManageContract:
    __test__ = True

    # --- restart ------------------------------------------------------------------------------

    async def test_restart_each_restartable_state(self, store: Store, clock: ManualClock) -> None:
        states = await one_of_each(store)
        wanted = [job_id for job_id, state in states.items() if state in RESTARTABLE]
        assert sorted(wanted) == ["c", "d", "f", "x"]
        before = {job_id: await store.get(job_id) for job_id in wanted}
        history = {job_id: await store.attempts(job_id) for job_id in wanted}
        clock.advance(5)
        assert await store.restart([*wanted, "c"]) == wanted  # a repeated id counts once
        for job_id in wanted:
            job = await store.get(job_id)
            assert job.state is JobState.PENDING
            assert (job.attempts, job.next_run_at, job.updated_at) == (0, T0 + 5, T0 + 5)
            assert job.last_error is job.exit_code is job.error_kind is None
            assert job.runs == before[job_id].runs  # run numbers go on: history is kept
            assert await store.attempts(job_id) == history[job_id]

    async def test_a_restarted_job_runs_again_with_a_new_attempt(self, store: Store) -> None:
        await store.enqueue([spec(id="j", max_retries=0)])
        await finish(store, await claim_one(store, "j"), failure())
        await store.restart(["j"])
        job = await claim_one(store, "j")
        assert (job.attempts, job.runs) == (1, 2)
        done = await finish(store, job, success())
        assert done.state is JobState.COMPLETED
        assert [a.run for a in await store.attempts("j")] == [1, 2]

    @pytest.mark.parametrize("refused", ["p", "r"])
    async def test_restart_of_a_job_that_is_not_over_changes_nothing(
        self, store: Store, refused: str
    ) -> None:
        await one_of_each(store)
        before = await store_snapshot(store)
        with pytest.raises(BadInput, match=rf"job '{refused}' is (pending|running)"):
            await store.restart(["c", refused, "d"])  # c comes first: all or nothing
        assert await store_snapshot(store) == before

    async def test_restart_of_an_unknown_job_changes_nothing(self, store: Store) -> None:
        await one_of_each(store)
        before = await store_snapshot(store)
        with pytest.raises(JobNotFound, match="'nope'"):
            await store.restart(["c", "nope"])
        assert await store_snapshot(store) == before

    async def test_restart_in_state(self, store: Store) -> None:
        await one_of_each(store)
        assert await store.restart_in_state(JobState.DEAD) == 1
        assert await ids_in(store, JobState.PENDING) == {"p", "d"}
        assert await ids_in(store, JobState.COMPLETED) == {"c"}
        before = await store_snapshot(store)
        for state in (JobState.PENDING, JobState.PROCESSING, JobState.DEAD):
            assert await store.restart_in_state(state) == 0
        assert await store_snapshot(store) == before

    async def test_restart_in_state_runs_in_batches_with_progress(self, store: Store) -> None:
        count = MANY + 7
        await store.enqueue([spec(id=f"j{i}") for i in range(count)])
        assert await store.cancel_in_state(JobState.PENDING) == count
        steps: list[int] = []
        assert await store.restart_in_state(JobState.CANCELED, steps.append) == count
        assert len(steps) >= 2 and sum(steps) == count
        assert len(await ids_in(store, JobState.PENDING)) == count

    # --- edit ---------------------------------------------------------------------------------

    async def test_edit_changes_only_what_is_given(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec("true", id="j", priority=1, max_retries=2, timeout=5.0)])
        before = await store.get("j")
        clock.advance(10)
        job = await store.edit("j", JobChanges(command="echo new", priority=9))
        assert job == await store.get("j")
        assert (job.command, job.priority, job.updated_at) == ("echo new", 9, T0 + 10)
        unchanged = ("max_retries", "timeout", "run_at", "next_run_at", "cwd", "env", "state")
        for name in unchanged:
            assert getattr(job, name) == getattr(before, name), name

        job = await store.edit("j", JobChanges(max_retries=0, timeout=60.0, delay=30.0))
        assert (job.max_retries, job.timeout) == (0, 60.0)
        assert job.run_at == job.next_run_at == T0 + 40  # the delay runs from the store's now
        job = await store.edit("j", JobChanges(clear_timeout=True, run_at=T0 + 3600))
        assert (job.timeout, job.run_at, job.next_run_at) == (None, T0 + 3600, T0 + 3600)
        assert job.command == "echo new" and job.max_retries == 0

    async def test_edit_moves_a_failed_jobs_retry(self, store: Store, clock: ManualClock) -> None:
        await one_of_each(store)
        assert await store.due_in(retries_only=True) == pytest.approx(1.0)  # finish()'s delay
        await store.edit("f", JobChanges(delay=100.0))
        assert await store.due_in(retries_only=True) == pytest.approx(100.0)

    async def test_edit_each_state_at_rest(self, store: Store) -> None:
        states = await one_of_each(store)
        for job_id, state in states.items():
            if state in AT_REST:
                assert (await store.edit(job_id, JobChanges(priority=4))).priority == 4
                assert (await store.get(job_id)).state is state

    async def test_edit_of_a_running_or_unknown_job_changes_nothing(self, store: Store) -> None:
        await one_of_each(store)
        before = await store_snapshot(store)
        with pytest.raises(BadInput, match=r"job 'r' is running.*cancel.*wait"):
            await store.edit("r", JobChanges(command="echo no"))
        with pytest.raises(JobNotFound):
            await store.edit("nope", JobChanges(priority=1))
        assert await store_snapshot(store) == before

    # --- delete -------------------------------------------------------------------------------

    async def test_delete_frees_the_id_and_drops_the_attempts(self, store: Store) -> None:
        await one_of_each(store)
        assert await store.delete(["c", "d", "c"]) == ["c", "d"]
        for job_id in ("c", "d"):
            with pytest.raises(JobNotFound):
                await store.get(job_id)
            with pytest.raises(JobNotFound):
                await store.attempts(job_id)
        assert await store.enqueue([spec("echo again", id="c")]) == ["c"]
        fresh = await store.get("c")
        assert (fresh.state, fresh.runs, fresh.command) == (JobState.PENDING, 0, "echo again")
        assert await store.attempts("c") == []
        assert (await store.counts())[JobState.DEAD] == 0

    async def test_delete_each_state_at_rest(self, store: Store) -> None:
        states = await one_of_each(store)
        at_rest = [job_id for job_id, state in states.items() if state in AT_REST]
        assert await store.delete(at_rest) == at_rest
        assert [job.id for job in await store.list_jobs(None, 100)] == ["r"]

    async def test_delete_of_a_running_or_unknown_job_changes_nothing(self, store: Store) -> None:
        await one_of_each(store)
        before = await store_snapshot(store)
        with pytest.raises(BadInput, match=r"job 'r' is running"):
            await store.delete(["c", "r"])
        with pytest.raises(JobNotFound):
            await store.delete(["c", "nope"])
        assert await store_snapshot(store) == before

    # --- cancel many --------------------------------------------------------------------------

    async def test_cancel_many(self, store: Store, clock: ManualClock) -> None:
        await one_of_each(store)
        clock.advance(3)
        jobs = await store.cancel_many(["p", "f", "r", "p"])
        assert [(job.id, job.state) for job in jobs] == [
            ("p", JobState.CANCELED),
            ("f", JobState.CANCELED),
            ("r", JobState.PROCESSING),  # left to its engine to kill
        ]
        for job in jobs[:2]:
            assert job == await store.get(job.id)
            assert (job.finished_at, job.error_kind) == (T0 + 3, ErrorKind.CANCELED)

    @pytest.mark.parametrize("refused", ["c", "d", "x", "nope"])
    async def test_cancel_many_refuses_all_if_one_cannot_be_canceled(
        self, store: Store, refused: str
    ) -> None:
        await one_of_each(store)
        before = await store_snapshot(store)
        with pytest.raises(BadInput, match=f"'{refused}'"):
            await store.cancel_many(["p", "f", refused])
        assert await store_snapshot(store) == before

    async def test_cancel_in_state(self, store: Store) -> None:
        await one_of_each(store)
        assert await store.cancel_in_state(JobState.FAILED) == 1
        assert await ids_in(store, JobState.CANCELED) == {"x", "f"}
        assert await ids_in(store, JobState.PENDING) == {"p"}
        before = await store_snapshot(store)
        for state in (JobState.COMPLETED, JobState.PROCESSING, JobState.FAILED):
            assert await store.cancel_in_state(state) == 0
        assert await store_snapshot(store) == before

    async def test_cancel_in_state_runs_in_batches_with_progress(self, store: Store) -> None:
        await store.enqueue([spec(id=f"j{i}") for i in range(MANY)])
        steps: list[int] = []
        assert await store.cancel_in_state(JobState.PENDING, steps.append) == MANY
        assert len(steps) > 1 and sum(steps) == MANY
        assert (await store.counts())[JobState.CANCELED] == MANY

    # --- purge --------------------------------------------------------------------------------

    async def test_purge_finished_jobs_by_default(self, store: Store) -> None:
        await one_of_each(store)
        assert await store.purgeable(FINISHED, None) == 3
        assert await store.purge(FINISHED, None) == 3
        assert {job.id for job in await store.list_jobs(None, 100)} == {"p", "r", "f"}
        with pytest.raises(JobNotFound):
            await store.attempts("c")
        assert await store.purgeable(FINISHED, None) == 0
        assert await store.purge(FINISHED, None) == 0

    async def test_purge_by_age(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id=f"old{i}") for i in range(3)])
        for i in range(3):
            await finish(store, await claim_one(store, f"old{i}"), success())
            clock.advance(10)  # old0 finished at T0, old1 at T0 + 10, old2 at T0 + 20
        await store.enqueue([spec(id="waiting")])  # enqueued at T0 + 30
        clock.advance(70)  # now T0 + 100
        assert await store.purgeable(FINISHED, 90.0) == 1  # finished before T0 + 10
        assert await store.purgeable(FINISHED, 80.0) == 2  # before T0 + 20: old2 is not
        assert await store.purge(FINISHED, 80.0) == 2
        assert await ids_in(store, JobState.COMPLETED) == {"old2"}
        # a waiting job's age runs from its enqueue
        assert await store.purge([JobState.PENDING], 70.0) == 0
        assert await store.purge([JobState.PENDING], 69.0) == 1
        assert await ids_in(store, JobState.COMPLETED) == {"old2"}

    async def test_purge_only_the_states_given(self, store: Store) -> None:
        await one_of_each(store)
        assert await store.purgeable([JobState.DEAD, JobState.FAILED], None) == 2
        assert await store.purge([JobState.DEAD, JobState.FAILED, JobState.DEAD], None) == 2
        assert {job.id for job in await store.list_jobs(None, 100)} == {"p", "r", "c", "x"}

    async def test_purge_of_running_jobs_is_refused(self, store: Store) -> None:
        await one_of_each(store)
        before = await store_snapshot(store)
        for call in (store.purge, store.purgeable):
            with pytest.raises(BadInput, match="processing"):
                await call([JobState.COMPLETED, JobState.PROCESSING], None)
        assert await store_snapshot(store) == before

    async def test_purge_in_batches_with_progress(self, store: Store) -> None:
        count = MANY
        await store.enqueue([spec(id=f"j{i}") for i in range(count)])
        await store.cancel_in_state(JobState.PENDING)
        await store.enqueue([spec(id="stays")])
        steps: list[int] = []
        assert await store.purge(FINISHED, None, steps.append) == count
        assert len(steps) >= 2 and sum(steps) == count
        assert [job.id for job in await store.list_jobs(None, 10)] == ["stays"]

    # --- dropping old output ------------------------------------------------------------------

    async def test_drop_output_keeps_the_attempts(self, store: Store, clock: ManualClock) -> None:
        # claimed in id order: a (with output) and b (none) finish at T0, c at T0 + 100
        await store.enqueue([spec(id="a"), spec(id="b"), spec(id="c")])
        await finish(store, await claim_one(store, "a"), success(stdout=b"o", stderr=b"e"))
        await finish(store, await claim_one(store, "b"), success())
        clock.advance(100)
        await finish(store, await claim_one(store, "c"), success(stdout=b"kept"))
        clock.advance(10)
        assert await store.drop_output(50.0) == 1  # b had nothing to drop
        [old] = await store.attempts("a")
        assert (old.stdout, old.stderr) == (b"", b"")
        assert old.stdout_truncated and old.stderr_truncated  # what is shown is not all there was
        assert (old.exit_code, old.finished_at) == (0, T0)
        [quiet] = await store.attempts("b")
        assert not quiet.stdout_truncated and not quiet.stderr_truncated
        [new] = await store.attempts("c")
        assert new.stdout == b"kept" and not new.stdout_truncated
        assert (await store.get("a")).state is JobState.COMPLETED
        assert await store.drop_output(50.0) == 0
        assert await store.drop_output(5.0) == 1
        assert (await store.attempts("c"))[0].stdout == b""

    async def test_drop_output_pages_through_many_attempts(
        self, store: Store, clock: ManualClock
    ) -> None:
        count = MANY_ATTEMPTS
        await store.enqueue([spec(id=f"j{i:05d}") for i in range(count)])
        jobs = await store.claim("e1", count, LEASE)
        outcome = success(stdout=b"out")
        finishes = [Finish(job, next_state(job, outcome, 1.0), outcome) for job in jobs]
        assert await store.finish_many(finishes) == [True] * count
        clock.advance(60)
        steps: list[int] = []
        assert await store.drop_output(30.0, steps.append) == count
        assert sum(steps) == count
        for job_id in ("j00000", f"j{count - 1:05d}"):
            assert (await store.attempts(job_id))[0].stdout == b""
