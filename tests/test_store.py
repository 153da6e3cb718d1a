"""Contract tests of the Store: what the CLI and the engine rely on, whatever the backend.

`StoreContract` runs against every backend in STORE_BACKENDS (the SQLite file store, and the
PostgreSQL store on a database of its own per test, see tests/pg.py). Every store of a test
reads one injected ManualClock, so times are exact and nothing depends on the real clock.
These tests look at a queue only through the Store, never by opening its database; the SQLite
store's own facts (its file, PRAGMAs, the schema and its migrations) are in
test_store_sqlite.py, the PostgreSQL store's in test_store_postgres.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from helpers import (
    Backend,
    ManualClock,
    failure,
    make_backend,
    make_dead,
    release_backend,
    spec,
    store_snapshot,
)

from queuectl.config import CONFIG_KEYS, Config
from queuectl.errors import (
    BadInput,
    DuplicateJobId,
    EngineRunning,
    InvalidTransition,
    JobNotFound,
    QueuectlError,
)
from queuectl.models import Attempt, Chunk, Job, Outcome
from queuectl.states import ErrorKind, JobState, KillReason, next_state
from queuectl.store import Finish, JobFilter, JobOrder, PidUpdate, Store

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15)
LEASE = 30.0
STORE_BACKENDS = ["sqlite", "postgres"]
#: backends that allow one engine per queue: attach_engine refuses a second one, and while
#: attached, every job leased by another owner is an orphan at once
ONE_ENGINE_BACKENDS = {"sqlite"}

Opener = Callable[[], Awaitable[Store]]


@pytest.fixture
def clock() -> ManualClock:
    """The clock of every store of the test; it stands still until the test moves it."""
    return ManualClock(T0)


@pytest.fixture(params=STORE_BACKENDS)
def backend(request: pytest.FixtureRequest, home: Path) -> Iterator[Backend]:
    backend = make_backend(request.param, home)
    yield backend
    release_backend(backend)


@pytest.fixture
async def open_queue(backend: Backend, clock: ManualClock) -> AsyncIterator[Opener]:
    """Opens another store on the same queue (another process's view), on the test's clock;
    all are closed after the test."""
    opened: list[Store] = []

    async def opener() -> Store:
        store = await backend.open(clock=clock)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_queue: Opener) -> Store:
    return await open_queue()


def success(**fields: object) -> Outcome:
    return Outcome(None, exit_code=0, **fields)  # type: ignore[arg-type]


async def claim_one(store: Store, job_id: str, owner: str = "e1") -> Job:
    jobs = await store.claim(owner, 1, LEASE)
    assert [job.id for job in jobs] == [job_id]
    return jobs[0]


async def finish(store: Store, job: Job, outcome: Outcome, retry_delay: float = 1.0) -> Job:
    """End a claimed job's attempt as the engine does (decide with next_state, apply with
    finish_many); the finish must apply. Returns the job as the store now has it."""
    transition = next_state(job, outcome, retry_delay)
    assert await store.finish_many([Finish(job, transition, outcome)]) == [True]
    return await store.get(job.id)


async def everything(store: Store, job_id: str) -> tuple[Job, list[Attempt]]:
    """A job and its attempts, to show that an operation changed nothing."""
    return await store.get(job_id), list(await store.attempts(job_id))


class StoreContract:
    __test__ = True  # collected despite the name: the shared suite every backend must pass

    # --- enqueue --------------------------------------------------------------------------

    async def test_enqueue_and_get(self, store: Store) -> None:
        ids = await store.enqueue(
            [spec("echo hi", id="a", priority=5, max_retries=2, timeout=9.5, env={"K": "v"})]
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
        assert job.error_kind is None
        assert await store.attempts("a") == []

    async def test_enqueue_generates_ids_in_order(self, store: Store) -> None:
        ids = await store.enqueue([spec("one"), spec("two", id="mine"), spec("three")])
        assert len(ids) == 3 and ids[1] == "mine"
        assert len(set(ids)) == 3
        assert [(await store.get(i)).command for i in ids] == ["one", "two", "three"]

    async def test_enqueue_nothing(self, store: Store) -> None:
        assert await store.enqueue([]) == []
        assert sum((await store.counts()).values()) == 0

    async def test_enqueue_reports_progress(self, store: Store) -> None:
        stored: list[int] = []
        ids = await store.enqueue([spec(id=f"p{n}") for n in range(7)], progress=stored.append)
        assert len(ids) == 7
        assert sum(stored) == 7 and all(n > 0 for n in stored)

    async def test_run_at_sets_next_run_at(self, store: Store) -> None:
        await store.enqueue([spec(id="later", run_at=T0 + 600)])
        job = await store.get("later")
        assert job.run_at == job.next_run_at == T0 + 600
        assert job.created_at == T0

    async def test_enqueue_defaults_come_from_config(self, store: Store) -> None:
        await store.enqueue([spec(id="before")])
        before = await store.get("before")
        assert before.max_retries == CONFIG_KEYS["max-retries"].default == 3
        assert before.timeout is None
        await store.set_config("max-retries", 7)
        await store.set_config("job-timeout", 42.0)
        await store.enqueue([spec(id="after"), spec(id="own", max_retries=1, timeout=5.0)])
        after, own = await store.get("after"), await store.get("own")
        assert (after.max_retries, after.timeout) == (7, 42.0)
        assert (own.max_retries, own.timeout) == (1, 5.0)
        # the default is fixed at enqueue time
        assert (await store.get("before")).max_retries == 3

    async def test_duplicate_within_a_batch_stores_nothing(self, store: Store) -> None:
        with pytest.raises(DuplicateJobId, match="'dup'") as info:
            await store.enqueue([spec(id="ok1"), spec(id="dup"), spec(), spec(id="dup")])
        assert isinstance(info.value, BadInput)
        assert info.value.job_id == "dup"
        assert await store.list_jobs(None, 100) == []

    async def test_duplicate_of_an_existing_job_stores_nothing(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.enqueue([spec("original", id="taken")])
        clock.now = T0 + 1
        with pytest.raises(DuplicateJobId, match="'taken' already exists") as info:
            await store.enqueue([spec(id="new1"), spec(), spec("again", id="taken")])
        assert isinstance(info.value, BadInput)
        assert info.value.job_id == "taken"
        jobs = await store.list_jobs(None, 100)
        assert [job.id for job in jobs] == ["taken"]
        assert jobs[0].command == "original"
        with pytest.raises(JobNotFound):
            await store.get("new1")

    async def test_a_failed_enqueue_leaves_the_store_usable(self, store: Store) -> None:
        await store.enqueue([spec(id="x")])
        with pytest.raises(BadInput):
            await store.enqueue([spec(id="x")])
        assert await store.enqueue([spec(id="y")]) == ["y"]
        assert (await store.counts())[JobState.PENDING] == 2

    # --- reading --------------------------------------------------------------------------

    async def test_get_unknown(self, store: Store) -> None:
        with pytest.raises(JobNotFound, match="'nope' not found") as info:
            await store.get("nope")
        assert isinstance(info.value, BadInput)
        with pytest.raises(JobNotFound):
            await store.attempts("nope")

    async def test_list_newest_first_with_state_and_limit(
        self, store: Store, clock: ManualClock
    ) -> None:
        clock.now = T0 - 10
        await make_dead(store, ["d1", "d2"])
        for n in range(5):
            clock.now = T0 + n
            await store.enqueue([spec(id=f"j{n}")])
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
        await make_dead(store, ["d"])
        await store.enqueue([spec(id="p1"), spec(id="p2")])
        assert await store.counts() == {
            **dict.fromkeys(JobState, 0),
            JobState.PENDING: 2,
            JobState.DEAD: 1,
        }

    async def test_counts_after_transitions(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="a"), spec(id="b"), spec(id="c", max_retries=0)])
        jobs = {job.id: job for job in await store.claim("e1", 3, LEASE)}
        assert await store.counts() == {**dict.fromkeys(JobState, 0), JobState.PROCESSING: 3}
        clock.now = T0 + 1
        assert (await finish(store, jobs["a"], success())).state is JobState.COMPLETED
        assert (await finish(store, jobs["b"], failure())).state is JobState.FAILED
        assert (await finish(store, jobs["c"], failure())).state is JobState.DEAD
        assert await store.counts() == {
            **dict.fromkeys(JobState, 0),
            JobState.COMPLETED: 1,
            JobState.FAILED: 1,
            JobState.DEAD: 1,
        }

    # --- listings by a JobFilter (store/sqlite_list.py) ------------------------------------

    async def _listed(self, store: Store, **fields: object) -> list[str]:
        job_filter = JobFilter(**fields)  # type: ignore[arg-type]
        return [job.id async for job in store.iter_jobs(job_filter)]

    async def test_label_is_stored(self, store: Store) -> None:
        await store.enqueue([spec(id="l", label="nightly build"), spec(id="n")])
        assert (await store.get("l")).label == "nightly build"
        assert (await store.get("n")).label is None

    async def test_iter_jobs_filters_and_counts(self, store: Store, clock: ManualClock) -> None:
        clock.now = T0 - 100
        await make_dead(store, ["d1"])
        for n in range(4):
            clock.now = T0 + n
            await store.enqueue([spec(f"echo {n}", id=f"j{n}", label="odd" if n % 2 else None)])
        listed = self._listed
        assert await listed(store) == ["j3", "j2", "j1", "j0", "d1"]
        assert await listed(store, limit=2) == ["j3", "j2"]
        assert await listed(store, states=frozenset({JobState.DEAD})) == ["d1"]
        both = frozenset({JobState.DEAD, JobState.PENDING})
        assert await listed(store, states=both, limit=10) == ["j3", "j2", "j1", "j0", "d1"]
        assert await listed(store, grep="odd") == ["j3", "j1"]  # the label
        assert await listed(store, grep="echo 2") == ["j2"]  # the command
        assert await listed(store, grep="d1") == ["d1"]  # the id
        assert await listed(store, grep="ODD") == []  # exact case
        assert await listed(store, since=T0 + 1, until=T0 + 3) == ["j2", "j1"]
        assert await listed(store, until=T0) == ["d1"]
        for fields in ({}, {"grep": "odd"}, {"states": both, "since": T0}, {"grep": "zzz"}):
            job_filter = JobFilter(**fields, limit=1)  # type: ignore[arg-type]
            assert await store.count_jobs(job_filter) == len(await listed(store, **fields))

    async def test_iter_jobs_next_run_order(self, store: Store, clock: ManualClock) -> None:
        clock.now = T0 - 100
        await make_dead(store, ["d1"])
        clock.now = T0
        await store.enqueue([spec(id="late", run_at=T0 + 60), spec(id="now")])
        clock.now = T0 + 1
        await store.enqueue([spec(id="soon", run_at=T0 + 30)])
        order = JobOrder.NEXT_RUN
        # waiting jobs soonest due first, then the others newest first
        assert await self._listed(store, order=order) == ["now", "soon", "late", "d1"]
        assert await self._listed(store, order=order, limit=2) == ["now", "soon"]
        dead = frozenset({JobState.DEAD})
        assert await self._listed(store, order=order, states=dead) == ["d1"]

    async def test_iter_jobs_pages_through_jobs_of_one_instant(self, store: Store) -> None:
        """More jobs than a page, all created at the same instant: each listed once, newest
        (last enqueued) first, across the page boundaries."""
        ids = await store.enqueue([spec(id=f"j{n:05d}") for n in range(5_500)])
        listed = await self._listed(store)
        assert listed == ids[::-1]
        assert await self._listed(store, limit=5_001) == ids[::-1][:5_001]
        assert await store.count_jobs(JobFilter()) == 5_500

    async def test_an_unfinished_listing_leaves_the_store_usable(self, store: Store) -> None:
        await store.enqueue([spec(id=f"j{n}") for n in range(3_000)])
        jobs = store.iter_jobs(JobFilter())
        assert (await anext(jobs)).id == "j2999"
        await jobs.aclose()  # type: ignore[attr-defined]
        assert (await store.get("j0")).id == "j0"
        assert await store.count_jobs(JobFilter()) == 3_000

    # --- config ---------------------------------------------------------------------------

    async def test_config_defaults(self, store: Store) -> None:
        config = await store.config()
        assert config == Config()
        assert config.as_dict() == {name: key.default for name, key in CONFIG_KEYS.items()}

    async def test_config_set_and_get(self, store: Store, open_queue: Opener) -> None:
        await store.set_config("concurrency", 8)
        await store.set_config("job-timeout", 30.0)
        await store.set_config("job-timeout", None)
        await store.set_config("backoff-base", 1.5)
        config = await store.config()
        assert (config.concurrency, config.job_timeout, config.backoff_base) == (8, None, 1.5)
        assert (config.get("concurrency"), config.get("job-timeout")) == (8, None)
        assert config.max_retries == config.get("max-retries") == 3
        assert set(config.as_dict()) == set(CONFIG_KEYS)
        other = await open_queue()
        assert await other.config() == config

    async def test_set_config_of_an_unknown_key_changes_nothing(self, store: Store) -> None:
        before = await store.config()
        with pytest.raises(BadInput, match="colour"):
            await store.set_config("colour", "red")
        assert await store.config() == before

    # --- claim ----------------------------------------------------------------------------

    async def test_claim_order(self, store: Store, clock: ManualClock) -> None:
        clock.now = T0 - 10
        await store.enqueue(
            [
                spec(id="a", run_at=T0 - 2),
                spec(id="b", priority=5, run_at=T0 - 1),
                spec(id="d", run_at=T0 - 3),
                spec(id="c", run_at=T0 - 3),
                spec(id="e", priority=-1, run_at=T0 - 9),
                spec(id="f", priority=5, run_at=T0 - 1),
            ]
        )
        clock.now = T0
        assert [j.id for j in await store.claim("e1", 3, LEASE)] == ["b", "f", "c"]
        assert [j.id for j in await store.claim("e1", 1, LEASE)] == ["d"]
        assert [j.id for j in await store.claim("e1", 10, LEASE)] == ["a", "e"]
        assert await store.claim("e1", 10, LEASE) == []

    async def test_claim_marks_processing_under_a_lease(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.enqueue([spec(id="a")])
        clock.now = T0 + 1
        [job] = await store.claim("engine-1", 5, LEASE)
        assert job.state is JobState.PROCESSING
        assert (job.attempts, job.runs) == (1, 1)
        assert job.lease_owner == "engine-1"
        assert job.lease_expires_at == T0 + 1 + LEASE
        assert job.started_at == T0 + 1
        assert await store.get("a") == job
        [attempt] = await store.attempts("a")
        assert (attempt.run, attempt.engine, attempt.started_at) == (1, "engine-1", T0 + 1)
        assert attempt.finished_at is None and attempt.duration is None
        assert attempt.error_kind is None

    async def test_claim_respects_next_run_at(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="now"), spec(id="later", run_at=T0 + 100)])
        assert [j.id for j in await store.claim("e1", 10, LEASE)] == ["now"]
        clock.now = T0 + 99.9
        assert await store.claim("e1", 10, LEASE) == []
        clock.now = T0 + 100
        assert [j.id for j in await store.claim("e1", 10, LEASE)] == ["later"]

    async def test_claim_limit(self, store: Store) -> None:
        await store.enqueue([spec(id=f"j{n:02}") for n in range(10)])
        assert len(await store.claim("e1", 4, LEASE)) == 4
        assert len(await store.claim("e1", 4, LEASE)) == 4
        assert len(await store.claim("e1", 4, LEASE)) == 2
        assert (await store.counts())[JobState.PROCESSING] == 10

    async def test_concurrent_claims_are_disjoint(self, store: Store, open_queue: Opener) -> None:
        """Several stores on one queue (as several processes would be) never share a job."""
        ids = {f"j{n:03}" for n in range(300)}
        await store.enqueue([spec(id=job_id) for job_id in sorted(ids)])
        stores = [store, await open_queue(), await open_queue()]

        async def drain(index: int) -> list[str]:
            got: list[str] = []
            while batch := await stores[index].claim(f"e{index}", 7, LEASE):
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
        await store.enqueue([spec(id=f"j{n:03}") for n in range(300)])
        stores = [store, await open_queue(), await open_queue()]
        results = await asyncio.gather(
            *(s.claim(f"e{i}", 200, LEASE) for i, s in enumerate(stores))
        )
        claimed = [job.id for result in results for job in result]
        assert len(claimed) == len(set(claimed)) == 300
        assert all(len(result) <= 200 for result in results)
        attempts = [len(await store.attempts(job_id)) for job_id in claimed]
        assert attempts == [1] * 300

    # --- finish ---------------------------------------------------------------------------

    async def test_success_completes(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="a")])
        job = await claim_one(store, "a")
        clock.now = T0 + 2.5
        done = await finish(store, job, success(stdout=b"hello\n", stderr=b"warn\n"), 96.5)
        assert done.state is JobState.COMPLETED
        assert (done.exit_code, done.finished_at, done.attempts, done.runs) == (0, T0 + 2.5, 1, 1)
        assert done.lease_owner is done.lease_expires_at is done.pid is None
        assert done.last_error is done.error_kind is None
        [attempt] = await store.attempts("a")
        assert (attempt.stdout, attempt.stderr, attempt.exit_code) == (b"hello\n", b"warn\n", 0)
        assert attempt.finished_at == T0 + 2.5
        assert attempt.duration == pytest.approx(2.5)
        assert not attempt.stdout_truncated and not attempt.stderr_truncated
        assert attempt.error is attempt.error_kind is None
        clock.now = T0 + 1000
        assert await store.claim("e1", 10, LEASE) == []

    async def test_failure_with_retries_left_waits_for_the_retry_delay(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.enqueue([spec(id="a", max_retries=2)])
        job = await claim_one(store, "a")
        outcome = failure(3, "exit code 3", stdout=b"o" * 10, stderr=b"e", stderr_truncated=True)
        clock.now = T0 + 1
        failed = await finish(store, job, outcome, retry_delay=49.0)
        assert (failed.state, failed.next_run_at, failed.attempts) == (JobState.FAILED, T0 + 50, 1)
        assert (failed.exit_code, failed.last_error) == (3, "exit code 3")
        assert failed.error_kind is ErrorKind.EXIT
        assert failed.run_at == T0  # the original schedule is kept
        [attempt] = await store.attempts("a")
        assert (attempt.exit_code, attempt.error, attempt.stdout) == (3, "exit code 3", b"o" * 10)
        assert attempt.stderr_truncated and not attempt.stdout_truncated
        clock.now = T0 + 49
        assert await store.claim("e1", 10, LEASE) == []
        assert await store.due_in() == 1.0
        clock.now = T0 + 50
        again = await claim_one(store, "a")
        assert (again.attempts, again.runs) == (2, 2)

    async def test_failure_beyond_max_retries_is_dead(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.enqueue([spec(id="a", max_retries=1)])
        first = await claim_one(store, "a")
        clock.now = T0 + 1
        assert (await finish(store, first, failure(), 1.0)).state is JobState.FAILED
        clock.now = T0 + 2
        second = await claim_one(store, "a")
        clock.now = T0 + 3
        dead = await finish(store, second, failure(error="boom"), 6.0)
        assert (dead.state, dead.attempts, dead.runs, dead.last_error) == (
            JobState.DEAD,
            2,
            2,
            "boom",
        )
        assert [a.run for a in await store.attempts("a")] == [1, 2]
        clock.now = T0 + 10_000
        assert await store.claim("e1", 10, LEASE) == []
        assert await store.due_in() is None

    async def test_no_retries_means_dead_after_one_failure(self, store: Store) -> None:
        await store.enqueue([spec(id="a", max_retries=0)])
        job = await claim_one(store, "a")
        assert (await finish(store, job, failure())).state is JobState.DEAD

    async def test_interrupted_goes_back_to_pending(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="a", max_retries=0)])
        job = await claim_one(store, "a")
        clock.now = T0 + 5
        outcome = Outcome(ErrorKind.INTERRUPTED, error=KillReason.STOP.message)
        back = await finish(store, job, outcome, retry_delay=994.0)
        assert (back.state, back.attempts, back.runs) == (JobState.PENDING, 0, 1)
        assert back.next_run_at == T0 + 5
        assert back.lease_owner is None
        assert back.error_kind is ErrorKind.INTERRUPTED
        again = await claim_one(store, "a")
        assert (again.attempts, again.runs) == (1, 2)
        # no retry was used up: a failure now is its first
        clock.now = T0 + 6
        assert (await finish(store, again, failure())).state is JobState.DEAD
        assert [a.run for a in await store.attempts("a")] == [1, 2]

    async def test_canceled_outcome(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="a")])
        job = await claim_one(store, "a")
        clock.now = T0 + 1
        outcome = Outcome(ErrorKind.CANCELED, exit_code=None, error=KillReason.CANCEL.message)
        canceled = await finish(store, job, outcome)
        assert canceled.state is JobState.CANCELED
        assert (canceled.error_kind, canceled.last_error) == (
            ErrorKind.CANCELED,
            "canceled by user",
        )
        assert (await store.get("a")).state is JobState.CANCELED

    @pytest.mark.parametrize(
        ("outcome", "state"),
        [
            (failure(2, "exit code 2"), JobState.FAILED),
            (Outcome(ErrorKind.TIMEOUT, error="timed out after 1s"), JobState.FAILED),
            (
                Outcome(ErrorKind.SPAWN, error="working directory '/x' does not exist"),
                JobState.FAILED,
            ),
            (Outcome(ErrorKind.ENGINE_DIED, error="the engine died"), JobState.FAILED),
            (Outcome(ErrorKind.INTERRUPTED, error=KillReason.STOP.message), JobState.PENDING),
            (Outcome(ErrorKind.CANCELED, error=KillReason.CANCEL.message), JobState.CANCELED),
            (success(), JobState.COMPLETED),
        ],
        ids=lambda value: value.error_kind or "success" if isinstance(value, Outcome) else None,
    )
    async def test_the_error_kind_is_recorded_on_the_attempt_and_the_job(
        self, store: Store, outcome: Outcome, state: JobState
    ) -> None:
        await store.enqueue([spec(id="a")])
        job = await finish(store, await claim_one(store, "a"), outcome)
        assert job.state is state
        assert (job.error_kind, job.last_error, job.exit_code) == (
            outcome.error_kind,
            outcome.error,
            outcome.exit_code,
        )
        [attempt] = await store.attempts("a")
        assert (attempt.error_kind, attempt.error, attempt.exit_code) == (
            outcome.error_kind,
            outcome.error,
            outcome.exit_code,
        )

    async def test_each_attempt_keeps_its_error_kind(self, store: Store) -> None:
        """The job shows its last attempt's end (a success clears it); each attempt keeps its
        own."""
        await store.enqueue([spec(id="a", max_retries=5)])
        kinds = [ErrorKind.TIMEOUT, ErrorKind.EXIT, ErrorKind.ENGINE_DIED]
        for kind in kinds:
            job = await finish(
                store, await claim_one(store, "a"), Outcome(kind, error=str(kind)), 0
            )
            assert (job.state, job.error_kind, job.last_error) == (JobState.FAILED, kind, str(kind))
        done = await finish(store, await claim_one(store, "a"), success())
        assert (done.state, done.error_kind, done.last_error) == (JobState.COMPLETED, None, None)
        assert [a.error_kind for a in await store.attempts("a")] == [*kinds, None]

    # --- output in order, and permanent failures (issue 10) ----------------------------------

    async def test_the_output_comes_back_in_the_order_it_was_written(
        self, store: Store, open_queue: Opener
    ) -> None:
        chunks = (
            Chunk("stdout", b"one\n"),
            Chunk("stderr", b"e\x00\xff\n"),  # any bytes
            Chunk("stdout", b"two" * 50_000),
            Chunk("stderr", b"e2"),
        )
        outcome = success(
            stdout=b"one\n" + b"two" * 50_000,
            stderr=b"e\x00\xff\ne2",
            stdout_truncated=True,
            output=chunks,
        )
        await store.enqueue([spec(id="a")])
        await finish(store, await claim_one(store, "a"), outcome)
        [attempt] = await (await open_queue()).attempts("a")
        assert attempt.chunks() == attempt.output == chunks
        assert (attempt.stdout, attempt.stderr) == (outcome.stdout, outcome.stderr)
        assert attempt.stdout_truncated and not attempt.stderr_truncated

    async def test_an_outcome_without_order_reads_back_stdout_then_stderr(
        self, store: Store
    ) -> None:
        await store.enqueue([spec(id="a"), spec(id="quiet")])
        await finish(store, await claim_one(store, "a"), success(stdout=b"o", stderr=b"e"))
        [attempt] = await store.attempts("a")
        assert attempt.chunks() == (Chunk("stdout", b"o"), Chunk("stderr", b"e"))
        await finish(store, await claim_one(store, "quiet"), success(output=()))
        [quiet] = await store.attempts("quiet")
        assert (quiet.chunks(), quiet.stdout, quiet.stderr) == ((), b"", b"")

    async def test_a_permanent_failure_is_dead_at_once(self, store: Store) -> None:
        await store.enqueue([spec(id="a", max_retries=5)])
        outcome = Outcome(
            ErrorKind.SPAWN, error="working directory '/x' does not exist", permanent=True
        )
        dead = await finish(store, await claim_one(store, "a"), outcome)
        assert (dead.state, dead.attempts, dead.error_kind) == (JobState.DEAD, 1, ErrorKind.SPAWN)
        assert dead.last_error == outcome.error

    # --- pause --------------------------------------------------------------------------------

    async def test_a_paused_queue_gives_no_job_to_any_claim(
        self, store: Store, open_queue: Opener, clock: ManualClock
    ) -> None:
        await store.enqueue([spec(id="a"), spec(id="b")])
        assert await store.paused() is False
        await store.set_paused(True)
        other = await open_queue()  # another process, or an engine started later
        assert await other.paused() is True
        assert await other.claim("e1", 10, LEASE) == []
        assert await store.claim("e2", 10, LEASE) == []
        assert await other.due_in() == 0.0  # the jobs are due; the pause holds them
        assert await store.config() == Config()  # not a config key: `config list` shows none
        assert [job.state for job in await store.list_jobs(None, 10)] == [JobState.PENDING] * 2
        await store.set_paused(True)  # twice is harmless
        await other.set_paused(False)
        assert await store.paused() is False
        assert {job.id for job in await store.claim("e1", 10, LEASE)} == {"a", "b"}

    @pytest.mark.parametrize(
        "change", [{"lease_owner": "someone-else"}, {"runs": 2}, {"runs": 0}, {"lease_owner": None}]
    )
    async def test_finish_by_a_stale_holder_changes_nothing(
        self, store: Store, clock: ManualClock, change: dict[str, object]
    ) -> None:
        await store.enqueue([spec(id="a")])
        job = await claim_one(store, "a")
        before = await store_snapshot(store)
        stale = dataclasses.replace(job, **change)  # type: ignore[arg-type]
        outcome = success(stdout=b"x")
        clock.now = T0 + 1
        applied = await store.finish_many([Finish(stale, next_state(stale, outcome, 1.0), outcome)])
        assert applied == [False]
        assert await store_snapshot(store) == before
        # the real holder can still finish it
        assert (await finish(store, job, success())).state is JobState.COMPLETED

    async def test_finish_twice_changes_nothing_the_second_time(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.enqueue([spec(id="a")])
        job = await claim_one(store, "a")
        clock.now = T0 + 1
        await finish(store, job, failure())
        after_first = await store_snapshot(store)
        clock.now = T0 + 3
        outcome = success()
        again = [Finish(job, next_state(job, outcome, 1.0), outcome)]
        assert await store.finish_many(again) == [False]
        assert await store_snapshot(store) == after_first
        # the decision for the job as it now is cannot be made at all, naming the job
        with pytest.raises(InvalidTransition) as info:
            next_state(await store.get("a"), outcome, 1.0)
        assert isinstance(info.value, QueuectlError)
        assert "'a'" in str(info.value)

    async def test_concurrent_finishes_of_one_batch(self, store: Store, clock: ManualClock) -> None:
        """The engine finishes many jobs at once; a stale one among them fails alone."""
        await store.enqueue([spec(id=f"j{n}", max_retries=0) for n in range(20)])
        jobs = await store.claim("e1", 20, LEASE)
        stale = dataclasses.replace(jobs[7], lease_owner="gone")

        async def end(job: Job, outcome: Outcome) -> bool:
            transition = next_state(job, outcome, 1.0)
            [applied] = await store.finish_many([Finish(job, transition, outcome)])
            return applied

        clock.now = T0 + 1
        results = await asyncio.gather(
            *(end(job, success() if n % 2 else failure()) for n, job in enumerate(jobs) if n != 7),
            end(stale, success()),
        )
        assert results == [True] * 19 + [False]
        states = {job.id: job.state for job in await store.list_jobs(None, 100)}
        assert states == {
            job.id: (
                JobState.PROCESSING if n == 7 else JobState.COMPLETED if n % 2 else JobState.DEAD
            )
            for n, job in enumerate(jobs)
        }
        counts = await store.counts()
        assert (counts[JobState.COMPLETED], counts[JobState.DEAD], counts[JobState.PROCESSING]) == (
            9,
            10,
            1,
        )

    async def test_finish_many_applies_the_live_finishes_and_refuses_a_stale_one(
        self, store: Store, clock: ManualClock
    ) -> None:
        """One batch (one transaction) with a stale finish in the middle and pids besides:
        the stale finish answers False and changes nothing; everything else applies."""
        await store.enqueue([spec(id=job_id, max_retries=1) for job_id in "abcde"])
        jobs = {job.id: job for job in await store.claim("e1", 5, LEASE)}
        stale = dataclasses.replace(jobs["c"], runs=jobs["c"].runs + 1)
        before_c = await everything(store, "c")
        ends = {
            "a": success(stdout=b"a\n"),
            "b": failure(4, "exit code 4", stderr=b"b\n"),
            "c": success(stdout=b"stale\n"),
            "d": Outcome(ErrorKind.INTERRUPTED, error=KillReason.STOP.message),
        }
        finishes = [
            Finish(stale if job_id == "c" else jobs[job_id], next_state(jobs[job_id], o, 10.0), o)
            for job_id, o in ends.items()
        ]
        pids = [
            PidUpdate(jobs["e"], 4242),
            PidUpdate(stale, 777),
            PidUpdate(dataclasses.replace(jobs["e"], lease_owner="other"), 1),
        ]
        clock.now = T0 + 2
        assert await store.finish_many(finishes, pids) == [True, True, False, True]

        assert await everything(store, "c") == before_c
        got = {job_id: await store.get(job_id) for job_id in "abde"}
        assert got["a"].state is JobState.COMPLETED and got["a"].finished_at == T0 + 2
        assert (got["b"].state, got["b"].next_run_at) == (JobState.FAILED, T0 + 12)
        assert (got["b"].exit_code, got["b"].error_kind) == (4, ErrorKind.EXIT)
        assert (got["d"].state, got["d"].attempts, got["d"].next_run_at) == (
            JobState.PENDING,
            0,
            T0 + 2,
        )
        assert (got["e"].state, got["e"].pid) == (JobState.PROCESSING, 4242)
        assert all(got[i].pid is got[i].lease_owner is None for i in "abd")
        [a] = await store.attempts("a")
        [b] = await store.attempts("b")
        assert (a.stdout, a.finished_at, b.stderr, b.finished_at) == (
            b"a\n",
            T0 + 2,
            b"b\n",
            T0 + 2,
        )
        [e] = await store.attempts("e")
        assert e.finished_at is None

    async def test_finish_many_of_nothing(self, store: Store) -> None:
        await store.enqueue([spec(id="a")])
        job = await claim_one(store, "a")
        before = await store_snapshot(store)
        assert await store.finish_many([]) == []
        assert await store_snapshot(store) == before
        assert await store.finish_many([], [PidUpdate(job, 99)]) == []
        assert (await store.get("a")).pid == 99

    async def test_set_pid(self, store: Store) -> None:
        await store.enqueue([spec(id="a")])
        job = await claim_one(store, "a")
        assert await store.finish_many([], [PidUpdate(job, 4242)]) == []
        assert (await store.get("a")).pid == 4242
        await store.finish_many([], [PidUpdate(dataclasses.replace(job, lease_owner="other"), 1)])
        assert (await store.get("a")).pid == 4242
        await store.finish_many([], [PidUpdate(dataclasses.replace(job, runs=2), 2)])
        assert (await store.get("a")).pid == 4242
        await finish(store, job, success())
        assert (await store.get("a")).pid is None

    # --- the dead letter queue ------------------------------------------------------------

    async def test_retry_dead_by_id(self, store: Store, clock: ManualClock) -> None:
        await make_dead(store, ["d1", "d2"])
        assert (await store.get("d1")).error_kind is ErrorKind.EXIT
        clock.now = T0 + 100
        assert await store.retry_dead(["d1"]) == ["d1"]
        job = await store.get("d1")
        assert (job.state, job.attempts, job.next_run_at) == (JobState.PENDING, 0, T0 + 100)
        assert job.last_error is job.exit_code is job.error_kind is None
        assert job.runs == 1  # the history is kept
        [attempt] = await store.attempts("d1")
        assert attempt.error_kind is ErrorKind.EXIT
        assert (await store.get("d2")).state is JobState.DEAD
        assert [j.id for j in await store.claim("e1", 10, LEASE)] == ["d1"]

    async def test_retry_dead_with_an_id_given_twice(self, store: Store) -> None:
        await make_dead(store, ["d1", "d2"])
        assert await store.retry_dead(["d1", "d2", "d1"]) == ["d1", "d2"]
        assert (await store.get("d1")).state is JobState.PENDING
        assert (await store.get("d2")).state is JobState.PENDING

    async def test_retry_all_dead(self, store: Store) -> None:
        await make_dead(store, ["d1", "d2", "d3"])
        await store.enqueue([spec(id="p")])
        assert sorted(await store.retry_dead(None)) == ["d1", "d2", "d3"]
        assert (await store.counts())[JobState.PENDING] == 4
        assert await store.retry_dead(None) == []

    async def test_retry_of_a_job_that_is_not_dead_changes_nothing(self, store: Store) -> None:
        await make_dead(store, ["d1"])
        await store.enqueue([spec(id="p")])
        before = await store_snapshot(store)
        with pytest.raises(BadInput, match="'p' is pending, not dead"):
            await store.retry_dead(["d1", "p"])
        with pytest.raises(JobNotFound):
            await store.retry_dead(["d1", "nope"])
        assert await store_snapshot(store) == before

    async def test_cancel_waiting_job(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="a"), spec(id="b")])
        clock.now = T0 + 1
        job = await store.cancel("a")
        assert job.state is JobState.CANCELED
        assert (job.error_kind, job.last_error) == (ErrorKind.CANCELED, KillReason.CANCEL.message)
        assert job.finished_at == job.updated_at == T0 + 1
        assert await store.attempts("a") == []  # it never ran
        clock.now = T0 + 2
        assert [j.id for j in await store.claim("e1", 10, LEASE)] == ["b"]
        # a running job is returned as it is, for the caller to deal with
        clock.now = T0 + 3
        running = await store.get("b")
        assert await store.cancel("b") == running
        with pytest.raises(JobNotFound):
            await store.cancel("nope")

    async def test_cancel_a_failed_job_and_not_a_finished_one(self, store: Store) -> None:
        await store.enqueue([spec(id="f", max_retries=1), spec(id="c")])
        claimed = {job.id: job for job in await store.claim("e1", 2, LEASE)}
        await finish(store, claimed["f"], failure(), retry_delay=60.0)
        await finish(store, claimed["c"], success())
        assert (await store.cancel("f")).state is JobState.CANCELED
        before = await everything(store, "c")
        assert (await store.cancel("c")).state is JobState.COMPLETED
        assert await everything(store, "c") == before

    # --- the engine's bookkeeping ---------------------------------------------------------

    async def test_orphans_are_jobs_whose_lease_expired(
        self, store: Store, clock: ManualClock
    ) -> None:
        """With no engine attached, only an expired lease makes a job an orphan."""
        await store.enqueue(
            [spec(id="mine"), spec(id="theirs"), spec(id="waiting", run_at=T0 + 99)]
        )
        await claim_one(store, "mine", owner="me")
        await claim_one(store, "theirs", owner="old-engine")
        clock.now = T0 + 1
        assert await store.orphans("me") == []
        clock.now = T0 + LEASE + 1
        assert [j.id for j in await store.orphans("me")] == ["theirs"]
        assert [j.id for j in await store.orphans("old-engine")] == ["mine"]
        # an orphan is the job as it is, with the lease a finish must name
        [orphan] = await store.orphans("me")
        assert orphan == await store.get("theirs")
        assert orphan.lease_owner == "old-engine"

    async def test_orphans_of_an_attached_engine(
        self, store: Store, clock: ManualClock, backend: Backend
    ) -> None:
        await store.enqueue(
            [spec(id="mine"), spec(id="theirs"), spec(id="waiting", run_at=T0 + 99)]
        )
        await claim_one(store, "mine", owner="me")
        await claim_one(store, "theirs", owner="old-engine")
        await store.attach_engine("me")
        clock.now = T0 + 1
        if backend.name in ONE_ENGINE_BACKENDS:
            # only one engine can use the queue: any other owner's job is orphaned at once
            assert [j.id for j in await store.orphans("me")] == ["theirs"]
        else:
            assert await store.orphans("me") == []
        clock.now = T0 + LEASE + 1
        assert [j.id for j in await store.orphans("me")] == ["theirs"]
        await store.detach_engine("me")
        clock.now = T0 + 1
        assert await store.orphans("me") == []  # detached: back to leases

    async def test_recovering_an_orphan(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="a")])
        await claim_one(store, "a", owner="dead-engine")
        clock.now = T0 + LEASE + 1
        [orphan] = await store.orphans("rescuer")
        outcome = Outcome(ErrorKind.ENGINE_DIED, error="the engine running the job died")
        failed = await finish(store, orphan, outcome, retry_delay=2.0)
        assert (failed.state, failed.error_kind, failed.next_run_at) == (
            JobState.FAILED,
            ErrorKind.ENGINE_DIED,
            T0 + LEASE + 3,
        )
        assert await store.orphans("rescuer") == []

    async def test_attaching_a_second_engine_is_refused(
        self, store: Store, open_queue: Opener, backend: Backend
    ) -> None:
        if backend.name not in ONE_ENGINE_BACKENDS:
            pytest.skip(f"{backend.name} allows several engines on one queue")
        other = await open_queue()
        await store.attach_engine("first")
        with pytest.raises(EngineRunning, match="already running"):
            await other.attach_engine("second")
        third = await open_queue()
        with pytest.raises(EngineRunning):
            await third.attach_engine("third")
        await store.detach_engine("first")
        await other.attach_engine("second")  # free again once the first has detached
        with pytest.raises(EngineRunning):
            await store.attach_engine("first")
        await other.close()  # closing a store lets its engine go too
        await store.attach_engine("first")

    async def test_renew_leases(self, store: Store, clock: ManualClock) -> None:
        await store.enqueue([spec(id="a"), spec(id="b"), spec(id="c")])
        await store.claim("e1", 2, LEASE)
        await store.claim("e2", 1, LEASE)
        clock.now = T0 + 470
        assert await store.renew_leases("e1", LEASE) == {"a": 1, "b": 1}  # what e1 holds
        leases = {
            j.id: (j.lease_owner, j.lease_expires_at) for j in await store.list_jobs(None, 10)
        }
        assert leases == {"a": ("e1", T0 + 500), "b": ("e1", T0 + 500), "c": ("e2", T0 + LEASE)}

    async def test_renew_leases_ignores_finished_jobs(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.enqueue([spec(id="a")])
        job = await claim_one(store, "a")
        clock.now = T0 + 1
        await finish(store, job, success())
        assert await store.renew_leases("e1", 499.0) == {}
        done = await store.get("a")
        assert done.lease_expires_at is None and done.state is JobState.COMPLETED

    async def test_due_in(self, store: Store, clock: ManualClock) -> None:
        assert await store.due_in() is None
        assert await store.due_in(retries_only=True) is None
        await store.enqueue([spec(id="late", run_at=T0 + 300), spec(id="soon", run_at=T0 + 60)])
        assert await store.due_in() == 60.0
        assert await store.due_in(retries_only=True) is None
        clock.now = T0 + 10
        assert await store.due_in() == 50.0  # counted from the store's clock
        clock.now = T0 + 60
        assert await store.due_in() == 0.0
        await claim_one(store, "soon")
        assert await store.due_in() == 240.0  # a running job is not waiting
        clock.now = T0
        await store.enqueue([spec(id="fail", max_retries=1)])
        clock.now = T0 + 61
        job = await claim_one(store, "fail")
        clock.now = T0 + 62
        await finish(store, job, failure(), retry_delay=338.0)
        assert await store.due_in() == 238.0
        assert await store.due_in(retries_only=True) == 338.0
        clock.now = T0 + 500
        assert await store.due_in() == -200.0  # overdue: due now

    async def test_wait_for_change_wakes_when_another_store_commits(
        self, store: Store, open_queue: Opener
    ) -> None:
        other = await open_queue()
        assert await store.claim("e1", 1, LEASE) == []  # an idle engine looks, then waits
        waiter = asyncio.create_task(store.wait_for_change(30.0))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        started = time.monotonic()
        await other.enqueue([spec(id="a")])
        assert await asyncio.wait_for(waiter, 10.0) is True
        assert time.monotonic() - started < 5
        assert [job.id for job in await store.claim("e1", 1, LEASE)] == ["a"]

    async def test_wait_for_change_times_out_when_nothing_changes(
        self, store: Store, open_queue: Opener
    ) -> None:
        other = await open_queue()
        await other.enqueue([spec(id="a")])  # before the store has looked
        assert await store.wait_for_change(0.3) is True
        started = time.monotonic()
        assert await store.wait_for_change(0.3) is False
        assert time.monotonic() - started >= 0.29
        # its own commits are not another's change
        await store.enqueue([spec(id="b")])
        assert await store.wait_for_change(0.2) is False
        await other.enqueue([spec(id="c")])
        assert await store.wait_for_change(5.0) is True

    async def test_wait_for_change_of_a_fresh_store_with_no_change(
        self, store: Store, open_queue: Opener
    ) -> None:
        """A store that has not looked at the queue yet, on a queue nobody changes."""
        await open_queue()
        started = time.monotonic()
        assert await store.wait_for_change(0.3) is False
        assert time.monotonic() - started >= 0.29

    async def test_data_survives_close_and_reopen(self, open_queue: Opener) -> None:
        first = await open_queue()
        await make_dead(first, ["d"])
        await first.enqueue([spec("echo kept", id="a", priority=3)])
        await first.set_config("concurrency", 9)
        await first.close()
        second = await open_queue()
        job = await second.get("a")
        assert (job.command, job.priority, job.state) == ("echo kept", 3, JobState.PENDING)
        assert (await second.config()).concurrency == 9
        dead = await second.get("d")
        assert (dead.state, dead.error_kind) == (JobState.DEAD, ErrorKind.EXIT)
        [attempt] = await second.attempts("d")
        assert attempt.error_kind is ErrorKind.EXIT

    async def test_location_names_the_queue(self, store: Store, backend: Backend) -> None:
        assert store.location
        if backend.db is None:
            assert str(backend.home) in store.location
