"""The SQLite store's operations for managing jobs: restart, edit, delete, cancel many, purge,
and dropping old output.

Operations on ids given run in one transaction each (all or nothing). Operations on a whole
state or age (a purge of a million jobs) run as many short transactions instead: SQLite has one
write lock per database, and a running engine that cannot write for seconds stops starting
and finishing jobs. Each batch is sized from how long the last one held the lock (a target of
BATCH_TARGET), and the next batch waits BATCH_PAUSE first: a writer in another process waits
for the lock in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20 ms... between tries,
so without a pause the purge would take the lock again before the other writer looked, and
that writer would starve. A pause longer than those first sleeps lets it in after one batch.
Measured (scripts/bench_purge.py, 1,000,000 jobs on a busy 2-core machine): a concurrent
writer waits at most 40-61 ms, where one DELETE of them all holds the lock for 9 s.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from queuectl.errors import BadInput, JobNotFound
from queuectl.models import Job
from queuectl.states import (
    AT_REST,
    CANCELABLE,
    FINISHED,
    RESTARTABLE,
    JobState,
    KillReason,
    at_rest,
    can_cancel,
)
from queuectl.store import JobChanges, Progress
from queuectl.store.sqlite_base import SqliteBase, translated
from queuectl.store.sqlite_db import SQL, job_of

R = TypeVar("R")

#: seconds a batch may hold the write lock: an aim, well under the ~100 ms bound, since a busy
#: CPU (the engine's own jobs) stretches a batch, and its waiters poll
BATCH_TARGET = 0.01
BATCH_PAUSE = 0.02  # seconds between batches, so that other writers get the lock
FIRST_BATCH = 500
MIN_BATCH, MAX_BATCH = 50, 20_000
OUTPUT_PAGE = 1000  # attempts looked at per read while dropping old output


def _names(states: Sequence[JobState]) -> str:
    """'a, b or c'"""
    names = [state.value for state in states]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _running(job_id: str, action: str) -> BadInput:
    return BadInput(
        f"job {job_id!r} is running, so it cannot be {action}; cancel it "
        f"(`queuectl cancel {job_id}`) or wait for it to end (`queuectl wait {job_id}`)"
    )


def _refusal(job_id: str, state: JobState, action: str, allowed: Sequence[JobState]) -> BadInput:
    if state is JobState.PROCESSING:
        return _running(job_id, action)
    return BadInput(f"job {job_id!r} is {state.value}; only {_names(allowed)} jobs can be {action}")


def _state_of(conn: sqlite3.Connection, job_id: str) -> JobState:
    """The job's state, inside a transaction; raises JobNotFound."""
    row = conn.execute(SQL["get_job"], (job_id,)).fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return JobState(row["state"])


def _next_size(size: int, took: float) -> int:
    """The next batch's size, from how long this one held the lock: growing at most twofold,
    shrinking at once (a slow disk or a busy CPU must not keep long batches going)."""
    wanted = size * BATCH_TARGET / max(took, 1e-4)
    return int(min(MAX_BATCH, max(MIN_BATCH, min(wanted, size * 2))))


class SqliteManageOps(SqliteBase):
    # --- by id: one transaction each, all or nothing ------------------------------------------

    @translated
    async def restart(self, job_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(job_ids))  # naming a job twice restarts it once
        params = {"now": self.now()}

        def restart_all(conn: sqlite3.Connection) -> list[str]:
            for job_id in ids:
                if conn.execute(SQL["restart_job"], {**params, "id": job_id}).rowcount == 0:
                    state = _state_of(conn, job_id)
                    raise _refusal(job_id, state, "restarted", RESTARTABLE)
            return ids

        return await self._transact(restart_all)

    @translated
    async def edit(self, job_id: str, changes: JobChanges) -> Job:
        params = {
            "id": job_id,
            "now": self.now(),
            "command": changes.command,
            "priority": changes.priority,
            "max_retries": changes.max_retries,
            "timeout": changes.timeout,
            "clear_timeout": changes.clear_timeout,
            "run_at": changes.run_at,
            "delay": changes.delay,
        }

        def edit_one(conn: sqlite3.Connection) -> sqlite3.Row:
            row = conn.execute(SQL["edit_job"], params).fetchone()
            if row is None:
                raise _refusal(job_id, _state_of(conn, job_id), "edited", AT_REST)
            return cast(sqlite3.Row, row)

        return job_of(await self._transact(edit_one))

    @translated
    async def delete(self, job_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(job_ids))

        def delete_all(conn: sqlite3.Connection) -> list[str]:
            for job_id in ids:
                if conn.execute(SQL["delete_job"], {"id": job_id}).rowcount == 0:
                    raise _refusal(job_id, _state_of(conn, job_id), "deleted", AT_REST)
            return ids

        return await self._transact(delete_all)

    @translated
    async def cancel_many(self, job_ids: Sequence[str]) -> list[Job]:
        ids = list(dict.fromkeys(job_ids))
        params = {"now": self.now(), "error": KillReason.CANCEL.message}

        def cancel_all(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            for job_id in ids:  # every one is checked before any is changed
                state = _state_of(conn, job_id)
                if not can_cancel(state):
                    raise BadInput(
                        f"job {job_id!r} is {state.value}; only {', '.join(CANCELABLE)} or "
                        "running jobs can be canceled"
                    )
            rows = []
            for job_id in ids:
                conn.execute(SQL["cancel_waiting"], {**params, "id": job_id})
                rows.append(conn.execute(SQL["get_job"], (job_id,)).fetchone())
            return rows

        return [job_of(row) for row in await self._transact(cancel_all)]

    # --- by state or age: short batches -------------------------------------------------------

    @translated
    async def restart_in_state(self, state: JobState, progress: Progress | None = None) -> int:
        params = {"state": state.value, "now": self.now()}
        return await self._batched(SQL["restart_in_state_batch"], params, progress)

    @translated
    async def cancel_in_state(self, state: JobState, progress: Progress | None = None) -> int:
        params = {"state": state.value, "now": self.now(), "error": KillReason.CANCEL.message}
        return await self._batched(SQL["cancel_in_state_batch"], params, progress)

    @translated
    async def purgeable(
        self, states: Sequence[JobState], older_than: float | None, queue: str | None = None
    ) -> int:
        finished, waiting, cutoff = self._purge_plan(states, older_than)
        count = 0
        if finished:
            params = {"states": finished, "cutoff": cutoff, "queue": queue}
            rows = await self._rows("count_finished", params)
            count += rows[0][0]
        for state in waiting:
            params = {"state": state, "cutoff": cutoff, "queue": queue}
            rows = await self._rows("count_waiting", params)
            count += rows[0][0]
        return int(count)

    @translated
    async def purge(
        self,
        states: Sequence[JobState],
        older_than: float | None,
        progress: Progress | None = None,
        queue: str | None = None,
    ) -> int:
        finished, waiting, cutoff = self._purge_plan(states, older_than)
        deleted = 0
        if finished:
            params: dict[str, Any] = {"states": finished, "cutoff": cutoff, "queue": queue}
            deleted += await self._batched(SQL["purge_finished_batch"], params, progress)
        for state in waiting:
            params = {"state": state, "cutoff": cutoff, "queue": queue}
            deleted += await self._batched(SQL["purge_waiting_batch"], params, progress)
        return deleted

    def _purge_plan(
        self, states: Sequence[JobState], older_than: float | None
    ) -> tuple[str | None, list[str], float]:
        """The finished states (as JSON for the statement), the waiting ones, and the cutoff."""
        busy = [state for state in states if not at_rest(state)]
        if busy:
            raise BadInput(f"{busy[0].value} jobs cannot be purged; choose from {_names(AT_REST)}")
        wanted = list(dict.fromkeys(states))
        finished = [state.value for state in wanted if state in FINISHED]
        waiting = [state.value for state in wanted if state not in FINISHED]
        cutoff = math.inf if older_than is None else self.now() - older_than
        return (json.dumps(finished) if finished else None), waiting, cutoff

    @translated
    async def drop_output(self, older_than: float, progress: Progress | None = None) -> int:
        """Pages of attempts are read outside any transaction (readers never block writers in
        WAL mode); only each page's stale attempts are written, in a short transaction."""
        cutoff = self.now() - older_than
        after: tuple[str, int] = ("", 0)  # every real key sorts after this one
        dropped = 0
        while True:
            page = await self._rows(
                "output_page",
                {"job_id": after[0], "run": after[1], "cutoff": cutoff, "page": OUTPUT_PAGE},
            )
            if not page:
                return dropped
            after = (page[-1]["job_id"], page[-1]["run"])
            stale = [
                {"job_id": row["job_id"], "run": row["run"], "cutoff": cutoff}
                for row in page
                if row["stale"]
            ]
            if stale:

                def drop(conn: sqlite3.Connection, stale: list[dict[str, Any]] = stale) -> int:
                    return conn.executemany(SQL["drop_output"], stale).rowcount

                count, _took = await self._timed_transact(drop)
                dropped += count
                if progress:
                    progress(count)
                await asyncio.sleep(BATCH_PAUSE)
            if len(page) < OUTPUT_PAGE:
                return dropped

    # --- batching -----------------------------------------------------------------------------

    async def _batched(self, sql: str, params: dict[str, Any], progress: Progress | None) -> int:
        """Run a *_batch statement until it changes fewer rows than its batch; how many rows it
        changed in all."""
        size, total = FIRST_BATCH, 0
        while True:
            batch = {**params, "batch": size}

            def one_batch(conn: sqlite3.Connection, batch: dict[str, Any] = batch) -> int:
                return conn.execute(sql, batch).rowcount

            changed, took = await self._timed_transact(one_batch)
            total += changed
            if progress and changed:
                progress(changed)
            if changed < size:
                return total
            size = _next_size(size, took)
            await asyncio.sleep(BATCH_PAUSE)

    async def _timed_transact(self, body: Callable[[sqlite3.Connection], R]) -> tuple[R, float]:
        """`_transact`, also telling how long the write lock was held (BEGIN to COMMIT done)."""

        def timed(conn: sqlite3.Connection) -> tuple[R, float]:
            conn.execute("BEGIN IMMEDIATE")
            started = time.perf_counter()
            try:
                result = body(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result, time.perf_counter() - started

        execute = cast(Callable[..., Awaitable[tuple[R, float]]], self._conn._execute)
        async with self._write_lock:
            return await execute(timed, self._conn._conn)
