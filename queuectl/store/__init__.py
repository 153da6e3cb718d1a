"""The storage contract: every read and every state change of a job goes through a Store.

The CLI, the service layer and the engine speak only this interface, in jobs and transitions,
never in SQL or rows, so every backend passes one contract test suite. A store decides nothing
about states (states.py does); it applies a Transition guarded by the state the job must still
be in and by the lease (owner, run) it was decided under, and reports whether it applied.

Time: a store reads "now" from its own clock (the database's, for a server shared by hosts
whose clocks may disagree); callers pass durations (a lease, a retry delay), not instants.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from queuectl.config import Config
from queuectl.errors import BadInput, DuplicateJobId
from queuectl.models import (
    Attempt,
    Ended,
    EngineRecord,
    EngineRequests,
    Job,
    JobSpec,
    Outcome,
    QueueInfo,
)
from queuectl.paths import DB_NAME
from queuectl.states import JobState, Transition

if TYPE_CHECKING:  # schedules.py is imported by the commands and engines that use schedules
    from queuectl.schedules import Fired, Schedule, Schedules, Tick

Clock = Callable[[], float]
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of one attempt: `job` as claimed (its lease_owner and runs are the fence)."""

    job: Job
    transition: Transition
    outcome: Outcome


class Enqueued(list[str]):
    """The ids of the jobs of an enqueue, in the order of its specs. A spec whose unique key a
    live job holds (already in the queue, or earlier in the same specs) creates nothing, and
    its place holds that job's id: `existing` are the ids of jobs that were there before,
    `created` how many jobs this enqueue made."""

    def __init__(
        self, ids: Sequence[str] = (), existing: Sequence[str] = (), created: int | None = None
    ) -> None:
        super().__init__(ids)
        self.existing = frozenset(existing)
        self.created = len(set(ids) - self.existing) if created is None else created


@dataclass(frozen=True, slots=True)
class PidUpdate:
    job: Job
    pid: int


@dataclass(frozen=True, slots=True)
class JobChanges:
    """What `edit` changes in a job (validated by the caller, as at enqueue); None keeps the
    field. `delay` is a duration from the store's own "now", an alternative to `run_at`."""

    command: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout: float | None = None
    clear_timeout: bool = False  # no timeout from now on (`timeout` must be None)
    run_at: float | None = None
    delay: float | None = None

    @property
    def empty(self) -> bool:
        return self == JobChanges()


class JobOrder(enum.StrEnum):
    """The orders a listing can take; each one a store serves from an index, page by page."""

    CREATED = "created"  # newest first
    #: the waiting jobs (states.RUNNABLE) soonest due first, then the others newest first
    NEXT_RUN = "next-run"


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing wants, in which order; every store gives the same answer."""

    states: frozenset[JobState] = frozenset()  # empty: every state
    grep: str | None = None  # a substring (case-sensitive) of the id, the command or the label
    since: float | None = None  # created at or after
    until: float | None = None  # created before
    order: JobOrder = JobOrder.CREATED
    limit: int | None = None  # None: every match
    queue: str | None = None  # only the jobs of this named queue (None: every queue)


class Store(Protocol):
    @property
    def location(self) -> str:
        """Where the queue is, for messages (a path, or a URL without its password)."""

    async def close(self) -> None: ...

    # --- jobs as the CLI sees them
    async def enqueue(self, specs: Sequence[JobSpec], progress: Progress | None = None) -> Enqueued:
        """Store all specs in one transaction (all or none); defaults come from config.
        Raises DuplicateJobId, or BadInput for a parent (`after`) that neither exists nor
        comes earlier in `specs`. A job with parents is blocked until they have all
        completed (pending at once if they have; canceled if one is dead or canceled)."""

    async def get(self, job_id: str) -> Job:
        """Raises JobNotFound."""

    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        """Newest first."""

    def iter_jobs(self, job_filter: JobFilter) -> AsyncIterator[Job]:
        """The matching jobs in the filter's order, read in pages (keyset, never OFFSET) of
        short reads: memory stays flat for a million jobs and no read holds the database for
        the length of the listing. A job is listed at most once under CREATED; under NEXT_RUN
        a job whose due time changes while the listing runs may be missed or seen twice."""

    async def count_jobs(self, job_filter: JobFilter) -> int:
        """How many jobs match, whatever the filter's limit."""

    async def counts(self) -> dict[JobState, int]: ...

    async def finished_since(self, since: float, limit: int) -> list[Job]:
        """Up to `limit` jobs whose last attempt ended at or after `since` (completed, dead,
        canceled, or failed and awaiting a retry), the latest first: execution statistics."""

    async def ended_since(self, since: float, limit: int) -> list[Ended]:
        """The same jobs as finished_since, only how and when each ended: the statistics of a
        busy hour read thousands of them, and whole rows cost ~10 us each to build."""

    async def attempts(self, job_id: str) -> list[Attempt]: ...

    async def relatives(self, job_id: str) -> tuple[list[str], list[str]]:
        """The job's parents (`after`) and its children: ids, sorted."""

    async def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        """Dead jobs back to pending with attempts reset; None means every dead job."""

    async def cancel(self, job_id: str) -> Job:
        """Cancel a waiting job (states.CANCELABLE); returns the job as it now is, so the
        caller can tell a job that was running or already over."""

    # --- managing jobs (restart, edit, delete, purge): store/sqlite_manage.py
    # Operations on ids given are all or nothing: an unknown id raises JobNotFound, a job in
    # a state the operation does not take raises BadInput naming it, and nothing is changed.
    # Operations on a whole state or age run in short batches (each its own transaction), so
    # that a million jobs never hold the queue's write lock for long.

    async def restart(self, job_ids: Sequence[str]) -> list[str]:
        """Back to pending, due now, attempts reset (history kept), for jobs in
        states.RESTARTABLE; returns the ids (each once)."""

    async def restart_in_state(self, state: JobState, progress: Progress | None = None) -> int:
        """Restart every job in `state` (none unless it is in states.RESTARTABLE); how many."""

    async def edit(self, job_id: str, changes: JobChanges) -> Job:
        """Apply the changes to a job at rest (states.AT_REST); returns it as it now is."""

    async def delete(self, job_ids: Sequence[str]) -> list[str]:
        """Remove jobs at rest with their attempts, freeing their ids; returns the ids."""

    async def cancel_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Cancel the waiting ones of these jobs (states.CANCELABLE) in one transaction, after
        checking that each exists and can be canceled (states.can_cancel); returns every job
        as it now is: a running one is still processing, for its engine to kill."""

    async def cancel_in_state(self, state: JobState, progress: Progress | None = None) -> int:
        """Cancel every job in `state` (none unless it is in states.CANCELABLE); how many."""

    async def purgeable(
        self, states: Sequence[JobState], older_than: float | None, queue: str | None = None
    ) -> int:
        """How many jobs `purge` would delete now."""

    async def purge(
        self,
        states: Sequence[JobState],
        older_than: float | None,
        progress: Progress | None = None,
        queue: str | None = None,
    ) -> int:
        """Delete the jobs in `states` (all at rest, else BadInput) older than `older_than`
        seconds (None: any age), of the named `queue` (None: every queue), with their
        attempts; how many. A finished job's age runs from
        when it finished, a waiting job's from when it was enqueued."""

    async def drop_output(self, older_than: float, progress: Progress | None = None) -> int:
        """Drop the stored output of attempts that finished more than `older_than` seconds ago,
        keeping the attempts themselves (both their streams are then marked truncated); how many."""

    # --- configuration
    async def config(self) -> Config: ...

    async def set_config(self, name: str, value: Any) -> None: ...

    async def paused(self) -> bool:
        """Whether the queue is paused: then `claim` returns no job, whichever engine asks."""

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume the queue; kept in the queue itself, so it outlives every engine."""

    # --- the engine's side
    async def attach_engine(self, engine_id: str, concurrency: int | None = None) -> None:
        """Register a starting engine (running `concurrency` jobs at a time). Raises
        EngineRunning where the backend allows only one engine (SQLite: one per database
        file, held by a lock that dies with its process)."""

    async def detach_engine(self, engine_id: str) -> None: ...

    async def claim(
        self, owner: str, limit: int, lease: float, queues: Sequence[str] | None = None
    ) -> list[Job]:
        """Move up to `limit` due runnable jobs of `queues` (None: every queue) to processing
        under `owner`'s lease of `lease` seconds, in order of priority (highest first), due
        time, id; none while paused, none of a paused queue, and never so many of a limited
        queue that more of its jobs run than its limit, whichever engines claim at once."""

    async def renew_leases(self, owner: str, lease: float) -> dict[str, int]:
        """Extend `owner`'s leases to `lease` seconds from now (the engine's heartbeat too);
        the jobs it holds, id -> run: the engine fences the running jobs not among them."""

    async def finish_many(
        self, finishes: Sequence[Finish], pids: Sequence[PidUpdate] = ()
    ) -> list[bool]:
        """Apply the transitions and record the attempts' ends, and the pids, in one
        transaction; for each finish, whether it applied (False: the job moved on)."""

    def rescuing(self) -> AbstractAsyncContextManager[bool]:
        """Whether this store may rescue orphans now (True), held until the block ends:
        engines that share the database take turns (an advisory lock), so that two never
        settle the same orphans."""

    async def orphans(self, owner: str) -> list[Job]:
        """Jobs in processing whose engine is gone: their lease expired, or (a backend that
        allows one engine, attached by `owner`) any other owner's."""

    async def due_in(
        self, retries_only: bool = False, queues: Sequence[str] | None = None
    ) -> float | None:
        """Seconds until the earliest waiting job (or only a failed job's retry) is due
        (0 or less: due now); None when none waits. Unless retries_only, only the jobs that a
        claim for `queues` (None: all) could take count: not those of a paused queue, nor of a
        limited queue that is full (the queue-wide pause is `paused()`'s)."""

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait until another process commits a change to the queue (True) or until
        `timeout` seconds pass (False)."""

    # --- named queues: store/sqlite_queues.py, store/postgres_queues.py
    async def queues(self) -> list[QueueInfo]:
        """Every queue that has jobs or a limit or a pause, by name, with its jobs per state."""

    async def set_queue(self, name: str, concurrency: int | None) -> None:
        """Limit how many of the queue's jobs run at once across every engine (None: only the
        engines' slots); BadInput unless 1 <= concurrency <= 1,000,000. Jobs running above a
        lowered limit run to their end."""

    async def set_queue_paused(self, name: str, paused: bool) -> None:
        """Pause (no job of the queue starts; running ones go on) or resume the queue."""

    # --- engines on many hosts: store/postgres_cluster.py. A backend that allows one engine
    # only (SQLite) registers none here: that engine is reached through its control socket.
    async def engines(self) -> list[EngineRecord]:
        """Every engine registered in the database, on any host, with its running jobs."""

    async def request_stop(self, engine_ids: Sequence[str] | None, kill: bool) -> list[str]:
        """Ask engines (None: every one) to stop, killing their running jobs if `kill`;
        returns the ids asked. Each engine reads its requests every second."""

    async def request_cancel(self, job_ids: Sequence[str]) -> list[str]:
        """Ask the engines running these jobs, wherever they run, to kill them as canceled;
        returns the ids of those asked (running jobs)."""

    async def engine_requests(self, engine_id: str) -> EngineRequests:
        """What was asked of this engine through the database."""

    # --- cron schedules: store/sqlite_schedule.py, store/postgres_schedule.py. Which tick is
    # due is schedules.due_tick's decision, on the `now` that list_schedules returns (the
    # store's clock); a store only applies a tick, guarded so that each is taken once.
    async def add_schedule(self, schedule: Schedule) -> None:
        """Store a new schedule, made now (its created_at and last_* fields are ignored);
        BadInput if the name is taken."""

    async def remove_schedule(self, name: str) -> None:
        """The schedule and its ticks (its jobs stay); raises ScheduleNotFound."""

    async def set_schedule_paused(self, name: str, paused: bool) -> None:
        """Pause or resume; resuming takes the latest tick missed while paused as skipped (no
        catch-up for a pause). Raises ScheduleNotFound."""

    async def list_schedules(self) -> Schedules:
        """Every schedule by name, with its last job's state, and the store's "now"."""

    async def fire_tick(self, tick: Tick) -> Fired:
        """Take the tick in one transaction: its (schedule, fire_at) row inserted (ON CONFLICT
        DO NOTHING), the schedule's last_fire_at moved forward to it (never back, never while
        paused), and for an ENQUEUE the schedule's job enqueued as by `enqueue` and recorded as
        its last job. Taken once, however many stores try it at once; else Fired(False)."""


def unique_ids(specs: Sequence[JobSpec]) -> set[str]:
    """The ids the specs name; DuplicateJobId if one is named twice (before any write, so that
    a batch refused for it stores nothing on any backend)."""
    seen: set[str] = set()
    for spec in specs:
        if spec.id is not None:
            if spec.id in seen:
                raise DuplicateJobId(spec.id)
            seen.add(spec.id)
    return seen


SQLITE_SCHEME = "sqlite://"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path(target: str | Path) -> Path:
    """The database file that a home directory or a sqlite:/// URL names."""
    if isinstance(target, Path):
        return target / DB_NAME
    if target.startswith(SQLITE_SCHEME):
        path = target.removeprefix(SQLITE_SCHEME)
        if not path.startswith("/") or path == "/":
            raise BadInput(f"invalid database URL {target!r}; use sqlite:///ABSOLUTE/PATH/queue.db")
        return Path(path)
    if target.startswith(POSTGRES_SCHEMES):
        raise BadInput(f"{target!r} is a PostgreSQL URL, not a SQLite file")
    raise BadInput(
        f"unknown database URL {target!r}; use sqlite:///PATH/queue.db, "
        "postgresql://USER@HOST:PORT/DATABASE (or omit --db to use the queue home)"
    )


async def open_store(
    target: str | Path, *, durable: bool = True, clock: Clock | None = None, create: bool = True
) -> Store:
    """Open (creating if needed) the queue that `target` names: a home directory, or a
    database URL (sqlite:///PATH, postgresql://USER@HOST:PORT/DATABASE).

    durable=True makes each commit survive power loss; the engine opens with False, as losing
    its last state update to a power cut only makes a job run again. `clock` replaces the
    store's clock (tests). create=False raises QueueMissing instead of creating a queue
    that does not exist (for commands that only read).
    """
    if isinstance(target, str) and target.startswith(POSTGRES_SCHEMES):
        from queuectl.store.postgres import PostgresStore  # asyncpg: imported only when used

        return await PostgresStore.open(target, durable=durable, clock=clock, create=create)
    from queuectl.store.sqlite import SqliteStore

    return await SqliteStore.open(sqlite_path(target), durable=durable, clock=clock, create=create)
