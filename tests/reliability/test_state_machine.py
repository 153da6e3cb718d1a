"""A hypothesis state machine over the real store.

Each example opens a fresh queue in a temporary directory and drives the async store from sync
rules through a private event loop (an asyncio.Runner kept on the machine). Rules play the
engine's and the user's parts (enqueue, claim by two engines, finish with every outcome, alone
or in one batch with pids, crash and recover with and without an attached engine, cancel, dlq
retry, renew leases, record pids, and late "stale" finishes that must change nothing), and
the scheduling of issue 13: jobs enqueued `after` others (blocked until their parents have
completed, canceled down the tree when one ends dead or canceled or is deleted), unique keys
(an enqueue whose key a live job holds creates nothing and answers that job's id), named
queues with limits and pauses, and restart, delete and cancel of many jobs; a plain-Python
model predicts every result. The model decides each finish with the same
states.next_state the engine uses, applied to the model's own view of the job, and the store
must agree; the model resolves a parent's end as the stores' triggers must (a blocked child
pending once all its parents completed, canceled when one ended dead or canceled, and so on
recursively). After every step the queue is read back through the Store (list_jobs, attempts,
relatives, queues) and checked for the invariants (a blocked job never runs; a unique key
never has two live jobs; a queue never runs more than its limit) and against the model.

The machine runs on both backends: SQLite, and PostgreSQL on the local server (a database of
its own per example; skipped if no server answers).

Time is a fake clock injected into the store that only moves forward, so schedules are exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers import ManualClock, make_backend, release_backend, spec, store_snapshot
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from queuectl.errors import BadInput, JobNotFound
from queuectl.models import DEFAULT_QUEUE, Attempt, Job, Outcome
from queuectl.states import (
    CANCELABLE,
    FINISHED,
    LIVE,
    RESTARTABLE,
    RUNNABLE,
    ErrorKind,
    JobState,
    KillReason,
    Transition,
    can_cancel,
    next_state,
)
from queuectl.store import Enqueued, Finish, PidUpdate, Store

OWNERS = ("engine-A", "engine-B")
RESTARTED = "engine-C"  # a fresh engine that recovers after both A and B died
LEASE = 30.0
START = 1_700_000_000.0
DEFAULT_MAX_RETRIES = 3  # config key max-retries
KINDS = ("success", "failure", "timeout", "spawn", "interrupted", "canceled")
DELAYS = [0.0, 1.0, 4.0, 30.0]
EVERYTHING = 1_000_000_000
QUEUES = (DEFAULT_QUEUE, "q1", "q2")
KEYS = ("k1", "k2")  # few, so that enqueues collide on them
NO_SUCH_JOB = "no-such-job"
USER_CANCEL = KillReason.CANCEL.message
ENDED = (JobState.DEAD, JobState.CANCELED)  # a parent's end that cancels its blocked children
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
    run_at: float = 0.0
    queue: str = DEFAULT_QUEUE
    unique_key: str | None = None
    #: the jobs it waits for (its dependencies that are still in the queue)
    parents: frozenset[str] = frozenset()
    #: what its last_error may be (more than one where the backends may differ in wording)
    last_error: frozenset[str | None] = frozenset({None})

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
    BACKEND = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="qsm", dir="/tmp"))
        self.runner = asyncio.Runner()
        self.clock = ManualClock(START)
        self.backend = make_backend(self.BACKEND, self.dir)
        self.store: Store = self.run(self.backend.open(durable=False, clock=self.clock))
        #: one engine per SQLite file: an attached rescuer takes every other owner's jobs
        self.one_engine = self.BACKEND == "sqlite"
        self.count = 0
        self.model: dict[str, Expected] = {}
        self.held: dict[str, Job] = {}  # job id -> the Job of its live claim by a live engine
        self.abandoned: dict[str, Job] = {}  # claims of crashed engines not yet recovered
        self.stale: list[Job] = []  # Job objects of claims that have ended
        self.previous: dict[str, Job] = {}
        #: jobs the current step legitimately took out of a finished state -> the states they
        #: may be in now (dlq retry: pending; restart: pending or blocked)
        self.retried: dict[str, tuple[JobState, ...]] = {}
        self.unknown: set[str] = {NO_SUCH_JOB}  # ids deleted, or given to a spec that made none
        self.limits: dict[str, int] = {}  # queue -> concurrency
        self.paused_queues: set[str] = set()
        #: queue -> how many of its jobs ran when its limit was lowered below that (they run
        #: to their end: the overhang only drains)
        self.overhang: dict[str, int] = {}
        #: in the current step: the jobs that ended (how, for their children's last_error),
        #: and the jobs that a parent's end canceled (their parents then)
        self.ended_now: dict[str, str] = {}
        self.victims: dict[str, frozenset[str]] = {}
        self.also_named: set[str] = set()  # victims that a cancel_many named too

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
            release_backend(self.backend)
            shutil.rmtree(self.dir, ignore_errors=True)

    def snapshot(self) -> Any:
        return self.run(store_snapshot(self.store))

    # --- the user's side ---------------------------------------------------------------------

    # --- the model's dependency resolution: what the stores' triggers must do ----------------

    def _children(self, job_id: str) -> list[Expected]:
        return [m for _, m in sorted(self.model.items()) if job_id in m.parents]

    def _moved(self, job_id: str, old: JobState) -> None:
        """Resolve the children of a job that the model just moved from `old` to its state:
        completed releases each blocked child whose parents have all completed; dead or
        canceled cancels the blocked children, and theirs in turn."""
        new = self.model[job_id].state
        if new is JobState.COMPLETED and old is not JobState.COMPLETED:
            for child in self._children(job_id):
                if child.state is JobState.BLOCKED and all(
                    self.model[p].state is JobState.COMPLETED for p in child.parents
                ):
                    child.state = JobState.PENDING
                    child.next_run_at = max(child.run_at, self.now)
        elif new in ENDED and old not in ENDED:
            self._cancel_children(job_id, f"ended {new.value}")

    def _cancel_children(self, job_id: str, how: str) -> None:
        """Cancel the blocked children of a job that ended (`how`: "ended dead", "was
        deleted"), and theirs in turn. Each names a parent that ended in this step: which one,
        where several did, is the order in which a backend's triggers fire (a row's own, or all
        of a statement's after it), so the invariant accepts any of them (see `_named`)."""
        self.ended_now[job_id] = how
        for child in self._children(job_id):
            if child.state is JobState.BLOCKED:
                child.state, child.error_kind = JobState.CANCELED, ErrorKind.CANCELED
                self.victims[child.id] = child.parents
                self._moved(child.id, JobState.BLOCKED)

    def _named(self) -> None:
        """The last_error of the jobs that a parent's end canceled in this step."""
        for job_id, parents in self.victims.items():
            if job_id in self.model:
                self.model[job_id].last_error = frozenset(
                    f"canceled: its parent {p} {self.ended_now[p]}"
                    for p in parents
                    if p in self.ended_now
                ) | ({USER_CANCEL} if job_id in self.also_named else set())

    def _pick(self, data: st.DataObject, eligible: Sequence[str], label: str) -> list[str]:
        """1-3 ids: often only of `eligible` jobs, else of any job or none."""
        if eligible and data.draw(st.booleans(), label=f"only {label}"):
            return data.draw(st.lists(st.sampled_from(sorted(eligible)), min_size=1, max_size=3))
        pool = [*sorted(self.model), NO_SUCH_JOB]
        return data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3), label=label)

    def _refused(self, call: Any) -> None:
        """A refused operation on ids (JobNotFound is a BadInput too) changes nothing."""
        before = self.snapshot()
        with pytest.raises(BadInput):
            self.run(call())
        assert self.snapshot() == before, "a refused operation changed the queue"

    # --- the user's side ---------------------------------------------------------------------

    @rule(
        data=st.data(),
        count=st.integers(1, 3),
        priority=st.integers(-2, 2),
        max_retries=st.none() | st.integers(0, 3),
        offset=st.none() | st.floats(-5, 5, allow_nan=False),
    )
    def enqueue(
        self,
        data: st.DataObject,
        count: int,
        priority: int,
        max_retries: int | None,
        offset: float | None,
    ) -> None:
        """A batch of specs, each in one of a few queues, maybe with one of a few unique keys,
        maybe `after` jobs of the queue or earlier specs of the batch (including those that a
        unique key made create nothing); sometimes after an unknown id: refused, nothing kept."""
        run_at = None if offset is None else self.now + offset
        ids = [f"j{self.count + i}" for i in range(count)]
        self.count += count
        specs = []
        for place, job_id in enumerate(ids):
            known = [*sorted(self.model), *ids[:place]]
            after = st.lists(st.sampled_from(known), min_size=1, max_size=3, unique=True)
            specs.append(
                spec(
                    "true",
                    id=job_id,
                    priority=priority,
                    max_retries=max_retries,
                    run_at=run_at,
                    queue=data.draw(st.sampled_from(QUEUES), label="queue"),
                    unique_key=data.draw(st.none() | st.sampled_from(KEYS), label="key"),
                    after=tuple(data.draw(st.just([]) | after if known else st.just([]))),
                )
            )
        if data.draw(st.integers(0, 7), label="refused") == 0:
            place = data.draw(st.integers(0, count - 1))
            bad = data.draw(st.sampled_from(sorted(self.unknown)), label="unknown parent")
            specs[place] = dataclasses.replace(specs[place], after=(*specs[place].after, bad))
            before = self.snapshot()
            with pytest.raises(BadInput):
                self.run(self.store.enqueue(specs))
            assert self.snapshot() == before, "a refused enqueue changed the queue"
            self.unknown.update(ids)
            return

        holders = {
            m.unique_key: m.id
            for m in self.model.values()
            if m.unique_key is not None and m.state in LIVE
        }
        first: dict[str, str] = {}  # key -> the job that the batch's first spec with it got
        answer: dict[str, str] = {}  # spec id -> the id of its job
        existing: set[str] = set()
        created: list[Expected] = []
        for job_spec in specs:
            assert job_spec.id is not None
            key = job_spec.unique_key
            if key is not None and key in first:
                answer[job_spec.id] = first[key]
                continue
            if key is not None and key in holders:
                answer[job_spec.id] = first[key] = holders[key]
                existing.add(holders[key])
                continue
            if key is not None:
                first[key] = job_spec.id
            answer[job_spec.id] = job_spec.id
            parents = frozenset(answer.get(p, p) for p in job_spec.after)
            created.append(
                Expected(
                    job_spec.id,
                    priority,
                    DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
                    self.now if run_at is None else run_at,
                    state=JobState.BLOCKED if parents else JobState.PENDING,
                    run_at=self.now if run_at is None else run_at,
                    queue=job_spec.queue,
                    unique_key=key,
                    parents=parents,
                )
            )
        result = self.run(self.store.enqueue(specs))
        assert isinstance(result, Enqueued)
        assert list(result) == [answer[i] for i in ids], (result, answer)
        assert result.existing == existing, (result.existing, existing)
        assert result.created == len(created), result.created
        for m in created:
            self.model[m.id] = m
        self.unknown.update(i for i in ids if i not in self.model)
        # a new job with a parent that is dead or canceled already is canceled, naming it; a
        # parent earlier in the batch that was canceled so may be named as either "is
        # canceled" (SQLite's statement sees its own earlier rows) or "ended canceled"
        # (PostgreSQL's: its trigger, after the statement)
        doomed: dict[str, list[str]] = {}
        for m in created:
            doomed[m.id] = [
                p for p in sorted(m.parents) if self.model[p].state in ENDED or doomed.get(p)
            ]
            if doomed[m.id]:
                m.state, m.error_kind = JobState.CANCELED, ErrorKind.CANCELED
                m.last_error = frozenset(
                    message
                    for p in doomed[m.id]
                    for message in (
                        [
                            f"canceled: its parent {p} is canceled",
                            f"canceled: its parent {p} ended canceled",
                        ]
                        if doomed.get(p)
                        else [f"canceled: its parent {p} is {self.model[p].state.value}"]
                    )
                )
        for m in created:
            if doomed[m.id]:
                self._cancel_children(m.id, "ended canceled")
        for m in created:  # one whose parents have all completed already need not wait
            if m.state is JobState.BLOCKED and all(
                self.model[p].state is JobState.COMPLETED for p in m.parents
            ):
                m.state = JobState.PENDING

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
            old = expected.state
            expected.state, expected.error_kind = JobState.CANCELED, ErrorKind.CANCELED
            expected.last_error = frozenset({USER_CANCEL})
            self._moved(job_id, old)
        job = self.run(self.store.cancel(job_id))
        assert job.state is expected.state, (job, expected)

    @rule(data=st.data())
    def cancel_many(self, data: st.DataObject) -> None:
        waiting = [i for i, m in self.model.items() if can_cancel(m.state)]
        ids = self._pick(data, waiting, "cancelable")
        if not all(i in self.model and can_cancel(self.model[i].state) for i in ids):
            self._refused(lambda: self.store.cancel_many(ids))
            return
        jobs = self.run(self.store.cancel_many(ids))
        named = list(dict.fromkeys(ids))
        was = {i: self.model[i].state for i in named}
        for job_id in named:
            m = self.model[job_id]
            if m.state in CANCELABLE:
                m.state, m.error_kind = JobState.CANCELED, ErrorKind.CANCELED
                m.last_error = frozenset({USER_CANCEL})
                self._moved(job_id, was[job_id])
        for job_id in named:
            # canceled through a parent named before it: a backend that cancels every named
            # job in one statement (the triggers after it) says "canceled by user" instead
            if was[job_id] in CANCELABLE and job_id in self.victims:
                self.also_named.add(job_id)
        assert [job.id for job in jobs] == named
        for job in jobs:
            assert job.state is self.model[job.id].state, (job, self.model[job.id])

    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        over = [i for i, m in self.model.items() if m.state in RESTARTABLE]
        ids = self._pick(data, over, "restartable")
        if not all(
            i in self.model and self.model[i].state in RESTARTABLE for i in ids
        ) or self._key_taken(ids):
            self._refused(lambda: self.store.restart(ids))
            return
        assert self.run(self.store.restart(ids)) == list(dict.fromkeys(ids))
        for job_id in dict.fromkeys(ids):  # in turn: a parent restarted first is not completed
            m = self.model[job_id]
            waits = any(self.model[p].state is not JobState.COMPLETED for p in m.parents)
            m.state = JobState.BLOCKED if waits else JobState.PENDING
            m.attempts, m.next_run_at, m.error_kind = 0, self.now, None
            m.last_error = frozenset({None})
            self.retried[job_id] = (JobState.PENDING, JobState.BLOCKED)

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        resting = [i for i, m in self.model.items() if m.state is not JobState.PROCESSING]
        ids = self._pick(data, resting, "at rest")
        if not all(i in self.model and self.model[i].state is not JobState.PROCESSING for i in ids):
            self._refused(lambda: self.store.delete(ids))
            return
        assert self.run(self.store.delete(ids)) == list(dict.fromkeys(ids))
        for job_id in dict.fromkeys(ids):
            if self.model[job_id].state is not JobState.COMPLETED:
                self._cancel_children(job_id, "was deleted")
            del self.model[job_id]
            for m in self.model.values():
                m.parents -= {job_id}
            self.unknown.add(job_id)

    @rule(name=st.sampled_from(QUEUES), concurrency=st.none() | st.integers(0, 3))
    def set_queue(self, name: str, concurrency: int | None) -> None:
        if concurrency == 0:
            self._refused(lambda: self.store.set_queue(name, concurrency))
            return
        self.run(self.store.set_queue(name, concurrency))
        if concurrency is None:
            self.limits.pop(name, None)
            self.overhang.pop(name, None)
        else:
            self.limits[name] = concurrency
            running = self._running()[name]
            self.overhang[name] = running if running > concurrency else 0

    @rule(name=st.sampled_from(QUEUES), paused=st.booleans())
    def set_queue_paused(self, name: str, paused: bool) -> None:
        self.run(self.store.set_queue_paused(name, paused))
        if paused:
            self.paused_queues.add(name)
        else:
            self.paused_queues.discard(name)

    def _running(self) -> Counter[str]:
        return Counter(m.queue for m in self.model.values() if m.state is JobState.PROCESSING)

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
        if all(
            i in self.model and self.model[i].state is JobState.DEAD for i in ids
        ) and not self._key_taken(ids):
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
        if self._key_taken(sorted(dead)):
            self._refused(lambda: self.store.retry_dead(None))
            return
        assert set(self.run(self.store.retry_dead(None))) == dead
        for job_id in dead:
            self._retried(job_id)

    def _key_taken(self, ids: Sequence[str]) -> bool:
        """Whether bringing these jobs back to life would give a unique key two live jobs: a
        live job holds it, or another of them does. Then nothing must change (BadInput)."""
        holders = {m.unique_key: m.id for m in self.model.values() if m.state in LIVE}
        for job_id in dict.fromkeys(ids):
            key = self.model[job_id].unique_key
            if key is not None and self.model[job_id].state not in LIVE:
                if key in holders:
                    return True
                holders[key] = job_id
        return False

    def _retried(self, job_id: str) -> None:
        expected = self.model[job_id]
        expected.state, expected.attempts, expected.next_run_at = JobState.PENDING, 0, self.now
        expected.error_kind = None
        expected.last_error = frozenset({None})
        self.retried[job_id] = (JobState.PENDING,)

    # --- the engine's side -------------------------------------------------------------------

    @rule(
        owner=st.sampled_from(OWNERS),
        limit=st.integers(1, 3),
        advance=st.sampled_from([0.0, 0.5, 2.0, 5.0, 20.0]),
        queues=st.none() | st.lists(st.sampled_from(QUEUES), unique=True, max_size=2),
    )
    def claim(self, owner: str, limit: int, advance: float, queues: list[str] | None) -> None:
        """The best due jobs, skipping those of queues not asked for, paused, or full."""
        self.advance(advance)
        runnable = [
            m for m in self.model.values() if m.state in RUNNABLE and m.next_run_at <= self.now
        ]
        runnable.sort(key=lambda m: (-m.priority, m.next_run_at, m.id))
        running = self._running()
        expected: list[Expected] = []
        for m in runnable:
            if len(expected) == limit:
                break
            if (queues is not None and m.queue not in queues) or m.queue in self.paused_queues:
                continue
            if m.queue in self.limits and running[m.queue] >= self.limits[m.queue]:
                continue
            running[m.queue] += 1
            expected.append(m)
        jobs = self.run(self.store.claim(owner, limit, LEASE, queues))
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
        m.last_error = frozenset({outcome.error})
        m.attempt_kinds[job.runs] = outcome.error_kind
        self.stale.append(job)
        self._moved(job.id, JobState.PROCESSING)

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
        SQLite queue), every processing job of another owner is an orphan; not attached (or on
        PostgreSQL, where the crashed owners never registered), only those whose lease
        expired."""
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
            and (
                (attach and self.one_engine)
                or (m.lease_expires_at is not None and m.lease_expires_at < self.now)
            )
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
        self._named()
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
                # a parent's retry or restart never revives the children it canceled
                assert job_id in self.retried, (
                    f"terminal job {job_id} changed without a retry or restart: {before} -> {job}"
                )
                assert job.state in self.retried[job_id], (before, job)
                if job_id in self.retried and self.retried[job_id] == (JobState.PENDING,):
                    assert before.state is JobState.DEAD, (before, job)

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
                job.queue,
                job.unique_key,
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
                m.queue,
                m.unique_key,
            )
            assert got == want, f"job {job_id}: store {got} != model {want}"
            assert job.last_error in m.last_error, (job_id, job.last_error, m.last_error)
        self._check_dependencies(jobs)
        self._check_unique_keys(listed)
        self._check_queues(jobs)
        self.previous = jobs
        self.retried = {}
        self.ended_now, self.victims, self.also_named = {}, {}, set()

    def _check_dependencies(self, jobs: dict[str, Job]) -> None:
        """A blocked job never runs: it waits for a parent that has not completed, it never
        goes from blocked to processing (a claim takes only pending and failed jobs), and its
        runs stay as they were. The store's parents and children are the model's."""
        for job_id, job in jobs.items():
            parents, children = self.run(self.store.relatives(job_id))
            assert sorted(parents) == sorted(self.model[job_id].parents), (job_id, parents)
            assert sorted(children) == [m.id for m in self._children(job_id)], (job_id, children)
            before = self.previous.get(job_id)
            if job.state is JobState.BLOCKED:
                assert any(jobs[p].state is not JobState.COMPLETED for p in parents), (
                    f"blocked job {job_id} has no parent to wait for: {parents}"
                )
                if before is not None and before.state is JobState.BLOCKED:
                    assert job.runs == before.runs, (before, job)
            if before is not None and before.state is JobState.BLOCKED:
                assert job.state is not JobState.PROCESSING, f"blocked job {job_id} ran: {job}"

    def _check_unique_keys(self, listed: list[Job]) -> None:
        """A unique key never has two live jobs."""
        live = Counter(j.unique_key for j in listed if j.unique_key is not None and j.state in LIVE)
        assert all(n == 1 for n in live.values()), live

    def _check_queues(self, jobs: dict[str, Job]) -> None:
        """A queue never runs more than its limit (but for the jobs that ran when the limit
        was lowered, which run to their end); no job of a paused queue starts; queues()
        gives each queue's limit, pause and counts."""
        running = Counter(j.queue for j in jobs.values() if j.state is JobState.PROCESSING)
        for name, limit in self.limits.items():
            assert running[name] <= max(limit, self.overhang.get(name, 0)), (
                f"queue {name} runs {running[name]} jobs, over its limit {limit}"
            )
            self.overhang[name] = min(self.overhang.get(name, 0), running[name])
        for job_id, job in jobs.items():
            before = self.previous.get(job_id)
            if job.state is JobState.PROCESSING and (before is None or before.runs < job.runs):
                assert job.queue not in self.paused_queues, f"{job_id} of a paused queue started"
        infos = {info.name: info for info in self.run(self.store.queues())}
        names = {m.queue for m in self.model.values()} | set(self.limits) | self.paused_queues
        assert set(infos) == names, (sorted(infos), sorted(names))
        for name, info in infos.items():
            counts = Counter(m.state for m in self.model.values() if m.queue == name)
            want = (self.limits.get(name), name in self.paused_queues)
            assert (info.concurrency, info.paused) == want, (info, want)
            assert info.counts == {state: counts[state] for state in JobState}, (info, counts)


class PostgresStoreMachine(StoreMachine):
    BACKEND = "postgres"


StoreMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
PostgresStoreMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestStoreStateMachine = StoreMachine.TestCase
TestPostgresStoreStateMachine = PostgresStoreMachine.TestCase
