"""The SQLite store's listings: jobs by a JobFilter, streamed page by page, and their count.

Every order is served by an index walked with a keyset cursor (the last row's sort key and
rowid), so each page is one short read that costs what it returns, however deep into a
million jobs it is, and nothing holds a read transaction open while the caller writes out a
page (a reader left open would stop the WAL from being checkpointed behind it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from queuectl.models import Ended, Job
from queuectl.states import RUNNABLE, JobState
from queuectl.store import JobFilter, JobOrder
from queuectl.store.sqlite_base import SqliteBase, translated
from queuectl.store.sqlite_db import job_of, storage_error

#: rows per page: large enough that the per-statement cost vanishes, small enough to stay flat
PAGE = 5000


@dataclass(frozen=True, slots=True)
class _Walk:
    """One walk of an index: its statement, parameters, and the column that (with rowid) is
    the order's key."""

    block: str
    params: dict[str, Any]
    key: str


def _common(job_filter: JobFilter) -> dict[str, Any]:
    return {
        "since": -math.inf if job_filter.since is None else job_filter.since,
        "until": math.inf if job_filter.until is None else job_filter.until,
        "grep": job_filter.grep or "",
        "queue": job_filter.queue,
    }


def _states(states: frozenset[JobState]) -> str:
    """As the statements take them: '' for every state, else a JSON array."""
    return "" if states >= set(JobState) else json.dumps(sorted(states))


def _walks(job_filter: JobFilter) -> list[_Walk]:
    common = _common(job_filter)
    wanted = job_filter.states or frozenset(JobState)
    walks = []
    if job_filter.order is JobOrder.NEXT_RUN:
        due = sorted(state for state in RUNNABLE if state in wanted)
        if due:
            params = {**common, "states": json.dumps(due), "at": -math.inf, "seq": 0}
            walks.append(_Walk("list_due", params, "next_run_at"))
        wanted -= set(RUNNABLE)
        if not wanted:
            return walks
    newest = {**common, "at": common["until"], "seq": 0}
    if len(wanted) == 1:
        [state] = wanted
        walks.append(_Walk("list_created_in_state", {**newest, "state": state}, "created_at"))
    else:
        walks.append(_Walk("list_created", {**newest, "states": _states(wanted)}, "created_at"))
    return walks


class SqliteListOps(SqliteBase):
    async def iter_jobs(self, job_filter: JobFilter) -> AsyncIterator[Job]:
        left = math.inf if job_filter.limit is None else job_filter.limit
        for walk in _walks(job_filter):
            if left <= 0:
                return
            async with contextlib.aclosing(self._walk(walk, left)) as rows:
                async for row in rows:
                    yield job_of(row)
                    left -= 1

    async def _walk(self, walk: _Walk, limit: float) -> AsyncGenerator[sqlite3.Row, None]:
        """The walk's rows, page by page, up to `limit`. The next page is read (on aiosqlite's
        thread) while the caller works through this one: reading and writing out overlap."""
        params = dict(walk.params)
        page = int(min(PAGE, limit))
        ahead: asyncio.Future[list[sqlite3.Row]] | None = asyncio.ensure_future(
            self._page(walk.block, {**params, "page": page})
        )
        try:
            while ahead is not None:
                rows = await ahead
                limit -= len(rows)
                ahead = None
                if len(rows) == page and limit > 0:
                    params["at"], params["seq"] = rows[-1][walk.key], rows[-1]["seq"]
                    page = int(min(PAGE, limit))
                    ahead = asyncio.ensure_future(self._page(walk.block, {**params, "page": page}))
                for row in rows:
                    yield row
        finally:
            if ahead is not None:  # the caller stopped early: let the read finish, unseen
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead

    async def _page(self, block: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        try:
            return await self._rows(block, params)
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from exc

    @translated
    async def relatives(self, job_id: str) -> tuple[list[str], list[str]]:
        parents = [str(row[0]) for row in await self._rows("parents_of", (job_id,))]
        children = [str(row[0]) for row in await self._rows("children_of", (job_id,))]
        return parents, children

    @translated
    async def count_jobs(self, job_filter: JobFilter) -> int:
        states = _states(job_filter.states or frozenset(JobState))
        rows = await self._rows("count_jobs", {**_common(job_filter), "states": states})
        return int(rows[0][0])

    @translated
    async def finished_since(self, since: float, limit: int) -> list[Job]:
        rows = await self._rows("finished_since", {"since": since, "limit": limit})
        return [job_of(row) for row in rows]

    @translated
    async def ended_since(self, since: float, limit: int) -> list[Ended]:
        rows = await self._rows("ended_since", {"since": since, "limit": limit})
        return [Ended(JobState(state), started, finished) for state, started, finished in rows]
