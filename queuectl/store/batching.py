"""Group commit of the engine's per-job writes, above every backend.

Jobs that end together (and processes that start together) are written in one transaction of a
few statements instead of one transaction each: with short jobs, the per-job cost of a commit
(and of a thread hop or a network round trip) is what limits throughput, not the database.
While one batch is being written, the next one gathers.

A write that fails because the database connection was lost is tried again for as long as the
`retry` callback gives a delay: the outcomes wait in memory, and nothing is lost unless the
engine itself dies (then the jobs' leases run out and they are rescued).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from queuectl.errors import ConnectionLost
from queuectl.models import Job
from queuectl.store import Finish, PidUpdate, Store


@dataclass(frozen=True, slots=True)
class _Pending:
    write: Finish | PidUpdate
    future: asyncio.Future[bool]


#: given the failure and how many tries failed in a row, seconds to wait before the next, or
#: None to give up (the waiting writes then raise the failure)
Retry = Callable[[ConnectionLost, int], float | None]


class GroupCommit:
    def __init__(self, store: Store, retry: Retry | None = None) -> None:
        self.store = store
        self._retry = retry
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def set_pid(self, job: Job, pid: int) -> None:
        await self.submit(PidUpdate(job, pid))

    async def finish(self, finish: Finish) -> bool:
        """Whether the transition applied (False: the job had moved on, e.g. it was rescued
        by another engine after our lease lapsed). Raises the store's error if the write
        failed."""
        return await self.submit(finish)

    def submit(self, write: Finish | PidUpdate) -> asyncio.Future[bool]:
        """Queue the write now, ahead of any store call made after this one returns (on
        SQLite the engine's calls share one connection, so they are written in that order);
        the future answers as finish() does."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(write, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            finishes = [p.write for p in batch if isinstance(p.write, Finish)]
            pids = [p.write for p in batch if isinstance(p.write, PidUpdate)]
            try:
                applied = iter(await self._write(finishes, pids))
            except Exception as exc:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            for pending in batch:  # finishes answer in order; a pid write always applies
                result = next(applied) if isinstance(pending.write, Finish) else True
                if not pending.future.done():
                    pending.future.set_result(result)

    async def _write(self, finishes: Sequence[Finish], pids: Sequence[PidUpdate]) -> list[bool]:
        tries = 0
        while True:
            try:
                return await self.store.finish_many(finishes, pids)
            except ConnectionLost as exc:
                tries += 1
                delay = None if self._retry is None else self._retry(exc, tries)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
