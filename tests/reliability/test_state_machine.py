"""A hypothesis state machine over the real SQLite store.

Each example opens a fresh queue in a temporary directory and drives the async store from sync
rules through a private event loop (an asyncio.Runner kept on the machine). Rules play the
engine's and the user's parts (enqueue, claim by two engines, finish with every outcome, crash
and recover, cancel, dlq retry, renew leases, record pids, and late "stale" finishes that must be
refused); a plain-Python model predicts every result. After every step the queue file is read
straight from disk with the stdlib sqlite3 module (read-only) and checked for the invariants and
against the model.

Time is a fake clock (`now`) that only moves forward, so schedules are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import db_snapshot, spec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from queuectl.errors import BadInput, InvalidTransition, JobNotFound
from queuectl.models import TERMINAL_STATES, Job, JobState, Outcome, OutcomeKind
from queuectl.settings import DB_NAME
from queuectl.store import Store, open_store

OWNERS = ("engine-A", "engine-B")
RESTARTED = "engine-C"  # a fresh engine that recovers after both A and B died
LEASE = 30.0
START = 1_700_000_000.0
DEFAULT_MAX_RETRIES = 3  # config key max-retries
STATES = {state.value for state in JobState}
KINDS = ("success", "failure", "timeout", "interrupted", "canceled")


@dataclass
class Expected:
    """What the model says one job must look like in the database."""

    id: str
    priority: int
    max_retries: int
    next_run_at: float
    state: JobState = JobState.PENDING
    attempts: int = 0
    runs: int = 0
    owner: str | None = None
    pid: int | None = None


def outcome_for(kind: str, n: int) -> Outcome:
    if kind == "success":
        return Outcome(OutcomeKind.SUCCESS, exit_code=0, stdout=b"ok %d\n" % n)
    if kind == "failure":
        return Outcome(OutcomeKind.FAILURE, exit_code=1, error="exit code 1", stderr=b"boom\n")
    if kind == "timeout":
        return Outcome(
            OutcomeKind.FAILURE,
            exit_code=None,
            error="timed out after 1s",
            stdout=b"partial",
            stdout_truncated=True,
        )
    if kind == "interrupted":
        return Outcome(
            OutcomeKind.INTERRUPTED, exit_code=-15, error="interrupted: the engine was stopped"
        )
    return Outcome(OutcomeKind.CANCELED, exit_code=-15, error="canceled by user")


def read_db(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Every job row and every attempt row, read-only with the stdlib module."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        jobs = {row["id"]: dict(row) for row in conn.execute("SELECT * FROM jobs")}
        attempts: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in jobs}
        for row in conn.execute("SELECT * FROM attempts ORDER BY job_id, run"):
            attempts.setdefault(row["job_id"], []).append(dict(row))
    return jobs, attempts


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="qsm", dir="/tmp"))
        self.runner = asyncio.Runner()
        self.store: Store = self.run(open_store(self.dir, durable=False))
        self.now = START
        self.count = 0
        self.model: dict[str, Expected] = {}
        self.held: dict[str, Job] = {}  # job id -> the Job of its live claim (any owner)
        self.stale: list[Job] = []  # Job objects of claims that have ended
        self.previous: dict[str, dict[str, Any]] = {}
        self.retried: set[str] = set()  # jobs the current step legitimately took out of dead

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.runner.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def snapshot(self) -> Any:
        return db_snapshot(self.dir)

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
        assert self.run(self.store.enqueue(specs, self.now)) == ids
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
                self.run(self.store.cancel(job_id, self.now))
            assert self.snapshot() == before
            return
        expected = self.model[job_id]
        if expected.state in (JobState.PENDING, JobState.FAILED):
            expected.state = JobState.CANCELED
        job = self.run(self.store.cancel(job_id, self.now))
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
            assert self.run(self.store.retry_dead(ids, self.now)) == list(dict.fromkeys(ids))
            for job_id in ids:
                self._retried(job_id)
            return
        before = self.snapshot()
        with pytest.raises(BadInput):  # JobNotFound is a BadInput too
            self.run(self.store.retry_dead(ids, self.now))
        assert self.snapshot() == before, "a refused dlq retry changed the queue"

    @rule()
    def retry_all_dead(self) -> None:
        dead = {i for i, m in self.model.items() if m.state is JobState.DEAD}
        assert set(self.run(self.store.retry_dead(None, self.now))) == dead
        for job_id in dead:
            self._retried(job_id)

    def _retried(self, job_id: str) -> None:
        expected = self.model[job_id]
        expected.state, expected.attempts, expected.next_run_at = JobState.PENDING, 0, self.now
        self.retried.add(job_id)

    # --- the engine's side -------------------------------------------------------------------

    @rule(
        owner=st.sampled_from(OWNERS),
        limit=st.integers(1, 3),
        advance=st.sampled_from([0.0, 0.5, 2.0, 5.0, 20.0]),
    )
    def claim(self, owner: str, limit: int, advance: float) -> None:
        self.now += advance
        runnable = [
            m
            for m in self.model.values()
            if m.state in (JobState.PENDING, JobState.FAILED) and m.next_run_at <= self.now
        ]
        runnable.sort(key=lambda m: (-m.priority, m.next_run_at, m.id))
        expected = runnable[:limit]
        jobs = self.run(self.store.claim(owner, limit, self.now, LEASE))
        assert [job.id for job in jobs] == [m.id for m in expected]
        for job, m in zip(jobs, expected, strict=True):
            m.state, m.owner, m.pid = JobState.PROCESSING, owner, None
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
        self.run(self.store.set_pid(job, pid))
        self.model[job.id].pid = pid

    @rule(owner=st.sampled_from(OWNERS), advance=st.sampled_from([0.0, 1.0, 10.0]))
    def renew_leases(self, owner: str, advance: float) -> None:
        self.now += advance
        self.run(self.store.renew_leases(owner, self.now + LEASE))
        jobs, _ = read_db(self.dir / DB_NAME)
        for job_id, m in self.model.items():
            if m.owner == owner:
                assert jobs[job_id]["lease_expires_at"] == self.now + LEASE

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        kind=st.sampled_from(KINDS),
        delay=st.sampled_from([0.0, 1.0, 4.0, 30.0]),
        advance=st.sampled_from([0.0, 0.1, 3.0]),
    )
    def finish(self, data: st.DataObject, kind: str, delay: float, advance: float) -> None:
        job = self.held.pop(data.draw(st.sampled_from(sorted(self.held))))
        self.now += advance
        state = self.run(
            self.store.finish(job, outcome_for(kind, job.runs), self.now, self.now + delay)
        )
        assert state is self._finished(job.id, kind, self.now + delay)
        self.stale.append(job)

    def _finished(self, job_id: str, kind: str, retry_at: float) -> JobState:
        """Apply a finish to the model, as the store must."""
        m = self.model[job_id]
        assert m.state is JobState.PROCESSING
        m.owner = m.pid = None
        if kind == "success":
            m.state = JobState.COMPLETED
        elif kind == "interrupted":
            m.state, m.attempts, m.next_run_at = JobState.PENDING, m.attempts - 1, self.now
        elif kind == "canceled":
            m.state = JobState.CANCELED
        elif m.attempts > m.max_retries:
            m.state = JobState.DEAD
        else:
            m.state, m.next_run_at = JobState.FAILED, retry_at
        return m.state

    @rule(crashed=st.sampled_from([*OWNERS, "both"]), advance=st.sampled_from([0.0, 1.0, 40.0]))
    def crash_and_recover(self, crashed: str, advance: float) -> None:
        """An engine dies (its in-memory claims are gone); the next one recovers as
        Engine.recover does: every processing job it does not own is finished as a failure."""
        self.now += advance
        if crashed == "both":
            dead_owners, rescuer = set(OWNERS), RESTARTED
        else:
            dead_owners, rescuer = {crashed}, next(o for o in OWNERS if o != crashed)
        for job_id in [i for i, job in self.held.items() if job.lease_owner in dead_owners]:
            self.stale.append(self.held.pop(job_id))
        orphans = self.run(self.store.orphans(rescuer, self.now))
        expected = {
            i
            for i, m in self.model.items()
            if m.state is JobState.PROCESSING and m.owner != rescuer
        }
        assert {job.id for job in orphans} == expected
        assert all(job.lease_owner in dead_owners for job in orphans), orphans
        for job in orphans:
            outcome = Outcome(
                OutcomeKind.FAILURE, error=f"the engine running the job died ({job.lease_owner})"
            )
            retry_at = self.now + 2.0
            state = self.run(self.store.finish(job, outcome, self.now, retry_at))
            assert state is self._finished(job.id, "failure", retry_at)
            self.stale.append(job)

    @precondition(lambda self: self.stale)
    @rule(data=st.data(), kind=st.sampled_from(KINDS))
    def stale_finish(self, data: st.DataObject, kind: str) -> None:
        """A late finish by an engine whose claim has ended must be refused, changing nothing."""
        job = data.draw(st.sampled_from(self.stale))
        before = self.snapshot()
        with pytest.raises(InvalidTransition):
            self.run(self.store.finish(job, outcome_for(kind, job.runs), self.now, self.now + 1.0))
        assert self.snapshot() == before, f"a refused finish of {job.id} changed the queue"

    @precondition(lambda self: self.stale)
    @rule(data=st.data(), pid=st.integers(2, 4_000_000))
    def stale_set_pid(self, data: st.DataObject, pid: int) -> None:
        job = data.draw(st.sampled_from(self.stale))
        before = self.snapshot()
        self.run(self.store.set_pid(job, pid))
        assert self.snapshot() == before, f"a stale set_pid of {job.id} changed the queue"

    # --- invariants, checked in the file after every step -----------------------------------

    @invariant()
    def database_is_consistent_and_agrees_with_the_model(self) -> None:
        jobs, attempts = read_db(self.dir / DB_NAME)
        assert set(jobs) == set(self.model)
        for job_id, row in jobs.items():
            where = f"job {job_id}: {row}"
            assert row["state"] in STATES, where
            assert 0 <= row["attempts"] <= row["max_retries"] + 1, where
            assert row["attempts"] <= row["runs"], where
            if row["state"] == "processing":
                assert row["lease_owner"] is not None, where
                assert row["lease_expires_at"] is not None, where
            else:
                assert row["lease_owner"] is None, where
                assert row["lease_expires_at"] is None, where
                assert row["pid"] is None, where

            runs = attempts[job_id]
            assert len(runs) == row["runs"], (where, runs)
            assert [a["run"] for a in runs] == list(range(1, row["runs"] + 1)), (where, runs)
            unfinished = [a["run"] for a in runs if a["finished_at"] is None]
            if row["state"] == "processing":
                assert unfinished == [row["runs"]], (where, runs)
                assert runs[-1]["engine"] == row["lease_owner"], (where, runs)
            else:
                assert unfinished == [], (where, runs)

            before = self.previous.get(job_id)
            if before is not None and before["state"] in TERMINAL_STATES and before != row:
                assert job_id in self.retried, (
                    f"terminal job {job_id} changed without a dlq retry: {before} -> {row}"
                )
                assert (before["state"], row["state"]) == ("dead", "pending"), (before, row)

            m = self.model[job_id]
            got = (
                row["state"],
                row["attempts"],
                row["runs"],
                row["lease_owner"],
                row["pid"],
                row["next_run_at"],
                row["priority"],
                row["max_retries"],
            )
            want = (
                m.state.value,
                m.attempts,
                m.runs,
                m.owner,
                m.pid,
                m.next_run_at,
                m.priority,
                m.max_retries,
            )
            assert got == want, f"job {job_id}: database {got} != model {want}"
        self.previous = jobs
        self.retried = set()


StoreMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestStoreStateMachine = StoreMachine.TestCase
