"""The storage contract: every read and every state change of a job goes through a Store.

The CLI, the service layer and the engine speak only this interface, in jobs and transitions,
never in SQL or rows, so every backend passes one contract test suite. A store decides nothing
about states (states.py does); it applies a Transition guarded by the state the job must still
be in and by the lease (owner, run) it was decided under, and reports whether it applied.

Time: a store reads "now" from its own clock (the database's, for a server shared by hosts
whose clocks may disagree); callers pass durations (a lease, a retry delay), not instants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from queuectl.config import Config
from queuectl.errors import BadInput
from queuectl.models import Attempt, Job, JobSpec, Outcome
from queuectl.paths import DB_NAME
from queuectl.states import JobState, Transition

Clock = Callable[[], float]
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of one attempt: `job` as claimed (its lease_owner and runs are the fence)."""

    job: Job
    transition: Transition
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class PidUpdate:
    job: Job
    pid: int


class Store(Protocol):
    @property
    def location(self) -> str:
        """Where the queue is, for messages (a path, or a URL without its password)."""

    async def close(self) -> None: ...

    # --- jobs as the CLI sees them
    async def enqueue(
        self, specs: Sequence[JobSpec], progress: Progress | None = None
    ) -> list[str]:
        """Store all specs in one transaction (all or none); defaults come from config.
        Raises DuplicateJobId."""

    async def get(self, job_id: str) -> Job:
        """Raises JobNotFound."""

    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        """Newest first."""

    async def counts(self) -> dict[JobState, int]: ...

    async def attempts(self, job_id: str) -> list[Attempt]: ...

    async def retry_dead(self, job_ids: Sequence[str] | None) -> list[str]:
        """Dead jobs back to pending with attempts reset; None means every dead job."""

    async def cancel(self, job_id: str) -> Job:
        """Cancel a waiting job (states.CANCELABLE); returns the job as it now is, so the
        caller can tell a job that was running or already over."""

    # --- configuration
    async def config(self) -> Config: ...

    async def set_config(self, name: str, value: Any) -> None: ...

    # --- the engine's side
    async def attach_engine(self, engine_id: str) -> None:
        """Register a starting engine. Raises EngineRunning where the backend allows only one
        engine (SQLite: one per database file, held by a lock that dies with its process)."""

    async def detach_engine(self, engine_id: str) -> None: ...

    async def claim(self, owner: str, limit: int, lease: float) -> list[Job]:
        """Move up to `limit` due runnable jobs to processing under `owner`'s lease of `lease`
        seconds, in order of priority (highest first), due time, id."""

    async def renew_leases(self, owner: str, lease: float) -> None: ...

    async def finish_many(
        self, finishes: Sequence[Finish], pids: Sequence[PidUpdate] = ()
    ) -> list[bool]:
        """Apply the transitions and record the attempts' ends, and the pids, in one
        transaction; for each finish, whether it applied (False: the job moved on)."""

    async def orphans(self, owner: str) -> list[Job]:
        """Jobs in processing whose engine is gone: their lease expired, or (a backend that
        allows one engine, attached by `owner`) any other owner's."""

    async def due_in(self, retries_only: bool = False) -> float | None:
        """Seconds until the earliest waiting job (or only a failed job's retry) is due
        (0 or less: due now); None when none waits."""

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait until another process commits a change to the queue (True) or until
        `timeout` seconds pass (False)."""


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
        raise BadInput(f"PostgreSQL is not supported by this queuectl yet: {target!r}")
    raise BadInput(
        f"unknown database URL {target!r}; use sqlite:///PATH/queue.db (or omit --db to use "
        "the queue home)"
    )


async def open_store(
    target: str | Path, *, durable: bool = True, clock: Clock | None = None, create: bool = True
) -> Store:
    """Open (creating if needed) the queue that `target` names: a home directory, or a
    database URL (sqlite:///PATH).

    durable=True makes each commit survive power loss; the engine opens with False, as losing
    its last state update to a power cut only makes a job run again. `clock` replaces the
    store's clock (tests). create=False raises QueueMissing instead of creating a queue
    that does not exist (for commands that only read).
    """
    from queuectl.store.sqlite import SqliteStore

    return await SqliteStore.open(sqlite_path(target), durable=durable, clock=clock, create=create)
