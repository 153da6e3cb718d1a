"""Contract tests of the Store: what the CLI and the engine rely on, whatever the backend.

`StoreContract` runs against every backend in STORE_BACKENDS (for now the SQLite file store;
a PostgreSQL store adds a param). Tests pass explicit `now` values, so nothing depends on the
clock. SQLite-only facts (the file, PRAGMAs) are in `TestSqliteFile` at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from helpers import db_path, db_snapshot, make_dead, spec

from queuectl.errors import BadInput, InvalidTransition, JobNotFound, QueuectlError, StorageError
from queuectl.models import Job, JobState, Outcome, OutcomeKind
from queuectl.settings import CONFIG_KEYS
from queuectl.store import Store, open_store

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15)
LEASE = 30.0
STORE_BACKENDS = ["sqlite"]

Opener = Callable[[], Awaitable[Store]]


@pytest.fixture(params=STORE_BACKENDS)
async def open_queue(request: pytest.FixtureRequest, home: Path) -> AsyncIterator[Opener]:
    """Opens another store on the same queue (another process's view); all closed after."""
    opened: list[Store] = []

    async def opener() -> Store:
        if request.param == "sqlite":
            store = await open_store(home)
        else:  # pragma: no cover - a backend without an opener
            raise NotImplementedError(request.param)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_queue: Opener) -> Store:
    return await open_queue()


def success(**fields: object) -> Outcome:
    return Outcome(OutcomeKind.SUCCESS, exit_code=0, **fields)  # type: ignore[arg-type]


def failure(code: int = 1, error: str = "exit code 1", **fields: object) -> Outcome:
    return Outcome(OutcomeKind.FAILURE, exit_code=code, error=error, **fields)  # type: ignore[arg-type]


async def claim_one(store: Store, job_id: str, now: float = T0, owner: str = "e1") -> Job:
    jobs = await store.claim(owner, 1, now, LEASE)
    assert [job.id for job in jobs] == [job_id]
    return jobs[0]


async def everything(store: Store, job_id: str) -> tuple[Job, list[object]]:
    """A job and its attempts, to show that an operation changed nothing."""
    return await store.get(job_id), list(await store.attempts(job_id))


class StoreContract:
    __test__ = True  # collected despite the name: the shared suite every backend must pass

    # --- enqueue --------------------------------------------------------------------------

    async def test_enqueue_and_get(self, store: Store) -> None:
        ids = await store.enqueue(
            [spec("echo hi", id="a", priority=5, max_retries=2, timeout=9.5, env={"K": "v"})], T0
        )
        assert ids == ["a"]
        job = await store.get("a")
        assert (job.id, job.command, job.state, job.priority) == (
            "a",
            "echo hi",
            JobState.PENDING,
            5,
        )
        assert (job.max_retries, job.timeout, job.cwd, job.env) == (2, 9.5, "/", {"K": "v"})
        assert (job.attempts, job.runs) == (0, 0)
        assert job.created_at == job.updated_at == job.run_at == job.next_run_at == T0
        assert job.lease_owner is job.lease_expires_at is job.pid is None
        assert job.started_at is job.finished_at is job.exit_code is job.last_error is None
        assert await store.attempts("a") == []

    async def test_enqueue_generates_ids_in_order(self, store: Store) -> None:
        ids = await store.enqueue([spec("one"), spec("two", id="mine"), spec("three")], T0)
        assert len(ids) == 3 and ids[1] == "mine"
        assert len(set(ids)) == 3
        assert [(await store.get(i)).command for i in ids] == ["one", "two", "three"]

    async def test_enqueue_nothing(self, store: Store) -> None:
        assert await store.enqueue([], T0) == []
        assert sum((await store.counts()).values()) == 0

    async def test_run_at_sets_next_run_at(self, store: Store) -> None:
        await store.enqueue([spec(id="later", run_at=T0 + 600)], T0)
        job = await store.get("later")
        assert job.run_at == job.next_run_at == T0 + 600
        assert job.created_at == T0

    async def test_enqueue_defaults_come_from_config(self, store: Store) -> None:
        await store.enqueue([spec(id="before")], T0)
        before = await store.get("before")
        assert before.max_retries == CONFIG_KEYS["max-retries"].default == 3
        assert before.timeout is None
        await store.set_config("max-retries", 7)
        await store.set_config("job-timeout", 42.0)
        await store.enqueue([spec(id="after"), spec(id="own", max_retries=1, timeout=5.0)], T0)
        after, own = await store.get("after"), await store.get("own")
        assert (after.max_retries, after.timeout) == (7, 42.0)
        assert (own.max_retries, own.timeout) == (1, 5.0)
        # the default is fixed at enqueue time
        assert (await store.get("before")).max_retries == 3

    async def test_duplicate_within_a_batch_stores_nothing(self, store: Store) -> None:
        with pytest.raises(BadInput, match="'dup'"):
            await store.enqueue([spec(id="ok1"), spec(id="dup"), spec(), spec(id="dup")], T0)
        assert await store.list_jobs(None, 100) == []

    async def test_duplicate_of_an_existing_job_stores_nothing(self, store: Store) -> None:
        await store.enqueue([spec("original", id="taken")], T0)
        with pytest.raises(BadInput, match="'taken' already exists"):
            await store.enqueue([spec(id="new1"), spec(), spec("again", id="taken")], T0 + 1)
        jobs = await store.list_jobs(None, 100)
        assert [job.id for job in jobs] == ["taken"]
        assert jobs[0].command == "original"
        with pytest.raises(JobNotFound):
            await store.get("new1")

    async def test_a_failed_enqueue_leaves_the_store_usable(self, store: Store) -> None:
        await store.enqueue([spec(id="x")], T0)
        with pytest.raises(BadInput):
            await store.enqueue([spec(id="x")], T0)
        assert await store.enqueue([spec(id="y")], T0) == ["y"]
        assert (await store.counts())[JobState.PENDING] == 2

    # --- reading --------------------------------------------------------------------------

    async def test_get_unknown(self, store: Store) -> None:
        with pytest.raises(JobNotFound, match="'nope' not found") as info:
            await store.get("nope")
        assert isinstance(info.value, BadInput)
        with pytest.raises(JobNotFound):
            await store.attempts("nope")

    async def test_list_newest_first_with_state_and_limit(self, store: Store) -> None:
        await make_dead(store, ["d1", "d2"], T0 - 10)
        for n in range(5):
            await store.enqueue([spec(id=f"j{n}")], T0 + n)
        everything_listed = [j.id for j in await store.list_jobs(None, 100)]
        assert everything_listed[:5] == ["j4", "j3", "j2", "j1", "j0"]
        assert set(everything_listed[5:]) == {"d1", "d2"}
        assert [j.id for j in await store.list_jobs(JobState.PENDING, 100)] == [
            "j4",
            "j3",
            "j2",
            "j1",
            "j0",
        ]
        assert [j.id for j in await store.list_jobs(JobState.PENDING, 2)] == ["j4", "j3"]
        assert [j.id for j in await store.list_jobs(None, 3)] == ["j4", "j3", "j2"]
        assert {j.id for j in await store.list_jobs(JobState.DEAD, 100)} == {"d1", "d2"}
        assert len(await store.list_jobs(JobState.DEAD, 1)) == 1
        assert await store.list_jobs(JobState.COMPLETED, 100) == []

    async def test_counts_every_state(self, store: Store) -> None:
        assert await store.counts() == dict.fromkeys(JobState, 0)
        await make_dead(store, ["d"], T0)
        await store.enqueue([spec(id="p1"), spec(id="p2")], T0)
        assert await store.counts() == {
            **dict.fromkeys(JobState, 0),
            JobState.PENDING: 2,
            JobState.DEAD: 1,
        }

    async def test_counts_after_transitions(self, store: Store) -> None:
        await store.enqueue([spec(id="a"), spec(id="b"), spec(id="c", max_retries=0)], T0)
        jobs = {job.id: job for job in await store.claim("e1", 3, T0, LEASE)}
        assert await store.counts() == {**dict.fromkeys(JobState, 0), JobState.PROCESSING: 3}
        await store.finish(jobs["a"], success(), T0 + 1, T0 + 2)
        await store.finish(jobs["b"], failure(), T0 + 1, T0 + 2)
        await store.finish(jobs["c"], failure(), T0 + 1, T0 + 2)
        assert await store.counts() == {
            **dict.fromkeys(JobState, 0),
            JobState.COMPLETED: 1,
            JobState.FAILED: 1,
            JobState.DEAD: 1,
        }

    # --- config ---------------------------------------------------------------------------

    async def test_config_defaults(self, store: Store) -> None:
        assert await store.config() == {name: key.default for name, key in CONFIG_KEYS.items()}

    async def test_config_set_and_get(self, store: Store, open_queue: Opener) -> None:
        await store.set_config("concurrency", 8)
        await store.set_config("job-timeout", 30.0)
        await store.set_config("job-timeout", None)
        await store.set_config("backoff-base", 1.5)
        config = await store.config()
        assert (config["concurrency"], config["job-timeout"], config["backoff-base"]) == (
            8,
            None,
            1.5,
        )
        assert config["max-retries"] == 3
        assert set(config) == set(CONFIG_KEYS)
        other = await open_queue()
        assert await other.config() == config

    # --- claim ----------------------------------------------------------------------------

    async def test_claim_order(self, store: Store) -> None:
        await store.enqueue(
            [
                spec(id="a", run_at=T0 - 2),
                spec(id="b", priority=5, run_at=T0 - 1),
                spec(id="d", run_at=T0 - 3),
                spec(id="c", run_at=T0 - 3),
                spec(id="e", priority=-1, run_at=T0 - 9),
                spec(id="f", priority=5, run_at=T0 - 1),
            ],
            T0 - 10,
        )
        assert [j.id for j in await store.claim("e1", 3, T0, LEASE)] == ["b", "f", "c"]
        assert [j.id for j in await store.claim("e1", 1, T0, LEASE)] == ["d"]
        assert [j.id for j in await store.claim("e1", 10, T0, LEASE)] == ["a", "e"]
        assert await store.claim("e1", 10, T0, LEASE) == []

    async def test_claim_marks_processing_under_a_lease(self, store: Store) -> None:
        await store.enqueue([spec(id="a")], T0)
        [job] = await store.claim("engine-1", 5, T0 + 1, LEASE)
        assert job.state is JobState.PROCESSING
        assert (job.attempts, job.runs) == (1, 1)
        assert job.lease_owner == "engine-1"
        assert job.lease_expires_at == T0 + 1 + LEASE
        assert job.started_at == T0 + 1
        assert await store.get("a") == job
        [attempt] = await store.attempts("a")
        assert (attempt.run, attempt.engine, attempt.started_at) == (1, "engine-1", T0 + 1)
        assert attempt.finished_at is None and attempt.duration is None

    async def test_claim_respects_next_run_at(self, store: Store) -> None:
        await store.enqueue([spec(id="now"), spec(id="later", run_at=T0 + 100)], T0)
        assert [j.id for j in await store.claim("e1", 10, T0, LEASE)] == ["now"]
        assert await store.claim("e1", 10, T0 + 99.9, LEASE) == []
        assert [j.id for j in await store.claim("e1", 10, T0 + 100, LEASE)] == ["later"]

    async def test_claim_limit(self, store: Store) -> None:
        await store.enqueue([spec(id=f"j{n:02}") for n in range(10)], T0)
        assert len(await store.claim("e1", 4, T0, LEASE)) == 4
        assert len(await store.claim("e1", 4, T0, LEASE)) == 4
        assert len(await store.claim("e1", 4, T0, LEASE)) == 2
        assert (await store.counts())[JobState.PROCESSING] == 10

    async def test_concurrent_claims_are_disjoint(self, store: Store, open_queue: Opener) -> None:
        """Several stores on one queue (as several processes would be) never share a job."""
        ids = {f"j{n:03}" for n in range(300)}
        await store.enqueue([spec(id=job_id) for job_id in sorted(ids)], T0)
        stores = [store, await open_queue(), await open_queue()]

        async def drain(index: int) -> list[str]:
            got: list[str] = []
            while batch := await stores[index].claim(f"e{index}", 7, T0, LEASE):
                got += [job.id for job in batch]
                await asyncio.sleep(0)
            return got

        results = await asyncio.gather(*(drain(i) for i in range(len(stores))))
        claimed = [job_id for result in results for job_id in result]
        assert len(claimed) == len(set(claimed)) == len(ids)
        assert set(claimed) == ids
        for index, result in enumerate(results):
            for job_id in result[:3]:
                assert (await store.get(job_id)).lease_owner == f"e{index}"

    async def test_concurrent_big_claims_are_disjoint(
        self, store: Store, open_queue: Opener
    ) -> None:
        await store.enqueue([spec(id=f"j{n:03}") for n in range(300)], T0)
        stores = [store, await open_queue(), await open_queue()]
        results = await asyncio.gather(
            *(s.claim(f"e{i}", 200, T0, LEASE) for i, s in enumerate(stores))
        )
        claimed = [job.id for result in results for job in result]
        assert len(claimed) == len(set(claimed)) == 300
        assert all(len(result) <= 200 for result in results)
        attempts = [len(await store.attempts(job_id)) for job_id in claimed]
        assert attempts == [1] * 300

    # --- finish ---------------------------------------------------------------------------

    async def test_success_completes(self, store: Store) -> None:
        await store.enqueue([spec(id="a")], T0)
        job = await claim_one(store, "a")
        state = await store.finish(
            job, success(stdout=b"hello\n", stderr=b"warn\n"), T0 + 2.5, T0 + 99
        )
        assert state is JobState.COMPLETED
        done = await store.get("a")
        assert done.state is JobState.COMPLETED
        assert (done.exit_code, done.finished_at, done.attempts, done.runs) == (0, T0 + 2.5, 1, 1)
        assert done.lease_owner is done.lease_expires_at is done.pid is None
        [attempt] = await store.attempts("a")
        assert (attempt.stdout, attempt.stderr, attempt.exit_code) == (b"hello\n", b"warn\n", 0)
        assert attempt.finished_at == T0 + 2.5
        assert attempt.duration == pytest.approx(2.5)
        assert not attempt.stdout_truncated and not attempt.stderr_truncated
        assert await store.claim("e1", 10, T0 + 1000, LEASE) == []

    async def test_failure_with_retries_left_waits_until_retry_at(self, store: Store) -> None:
        await store.enqueue([spec(id="a", max_retries=2)], T0)
        job = await claim_one(store, "a")
        outcome = failure(3, "exit code 3", stdout=b"o" * 10, stderr=b"e", stderr_truncated=True)
        assert await store.finish(job, outcome, T0 + 1, T0 + 50) is JobState.FAILED
        failed = await store.get("a")
        assert (failed.state, failed.next_run_at, failed.attempts) == (JobState.FAILED, T0 + 50, 1)
        assert (failed.exit_code, failed.last_error) == (3, "exit code 3")
        assert failed.run_at == T0  # the original schedule is kept
        [attempt] = await store.attempts("a")
        assert (attempt.exit_code, attempt.error, attempt.stdout) == (3, "exit code 3", b"o" * 10)
        assert attempt.stderr_truncated and not attempt.stdout_truncated
        assert await store.claim("e1", 10, T0 + 49, LEASE) == []
        assert await store.next_due() == T0 + 50
        again = await claim_one(store, "a", T0 + 50)
        assert (again.attempts, again.runs) == (2, 2)

    async def test_failure_beyond_max_retries_is_dead(self, store: Store) -> None:
        await store.enqueue([spec(id="a", max_retries=1)], T0)
        first = await claim_one(store, "a")
        assert await store.finish(first, failure(), T0 + 1, T0 + 2) is JobState.FAILED
        second = await claim_one(store, "a", T0 + 2)
        assert await store.finish(second, failure(error="boom"), T0 + 3, T0 + 9) is JobState.DEAD
        dead = await store.get("a")
        assert (dead.state, dead.attempts, dead.runs, dead.last_error) == (
            JobState.DEAD,
            2,
            2,
            "boom",
        )
        assert [a.run for a in await store.attempts("a")] == [1, 2]
        assert await store.claim("e1", 10, T0 + 10_000, LEASE) == []
        assert await store.next_due() is None

    async def test_no_retries_means_dead_after_one_failure(self, store: Store) -> None:
        await store.enqueue([spec(id="a", max_retries=0)], T0)
        job = await claim_one(store, "a")
        assert await store.finish(job, failure(), T0 + 1, T0 + 2) is JobState.DEAD

    async def test_interrupted_goes_back_to_pending(self, store: Store) -> None:
        await store.enqueue([spec(id="a", max_retries=0)], T0)
        job = await claim_one(store, "a")
        outcome = Outcome(OutcomeKind.INTERRUPTED, error="engine stopped")
        assert await store.finish(job, outcome, T0 + 5, T0 + 999) is JobState.PENDING
        back = await store.get("a")
        assert (back.state, back.attempts, back.runs) == (JobState.PENDING, 0, 1)
        assert back.next_run_at == T0 + 5
        assert back.lease_owner is None
        again = await claim_one(store, "a", T0 + 5)
        assert (again.attempts, again.runs) == (1, 2)
        # no retry was used up: a failure now is its first
        assert await store.finish(again, failure(), T0 + 6, T0 + 7) is JobState.DEAD
        assert [a.run for a in await store.attempts("a")] == [1, 2]

    async def test_canceled_outcome(self, store: Store) -> None:
        await store.enqueue([spec(id="a")], T0)
        job = await claim_one(store, "a")
        state = await store.finish(
            job, Outcome(OutcomeKind.CANCELED, error="canceled"), T0 + 1, T0 + 2
        )
        assert state is JobState.CANCELED
        assert (await store.get("a")).state is JobState.CANCELED

    @pytest.mark.parametrize(
        "change", [{"lease_owner": "someone-else"}, {"runs": 2}, {"runs": 0}, {"lease_owner": None}]
    )
    async def test_finish_by_a_stale_holder_changes_nothing(
        self, store: Store, change: dict[str, object]
    ) -> None:
        await store.enqueue([spec(id="a")], T0)
        job = await claim_one(store, "a")
        before = await everything(store, "a")
        stale = dataclasses.replace(job, **change)  # type: ignore[arg-type]
        with pytest.raises(InvalidTransition):
            await store.finish(stale, success(stdout=b"x"), T0 + 1, T0 + 2)
        assert await everything(store, "a") == before
        # the real holder can still finish it
        assert await store.finish(job, success(), T0 + 1, T0 + 2) is JobState.COMPLETED

    async def test_finish_twice_is_an_invalid_transition(self, store: Store) -> None:
        await store.enqueue([spec(id="a")], T0)
        job = await claim_one(store, "a")
        await store.finish(job, failure(), T0 + 1, T0 + 2)
        after_first = await everything(store, "a")
        with pytest.raises(InvalidTransition) as info:
            await store.finish(job, success(), T0 + 3, T0 + 4)
        assert isinstance(info.value, QueuectlError)
        assert "'a'" in str(info.value)
        assert await everything(store, "a") == after_first

    async def test_concurrent_finishes_of_one_batch(self, store: Store) -> None:
        """The engine finishes many jobs at once; a stale one among them fails alone."""
        await store.enqueue([spec(id=f"j{n}", max_retries=0) for n in range(20)], T0)
        jobs = await store.claim("e1", 20, T0, LEASE)
        stale = dataclasses.replace(jobs[7], lease_owner="gone")
        results = await asyncio.gather(
            *(
                store.finish(job, success() if n % 2 else failure(), T0 + 1, T0 + 2)
                for n, job in enumerate(jobs)
                if n != 7
            ),
            store.finish(stale, success(), T0 + 1, T0 + 2),
            return_exceptions=True,
        )
        assert isinstance(results[-1], InvalidTransition)
        assert results[:-1] == [
            JobState.COMPLETED if n % 2 else JobState.DEAD for n in range(20) if n != 7
        ]
        assert (await store.get(jobs[7].id)).state is JobState.PROCESSING
        counts = await store.counts()
        assert (counts[JobState.COMPLETED], counts[JobState.DEAD], counts[JobState.PROCESSING]) == (
            9,
            10,
            1,
        )

    async def test_set_pid(self, store: Store) -> None:
        await store.enqueue([spec(id="a")], T0)
        job = await claim_one(store, "a")
        await store.set_pid(job, 4242)
        assert (await store.get("a")).pid == 4242
        await store.set_pid(dataclasses.replace(job, lease_owner="other"), 1)
        assert (await store.get("a")).pid == 4242
        await store.finish(job, success(), T0 + 1, T0 + 2)
        assert (await store.get("a")).pid is None

    # --- the dead letter queue ------------------------------------------------------------

    async def test_retry_dead_by_id(self, store: Store) -> None:
        await make_dead(store, ["d1", "d2"], T0)
        assert await store.retry_dead(["d1"], T0 + 100) == ["d1"]
        job = await store.get("d1")
        assert (job.state, job.attempts, job.next_run_at) == (JobState.PENDING, 0, T0 + 100)
        assert job.last_error is None and job.exit_code is None
        assert job.runs == 1  # the history is kept
        assert len(await store.attempts("d1")) == 1
        assert (await store.get("d2")).state is JobState.DEAD
        assert [j.id for j in await store.claim("e1", 10, T0 + 100, LEASE)] == ["d1"]

    async def test_retry_dead_with_an_id_given_twice(self, store: Store) -> None:
        await make_dead(store, ["d1", "d2"], T0)
        assert await store.retry_dead(["d1", "d2", "d1"], T0 + 1) == ["d1", "d2"]
        assert (await store.get("d1")).state is JobState.PENDING
        assert (await store.get("d2")).state is JobState.PENDING

    async def test_retry_all_dead(self, store: Store) -> None:
        await make_dead(store, ["d1", "d2", "d3"], T0)
        await store.enqueue([spec(id="p")], T0)
        assert sorted(await store.retry_dead(None, T0 + 1)) == ["d1", "d2", "d3"]
        assert (await store.counts())[JobState.PENDING] == 4
        assert await store.retry_dead(None, T0 + 2) == []

    async def test_retry_of_a_job_that_is_not_dead_changes_nothing(self, store: Store) -> None:
        await make_dead(store, ["d1"], T0)
        await store.enqueue([spec(id="p")], T0)
        before = [await everything(store, i) for i in ("d1", "p")]
        with pytest.raises(BadInput, match="'p' is pending, not dead"):
            await store.retry_dead(["d1", "p"], T0 + 1)
        with pytest.raises(JobNotFound):
            await store.retry_dead(["d1", "nope"], T0 + 1)
        assert [await everything(store, i) for i in ("d1", "p")] == before

    async def test_cancel_waiting_job(self, store: Store) -> None:
        await store.enqueue([spec(id="a"), spec(id="b")], T0)
        job = await store.cancel("a", T0 + 1)
        assert job.state is JobState.CANCELED
        assert [j.id for j in await store.claim("e1", 10, T0 + 2, LEASE)] == ["b"]
        # a running job is returned as it is, for the caller to deal with
        assert (await store.cancel("b", T0 + 3)).state is JobState.PROCESSING
        with pytest.raises(JobNotFound):
            await store.cancel("nope", T0)

    # --- the engine's bookkeeping ---------------------------------------------------------

    async def test_orphans(self, store: Store) -> None:
        await store.enqueue(
            [spec(id="mine"), spec(id="theirs"), spec(id="waiting", run_at=T0 + 99)], T0
        )
        await claim_one(store, "mine", owner="me")
        await claim_one(store, "theirs", owner="old-engine")
        if store.exclusive:
            # only one engine can use the queue: any other owner's job is orphaned at once
            assert [j.id for j in await store.orphans("me", T0 + 1)] == ["theirs"]
        else:
            assert await store.orphans("me", T0 + 1) == []
        assert [j.id for j in await store.orphans("me", T0 + LEASE + 1)] == ["theirs"]
        assert [j.id for j in await store.orphans("old-engine", T0 + LEASE + 1)] == ["mine"]

    async def test_sqlite_store_is_exclusive(self, store: Store) -> None:
        if type(store).__name__ == "SqliteStore":
            assert store.exclusive is True

    async def test_renew_leases(self, store: Store) -> None:
        await store.enqueue([spec(id="a"), spec(id="b"), spec(id="c")], T0)
        await store.claim("e1", 2, T0, LEASE)
        await store.claim("e2", 1, T0, LEASE)
        await store.renew_leases("e1", T0 + 500)
        leases = {
            j.id: (j.lease_owner, j.lease_expires_at) for j in await store.list_jobs(None, 10)
        }
        assert leases == {"a": ("e1", T0 + 500), "b": ("e1", T0 + 500), "c": ("e2", T0 + LEASE)}

    async def test_renew_leases_ignores_finished_jobs(self, store: Store) -> None:
        await store.enqueue([spec(id="a")], T0)
        job = await claim_one(store, "a")
        await store.finish(job, success(), T0 + 1, T0 + 2)
        await store.renew_leases("e1", T0 + 500)
        done = await store.get("a")
        assert done.lease_expires_at is None and done.state is JobState.COMPLETED

    async def test_next_due(self, store: Store) -> None:
        assert await store.next_due() is None
        await store.enqueue([spec(id="late", run_at=T0 + 300), spec(id="soon", run_at=T0 + 60)], T0)
        assert await store.next_due() == T0 + 60
        assert await store.next_due(retries_only=True) is None
        await claim_one(store, "soon", T0 + 60)
        assert await store.next_due() == T0 + 300  # a running job is not waiting
        await store.enqueue([spec(id="fail", max_retries=1)], T0)
        job = await claim_one(store, "fail", T0 + 61)
        await store.finish(job, failure(), T0 + 62, T0 + 400)
        assert await store.next_due() == T0 + 300
        assert await store.next_due(retries_only=True) == T0 + 400

    async def test_change_marker_moves_when_another_store_writes(
        self, store: Store, open_queue: Opener
    ) -> None:
        other = await open_queue()
        marker = await store.change_marker()
        assert await store.change_marker() == marker
        await other.enqueue([spec(id="a")], T0)
        assert await store.change_marker() != marker

    async def test_data_survives_close_and_reopen(self, open_queue: Opener) -> None:
        first = await open_queue()
        await make_dead(first, ["d"], T0)
        await first.enqueue([spec("echo kept", id="a", priority=3)], T0)
        await first.set_config("concurrency", 9)
        await first.close()
        second = await open_queue()
        job = await second.get("a")
        assert (job.command, job.priority, job.state) == ("echo kept", 3, JobState.PENDING)
        assert (await second.config())["concurrency"] == 9
        assert (await second.get("d")).state is JobState.DEAD
        assert len(await second.attempts("d")) == 1


# --- the SQLite file itself -------------------------------------------------------------------


class TestSqliteFile:
    async def test_schema_version_and_wal(self, home: Path) -> None:
        store = await open_store(home)
        await store.close()
        conn = sqlite3.connect(db_path(home))
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            assert {"jobs", "attempts", "config"} <= tables
        finally:
            conn.close()

    async def test_reopening_does_not_migrate_again(self, home: Path) -> None:
        store = await open_store(home)
        await store.enqueue([spec(id="a")], T0)
        await store.close()
        before = db_snapshot(home)
        store = await open_store(home)
        await store.close()
        assert db_snapshot(home) == before

    async def test_a_newer_schema_is_refused(self, home: Path) -> None:
        store = await open_store(home)
        await store.close()
        conn = sqlite3.connect(db_path(home))
        conn.execute("PRAGMA user_version = 2")
        conn.close()
        with pytest.raises(StorageError, match="newer"):
            await open_store(home)

    async def test_a_corrupt_file_is_a_storage_error(self, home: Path) -> None:
        db_path(home).write_bytes(b"this is not a database\n" * 100)
        with pytest.raises(StorageError) as info:
            await open_store(home)
        assert str(db_path(home)) in str(info.value)
        assert "corrupt" in str(info.value)

    async def test_the_home_is_created_0700(self, home: Path) -> None:
        target = home / "new" / "queue"
        store = await open_store(target)
        await store.close()
        assert db_path(target).is_file()
        assert target.stat().st_mode & 0o777 == 0o700

    async def test_config_is_stored_as_json(self, home: Path) -> None:
        store = await open_store(home)
        await store.set_config("job-timeout", None)
        await store.set_config("backoff-max", 90.0)
        await store.close()
        conn = sqlite3.connect(db_path(home))
        try:
            rows = dict(conn.execute("SELECT key, value FROM config"))
        finally:
            conn.close()
        assert rows == {"job-timeout": "null", "backoff-max": "90.0"}
