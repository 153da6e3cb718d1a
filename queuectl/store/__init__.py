"""The storage contract: every read and every state transition of a job goes through a Store.

The CLI and the engine speak only this interface, so a PostgreSQL store can stand in for the
SQLite one without either of them changing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from queuectl.models import Attempt, Job, JobSpec, JobState, Outcome


class Store(Protocol):
    #: True when at most one engine can use the queue at a time (SQLite's engine lock), so that
    #: every job still leased by another engine is known to be orphaned.
    exclusive: bool

    async def close(self) -> None: ...

    # --- jobs as the CLI sees them
    async def enqueue(
        self, specs: Sequence[JobSpec], now: float, progress: Callable[[int], None] | None = None
    ) -> list[str]:
        """Store all specs in one transaction (all or none); defaults come from config."""

    async def get(self, job_id: str) -> Job:
        """Raises JobNotFound."""

    async def list_jobs(self, state: JobState | None, limit: int) -> list[Job]: ...

    async def counts(self) -> dict[JobState, int]: ...

    async def attempts(self, job_id: str) -> list[Attempt]: ...

    async def retry_dead(self, job_ids: Sequence[str] | None, now: float) -> list[str]:
        """Dead jobs back to pending with attempts reset; None means every dead job."""

    async def cancel(self, job_id: str, now: float) -> Job:
        """Cancel a waiting (pending or failed) job; returns the job as it now is, so the
        caller can tell a job that was running or already over."""

    # --- configuration
    async def config(self) -> dict[str, Any]:
        """Every config key with its current value (default where unset)."""

    async def set_config(self, name: str, value: Any) -> None: ...

    # --- the engine's side
    async def claim(self, owner: str, limit: int, now: float, lease: float) -> list[Job]:
        """Move up to `limit` runnable jobs to processing under `owner`'s lease."""

    async def set_pid(self, job: Job, pid: int) -> None: ...

    async def renew_leases(self, owner: str, until: float) -> None: ...

    async def finish(self, job: Job, outcome: Outcome, now: float, retry_at: float) -> JobState:
        """Record the attempt and move the job on; raises InvalidTransition if it moved already."""

    async def orphans(self, owner: str, now: float) -> list[Job]:
        """Jobs in processing whose engine is gone (lease expired, or any other owner if
        exclusive)."""

    async def next_due(self, retries_only: bool = False) -> float | None:
        """When the earliest waiting job (or only retry, of a failed job) becomes runnable."""

    async def change_marker(self) -> int:
        """A value that differs once another process has changed the queue; the idle engine
        polls it to notice jobs enqueued by others."""


async def open_store(home: Path, *, durable: bool = True) -> Store:
    """Open (creating if needed) the queue in `home`.

    durable=True makes each commit survive power loss (synchronous=FULL); the engine opens with
    False, as losing its last state update to a power cut only makes a job run again.
    """
    from queuectl.store.sqlite import SqliteStore

    return await SqliteStore.open(home, durable=durable)
