"""A hypothesis state machine over the real store.

Each example opens a fresh queue in a temporary directory and drives the async store from sync
rules through a private event loop (an asyncio.Runner kept on the machine). Rules play the
engine's and the user's parts (enqueue, claim by two engines, finish with every outcome, alone
or in one batch with pids, crash and recover with and without an attached engine, cancel, dlq
retry, renew leases, record pids, and late "stale" finishes that must change nothing); a
plain-Python model predicts every result. The model decides each finish with the same
states.next_state the engine uses, applied to the model's own view of the job, and the store
must agree. After every step the queue is read back through the Store (list_jobs, attempts)
and checked for the invariants and against the model.

Time is a fake clock injected into the store that only moves forward, so schedules are exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers import Backend, ManualClock, spec, store_snapshot
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from queuectl.errors import BadInput, JobNotFound
from queuectl.models import Attempt, Job, Outcome
from queuectl.states import (
    CANCELABLE,
    FINISHED,
    RUNNABLE,
    ErrorKind,
    JobState,
    KillReason,
    Transition,
    next_state,
)
from queuectl.store import Finish, PidUpdate, Store

OWNERS = ("engine-A", "engine-B")
RESTARTED = "engine-C"  # a fresh engine that recovers after both A and B died
LEASE = 30.0
START = 1_700_000_000.0
DEFAULT_MAX_RETRIES = 3  # config key max-retries
KINDS = ("success", "failure", "timeout", "spawn", "interrupted", "canceled")
DELAYS = [0.0, 1.0, 4.0, 30.0]
EVERYTHING = 1_000_000_000
T = TypeVar("T")


@dataclass
class Expected:
    """What the model says one job must look like in the store."""

    id: str
    priority: int
    max_retries: int
    next_run_at: float
    state: JobState = JobState.PENDING
    attempts: int = 0
    runs: int = 0
    owner: str | None = None
    lease_expires_at: float | None = None
    pid: int | None = None
    error_kind: ErrorKind | None = None
    #: the error kind of each attempt that has ended, by run
    attempt_kinds: dict[int, ErrorKind | None] = dataclasses.field(default_factory=dict)

    def as_job(self) -> Job:
        """The model's view as a Job, for next_state (fields it does not model are blank)."""
        return Job(
            id=self.id,
            command="true",
            state=self.state,
            priority=self.priority,
            max_retries=self.max_retries,
            timeout=None,
            cwd="/",
            env={},
            attempts=self.attempts,
            runs=self.runs,
            created_at=0.0,
            updated_at=0.0,
            run_at=0.0,
            next_run_at=self.next_run_at,
            last_error=None,
            exit_code=None,
            started_at=None,
            finished_at=None,
            lease_owner=self.owner,
            lease_expires_at=self.lease_expires_at,
            pid=self.pid,
            error_kind=self.error_kind,
        )


def outcome_for(kind: str, n: int) -> Outcome:
    if kind == "success":
        return Outcome(None, exit_code=0, stdout=b"ok %d\n" % n)
    if kind == "failure":
        return Outcome(ErrorKind.EXIT, exit_code=1, error="exit code 1", stderr=b"boom\n")
    if kind == "timeout":
        return Outcome(
            ErrorKind.TIMEOUT,
            exit_code=None,
            error="timed out after 1s",
            stdout=b"partial",
            stdout_truncated=True,
        )
    if kind == "spawn":
        return Outcome(ErrorKind.SPAWN, error="working directory '/gone' does not exist")
    if kind == "interrupted":
        return Outcome(ErrorKind.INTERRUPTED, exit_code=None, error=KillReason.STOP.message)
    return Outcome(ErrorKind.CANCELED, exit_code=None, error=KillReason.CANCEL.message)


def some(values: Sequence[T]) -> st.SearchStrategy[list[T]]:
    """A few distinct values of `values`, which may be empty."""
    return st.lists(st.sampled_from(values), unique=True, max_size=4) if values else st.just([])


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="qsm", dir="/tmp"))
        self.runner = asyncio.Runner()
        self.clock = ManualClock(START)
        self.store: Store = self.run(
            Backend("sqlite", self.dir).open(durable=False, clock=self.clock)
        )
        self.count = 0
        self.model: dict[str, Expected] = {}
        self.held: dict[str, Job] = {}  # job id -> the Job of its live claim by a live engine
        self.abandoned: dict[str, Job] = {}  # claims of crashed engines not yet recovered
        self.stale: list[Job] = []  # Job objects of claims that have ended
        self.previous: dict[str, Job] = {}
        self.retried: set[str] = set()  # jobs the current step legitimately took out of dead

    @property
    def now(self) -> float:
        return self.clock.now

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.runner.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def snapshot(self) -> Any:
        return self.run(store_snapshot(self.store))

    # --- the user's side ---------------------------------------------------------------------

    @rule(
        count=st.integers(1, 3),
        priority=st.integers(-2, 2),
        max_retries=st.none() | st.integers(0, 3),
        past=st.none() | st.floats(0, 5, allow_nan=False),
    )
    def enqueue(
        self, count: int, priority: int, max_retries: int | None, past: float | None
    ) -> None:
        run_at = None if past is None else self.now - past
        ids = [f"j{self.count + i}" for i in range(count)]
        self.count += count
        specs = [
            spec("true", id=job_id, priority=priority, max_retries=max_retries, run_at=run_at)
            for job_id in ids
        ]
        assert self.run(self.store.enqueue(specs)) == ids
        for job_id in ids:
            self.model[job_id] = Expected(
                job_id,
                priority,
                DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
                self.now if run_at is None else run_at,
            )

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from([*sorted(self.model), "no-such-job"]))
        if job_id not in self.model:
            before = self.snapshot()
            with pytest.raises(JobNotFound):
                self.run(self.store.cancel(job_id))
            assert self.snapshot() == before
            return
        expected = self.model[job_id]
        if expected.state in CANCELABLE:
            expected.state, expected.error_kind = JobState.CANCELED, ErrorKind.CANCELED
        job = self.run(self.store.cancel(job_id))
        assert job.state is expected.state, (job, expected)

    @rule(data=st.data())
    def retry_dead_ids(self, data: st.DataObject) -> None:
        dead = sorted(i for i, m in self.model.items() if m.state is JobState.DEAD)
        if dead and data.draw(st.booleans(), label="only dead"):
            ids = data.draw(st.lists(st.sampled_from(dead), min_size=1, max_size=3))
        else:
            ids = data.draw(
                st.lists(
                    st.sampled_from([*sorted(self.model), "no-such-job"]), min_size=1, max_size=3
                )
            )
        if all(i in self.model and self.model[i].state is JobState.DEAD for i in ids):
            assert self.run(self.store.retry_dead(ids)) == list(dict.fromkeys(ids))
            for job_id in ids:
                self._retried(job_id)
            return
        before = self.snapshot()
        with pytest.raises(BadInput):  # JobNotFound is a BadInput too
            self.run(self.store.retry_dead(ids))
        assert self.snapshot() == before, "a refused dlq retry changed the queue"

    @rule()
    def retry_all_dead(self) -> None:
        dead = {i for i, m in self.model.items() if m.state is JobState.DEAD}
        assert set(self.run(self.store.retry_dead(None))) == dead
        for job_id in dead:
            self._retried(job_id)

    def _retried(self, job_id: str) -> None:
        expected = self.model[job_id]
        expected.state, expected.attempts, expected.next_run_at = JobState.PENDING, 0, self.now
        expected.error_kind = None
        self.retried.add(job_id)

    # --- the engine's side -------------------------------------------------------------------

    @rule(
        owner=st.sampled_from(OWNERS),
        limit=st.integers(1, 3),
        advance=st.sampled_from([0.0, 0.5, 2.0, 5.0, 20.0]),
    )
    def claim(self, owner: str, limit: int, advance: float) -> None:
        self.advance(advance)
        runnable = [
            m for m in self.model.values() if m.state in RUNNABLE and m.next_run_at <= self.now
        ]
        runnable.sort(key=lambda m: (-m.priority, m.next_run_at, m.id))
        expected = runnable[:limit]
        jobs = self.run(self.store.claim(owner, limit, LEASE))
        assert [job.id for job in jobs] == [m.id for m in expected]
        for job, m in zip(jobs, expected, strict=True):
            m.state, m.owner, m.pid = JobState.PROCESSING, owner, None
            m.lease_expires_at = self.now + LEASE
            m.attempts += 1
            m.runs += 1
            assert job.state is JobState.PROCESSING and job.lease_owner == owner
            assert (job.attempts, job.runs) == (m.attempts, m.runs)
            assert job.lease_expires_at == self.now + LEASE
            self.held[job.id] = job

    @precondition(lambda self: self.held)
    @rule(data=st.data(), pid=st.integers(2, 4_000_000))
    def set_pid(self, data: st.DataObject, pid: int) -> None:
        job = self.held[data.draw(st.sampled_from(sorted(self.held)))]
        assert self.run(self.store.finish_many([], [PidUpdate(job, pid)])) == []
        self.model[job.id].pid = pid

    @rule(owner=st.sampled_from(OWNERS), advance=st.sampled_from([0.0, 1.0, 10.0]))
    def renew_leases(self, owner: str, advance: float) -> None:
        self.advance(advance)
        self.run(self.store.renew_leases(owner, LEASE))
        for m in self.model.values():
            if m.owner == owner:
                m.lease_expires_at = self.now + LEASE
        jobs = {job.id: job for job in self.run(self.store.list_jobs(None, EVERYTHING))}
        for job_id, m in self.model.items():
            if m.owner == owner:
                assert jobs[job_id].lease_expires_at == self.now + LEASE

    def _decide(self, job: Job, outcome: Outcome, delay: float) -> Transition:
        """The transition the engine computes for its claimed Job, which must be the one the
        model computes for its own view of the job."""
        transition = next_state(job, outcome, delay)
        assert next_state(self.model[job.id].as_job(), outcome, delay) == transition
        return transition

    def _finished(self, job: Job, transition: Transition, outcome: Outcome) -> None:
        """Apply a finish that the store applied to the model."""
        m = self.model[job.id]
        assert m.state is transition.from_state is JobState.PROCESSING
        assert (m.owner, m.runs) == (job.lease_owner, job.runs)
        m.state, m.attempts = transition.state, transition.attempts
        if transition.due_in is not None:
            m.next_run_at = self.now + transition.due_in
        m.owner = m.pid = m.lease_expires_at = None
        m.error_kind = outcome.error_kind
        m.attempt_kinds[job.runs] = outcome.error_kind
        self.stale.append(job)

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        kind=st.sampled_from(KINDS),
        delay=st.sampled_from(DELAYS),
        advance=st.sampled_from([0.0, 0.1, 3.0]),
    )
    def finish(self, data: st.DataObject, kind: str, delay: float, advance: float) -> None:
        job = self.held.pop(data.draw(st.sampled_from(sorted(self.held))))
        self.advance(advance)
        outcome = outcome_for(kind, job.runs)
        transition = self._decide(job, outcome, delay)
        assert self.run(self.store.finish_many([Finish(job, transition, outcome)])) == [True]
        self._finished(job, transition, outcome)

    @precondition(lambda self: self.held or self.stale)
    @rule(data=st.data(), advance=st.sampled_from([0.0, 0.1, 3.0]))
    def finish_batch(self, data: st.DataObject, advance: float) -> None:
        """What the engine's group commit writes: several finishes, live and stale in any
        order, and pids, in one finish_many; each stale one answers False."""
        live_ids = data.draw(some(sorted(self.held)), label="live finishes")
        stale = data.draw(some(range(len(self.stale))), label="stale finishes")
        pid_ids = data.draw(some(sorted(self.held)), label="pids")
        stale_pids = data.draw(some(range(len(self.stale))), label="stale pids")
        entries: list[tuple[Job, bool]] = [(self.held[i], True) for i in live_ids]
        entries += [(self.stale[i], False) for i in stale]
        entries = data.draw(st.permutations(entries))
        self.advance(advance)
        finishes: list[Finish] = []
        for job, live in entries:
            outcome = outcome_for(data.draw(st.sampled_from(KINDS)), job.runs)
            delay = data.draw(st.sampled_from(DELAYS))
            transition = (
                self._decide(job, outcome, delay) if live else next_state(job, outcome, delay)
            )
            finishes.append(Finish(job, transition, outcome))
        pids = [PidUpdate(self.held[i], 10 + n) for n, i in enumerate(pid_ids)]
        pids += [PidUpdate(self.stale[i], 5000 + i) for i in stale_pids]
        pids = data.draw(st.permutations(pids))

        applied = self.run(self.store.finish_many(finishes, pids))
        assert applied == [live for _job, live in entries]
        for update in pids:  # before the finishes: a finish then clears the pid
            if update.job.id in self.held and self.held[update.job.id] is update.job:
                self.model[update.job.id].pid = update.pid
        for finish, (job, live) in zip(finishes, entries, strict=True):
            if live:
                del self.held[job.id]
                self._finished(job, finish.transition, finish.outcome)

    @rule(
        crashed=st.sampled_from([*OWNERS, "both"]),
        advance=st.sampled_from([0.0, 1.0, 40.0]),
        attach=st.booleans(),
    )
    def crash_and_recover(self, crashed: str, advance: float, attach: bool) -> None:
        """An engine dies (its in-memory claims are gone); the next one recovers as the engine
        does: every orphan is finished as a failure (ENGINE_DIED). Attached (one engine per
        SQLite queue), every processing job of another owner is an orphan; not attached, only
        those whose lease expired."""
        self.advance(advance)
        if crashed == "both":
            dead_owners, rescuer = set(OWNERS), RESTARTED
        else:
            dead_owners, rescuer = {crashed}, next(o for o in OWNERS if o != crashed)
        for job_id in [i for i, job in self.held.items() if job.lease_owner in dead_owners]:
            self.abandoned[job_id] = self.held.pop(job_id)
        if attach:
            self.run(self.store.attach_engine(rescuer))
        try:
            orphans = self.run(self.store.orphans(rescuer))
        finally:
            if attach:
                self.run(self.store.detach_engine(rescuer))
        expected = {
            i
            for i, m in self.model.items()
            if m.state is JobState.PROCESSING
            and m.owner != rescuer
            and (attach or (m.lease_expires_at is not None and m.lease_expires_at < self.now))
        }
        assert {job.id for job in orphans} == expected
        assert all(job.lease_owner in dead_owners for job in orphans), orphans
        for job in orphans:
            claim = self.abandoned.pop(job.id)  # an orphan is a claim that a dead engine held
            assert (job.lease_owner, job.runs) == (claim.lease_owner, claim.runs), (job, claim)
            self.stale.append(claim)
            outcome = Outcome(
                ErrorKind.ENGINE_DIED, error=f"the engine running the job died ({job.lease_owner})"
            )
            transition = self._decide(job, outcome, 2.0)
            assert self.run(self.store.finish_many([Finish(job, transition, outcome)])) == [True]
            self._finished(job, transition, outcome)

    @precondition(lambda self: self.stale)
    @rule(data=st.data(), kind=st.sampled_from(KINDS))
    def stale_finish(self, data: st.DataObject, kind: str) -> None:
        """A late finish by an engine whose claim has ended must change nothing."""
        job = data.draw(st.sampled_from(self.stale))
        outcome = outcome_for(kind, job.runs)
        before = self.snapshot()
        applied = self.run(
            self.store.finish_many([Finish(job, next_state(job, outcome, 1.0), outcome)])
        )
        assert applied == [False]
        assert self.snapshot() == before, f"a refused finish of {job.id} changed the queue"

    @precondition(lambda self: self.stale)
    @rule(data=st.data(), pid=st.integers(2, 4_000_000))
    def stale_set_pid(self, data: st.DataObject, pid: int) -> None:
        job = data.draw(st.sampled_from(self.stale))
        before = self.snapshot()
        assert self.run(self.store.finish_many([], [PidUpdate(job, pid)])) == []
        assert self.snapshot() == before, f"a stale set_pid of {job.id} changed the queue"

    # --- invariants, checked through the store after every step ------------------------------

    @invariant()
    def queue_is_consistent_and_agrees_with_the_model(self) -> None:
        listed: list[Job] = self.run(self.store.list_jobs(None, EVERYTHING))
        jobs = {job.id: job for job in listed}
        assert len(jobs) == len(listed)
        assert set(jobs) == set(self.model)
        for job_id, job in jobs.items():
            where = f"job {job_id}: {job}"
            assert isinstance(job.state, JobState), where
            assert 0 <= job.attempts <= job.max_retries + 1, where
            assert job.attempts <= job.runs, where
            if job.state is JobState.PROCESSING:
                assert job.lease_owner is not None, where
                assert job.lease_expires_at is not None, where
            else:
                assert job.lease_owner is None, where
                assert job.lease_expires_at is None, where
                assert job.pid is None, where

            runs: list[Attempt] = self.run(self.store.attempts(job_id))
            assert len(runs) == job.runs, (where, runs)
            assert [a.run for a in runs] == list(range(1, job.runs + 1)), (where, runs)
            assert all(a.job_id == job_id for a in runs), (where, runs)
            unfinished = [a.run for a in runs if a.finished_at is None]
            if job.state is JobState.PROCESSING:
                assert unfinished == [job.runs], (where, runs)
                assert runs[-1].engine == job.lease_owner, (where, runs)
            else:
                assert unfinished == [], (where, runs)

            before = self.previous.get(job_id)
            if before is not None and before.state in FINISHED and before != job:
                assert job_id in self.retried, (
                    f"terminal job {job_id} changed without a dlq retry: {before} -> {job}"
                )
                assert (before.state, job.state) == (JobState.DEAD, JobState.PENDING), (
                    before,
                    job,
                )

            m = self.model[job_id]
            got = (
                job.state,
                job.attempts,
                job.runs,
                job.lease_owner,
                job.lease_expires_at,
                job.pid,
                job.next_run_at,
                job.priority,
                job.max_retries,
                job.error_kind,
                {a.run: a.error_kind for a in runs if a.finished_at is not None},
            )
            want = (
                m.state,
                m.attempts,
                m.runs,
                m.owner,
                m.lease_expires_at,
                m.pid,
                m.next_run_at,
                m.priority,
                m.max_retries,
                m.error_kind,
                m.attempt_kinds,
            )
            assert got == want, f"job {job_id}: store {got} != model {want}"
        self.previous = jobs
        self.retried = set()


StoreMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestStoreStateMachine = StoreMachine.TestCase
