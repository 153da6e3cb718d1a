"""Named queues in the PostgreSQL store: their limits and pauses, and the claim that honours a
limit exactly across every engine of the database, on any host.

While no queue is limited or paused and the engine takes every queue, the claim is the one
statement of postgres.sql (pinned by its EXPLAIN test), which steps aside (claims nothing and
says `held`) as soon as a row of queuectl_queues holds a limit or a pause. Then the claim is
`claim_by_queue`, a transaction of two statements under READ COMMITTED:

1. `lock_limited_queues` locks the rows of the limited queues it may take from (FOR UPDATE, in
   name order). Every claim from a limited queue holds its row's lock until it commits.
2. `claim_by_queue` counts each limited queue's running jobs and claims at most its free slots.
   Being a later statement, it reads with a snapshot taken after the lock was granted, so it
   sees every claim that another engine committed while this one waited for the lock. (Counted
   in the statement that takes the lock, the count would use the snapshot from before the wait,
   and two engines could both take a queue's last slot: pgqueuer's overshoot.)

Nothing else moves a job into processing, so a queue's running jobs never exceed its limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from queuectl.models import Job, QueueInfo
from queuectl.states import JobState
from queuectl.store.postgres_base import PostgresBase
from queuectl.store.postgres_db import job_of, translated
from queuectl.store.sqlite_queues import check_concurrency


async def claim_by_queue(
    store: PostgresBase, owner: str, limit: int, lease: float, queues: Sequence[str] | None
) -> list[Job]:
    """The claim while queues are limited or paused, or for some queues only (see above)."""
    wanted = None if queues is None else list(queues)
    async with store._transaction() as tx:
        locked = await tx.fetch("lock_limited_queues", wanted)
        names = [str(row["name"]) for row in locked]
        limits = [int(row["concurrency"]) for row in locked]
        rows = await tx.fetch("claim_by_queue", owner, limit, lease, wanted, names, limits)
    return [job_of(row) for row in rows]


class PostgresQueueOps(PostgresBase):
    @translated
    async def queues(self) -> list[QueueInfo]:
        found: dict[str, QueueInfo] = {}
        for row in await self._fetch("queue_list"):
            name = str(row["name"])
            info = found.get(name)
            if info is None:
                concurrency = None if row["concurrency"] is None else int(row["concurrency"])
                info = QueueInfo(name, concurrency, bool(row["paused"]), dict.fromkeys(JobState, 0))
                found[name] = info
            if row["state"] is not None:
                info.counts[JobState(row["state"])] = int(row["n"])
        return list(found.values())

    @translated
    async def set_queue(self, name: str, concurrency: int | None) -> None:
        """Raising a limit wakes the listening engines: jobs may be waiting for the room."""
        check_concurrency(concurrency)
        async with self._transaction() as tx:
            await tx.execute("set_queue", name, concurrency)
            await tx.execute("forget_plain_queue", name)
            await tx.notify()

    @translated
    async def set_queue_paused(self, name: str, paused: bool) -> None:
        """Resuming wakes the listening engines, as resuming the whole queue does."""
        async with self._transaction() as tx:
            await tx.execute("set_queue_paused", name, paused)
            await tx.execute("forget_plain_queue", name)
            if not paused:
                await tx.notify()
