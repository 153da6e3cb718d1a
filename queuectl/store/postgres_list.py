"""The PostgreSQL store's listings: jobs by a JobFilter, streamed page by page, and their count.

As in the SQLite store (sqlite_list.py), every order is served by an index walked with a keyset
cursor (the last row's sort key and seq), each page one short statement, and the next page is
read while the caller works through the current one. No cursor or transaction stays open
between pages, so a slow reader of a long listing holds nothing on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from queuectl.errors import StorageError
from queuectl.models import Ended, Job
from queuectl.states import RUNNABLE, JobState
from queuectl.store import JobFilter, JobOrder
from queuectl.store.postgres_base import PostgresBase
from queuectl.store.postgres_db import DB_ERRORS, job_of, storage_error, translated

#: rows per page: large enough that the per-statement cost vanishes, small enough to stay flat
PAGE = 2000


@dataclass(frozen=True, slots=True)
class _Walk:
    """One walk of an index: its statement, the arguments before and after the cursor, and the
    column that (with seq) is the order's key."""

    block: str
    head: Any  # $1: the states (or state) wanted
    start: float  # the first page's cursor
    tail: tuple[Any, ...]  # $4 onwards, before the page size
    key: str
    queue: str | None = None  # after the page size: the named queue wanted (None: every one)


def _bounds(job_filter: JobFilter) -> tuple[str, float, float]:
    since = -math.inf if job_filter.since is None else job_filter.since
    until = math.inf if job_filter.until is None else job_filter.until
    return job_filter.grep or "", since, until


def _states(states: frozenset[JobState]) -> list[str] | None:
    """As the statements take them: None for every state."""
    return None if states >= set(JobState) else sorted(state.value for state in states)


def _walks(job_filter: JobFilter) -> list[_Walk]:
    return [dataclasses.replace(walk, queue=job_filter.queue) for walk in _plain_walks(job_filter)]


def _plain_walks(job_filter: JobFilter) -> list[_Walk]:
    grep, since, until = _bounds(job_filter)
    wanted = job_filter.states or frozenset(JobState)
    walks = []
    if job_filter.order is JobOrder.NEXT_RUN:
        due = sorted(state.value for state in RUNNABLE if state in wanted)
        if due:
            walks.append(_Walk("list_due", due, -math.inf, (grep, since, until), "next_run_at"))
        wanted -= set(RUNNABLE)
        if not wanted:
            return walks
    if len(wanted) == 1:
        [state] = wanted
        walks.append(
            _Walk("list_created_in_state", state.value, until, (grep, since), "created_at")
        )
    else:
        walks.append(_Walk("list_created", _states(wanted), until, (grep, since), "created_at"))
    return walks


class PostgresListOps(PostgresBase):
    async def iter_jobs(self, job_filter: JobFilter) -> AsyncIterator[Job]:
        left = math.inf if job_filter.limit is None else job_filter.limit
        for walk in _walks(job_filter):
            if left <= 0:
                return
            async for row in self._walk(walk, left):
                yield job_of(row)
                left -= 1

    async def _walk(self, walk: _Walk, limit: float) -> AsyncIterator[asyncpg.Record]:
        """The walk's rows, page by page, up to `limit`, reading the next page ahead."""
        at, seq = walk.start, 0
        page = int(min(PAGE, limit))
        ahead: asyncio.Future[list[asyncpg.Record]] | None = asyncio.ensure_future(
            self._page(walk, at, seq, page)
        )
        try:
            while ahead is not None:
                rows = await ahead
                limit -= len(rows)
                ahead = None
                if len(rows) == page and limit > 0:
                    at, seq = float(rows[-1][walk.key]), int(rows[-1]["seq"])
                    page = int(min(PAGE, limit))
                    ahead = asyncio.ensure_future(self._page(walk, at, seq, page))
                for row in rows:
                    yield row
        finally:
            if ahead is not None:  # the caller stopped early: let the read finish, unseen
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, StorageError):
                    await ahead

    async def _page(self, walk: _Walk, at: float, seq: int, page: int) -> list[asyncpg.Record]:
        try:
            return await self._fetch(walk.block, walk.head, at, seq, *walk.tail, page, walk.queue)
        except DB_ERRORS as exc:
            raise storage_error(self.target, exc) from exc

    @translated
    async def relatives(self, job_id: str) -> tuple[list[str], list[str]]:
        parents = [str(row["parent"]) for row in await self._fetch("parents_of", job_id)]
        children = [str(row["child"]) for row in await self._fetch("children_of", job_id)]
        return parents, children

    @translated
    async def count_jobs(self, job_filter: JobFilter) -> int:
        grep, since, until = _bounds(job_filter)
        states = _states(job_filter.states or frozenset(JobState))
        queue = job_filter.queue
        return int(await self._value("count_jobs", states, since, until, grep, queue))

    @translated
    async def finished_since(self, since: float, limit: int) -> list[Job]:
        return [job_of(row) for row in await self._fetch("finished_since", since, limit)]

    @translated
    async def ended_since(self, since: float, limit: int) -> list[Ended]:
        rows = await self._fetch("ended_since", since, limit)
        return [Ended(JobState(state), started, finished) for state, started, finished in rows]
