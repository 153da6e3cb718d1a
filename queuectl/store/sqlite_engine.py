"""The engine's side of the SQLite store: attach, claim, leases, finishing, orphans, waiting.

One engine per database file: an engine attaches by taking a lock next to the file that the
kernel drops when its process dies, so while attached, every job leased by another owner is
known to be an orphan, with no need to wait for its lease to run out.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from queuectl.lock import EngineLock
from queuectl.models import EngineRecord, EngineRequests, Job
from queuectl.store import Finish, PidUpdate
from queuectl.store.sqlite_base import translated
from queuectl.store.sqlite_db import SQL, in_transaction, job_of, pragma
from queuectl.store.sqlite_output import encode as encode_output
from queuectl.store.sqlite_queues import SqliteQueueOps, claim_by_queue, due_by_queue, has_holds

CHANGE_POLL = 0.05  # seconds between looks at data_version while waiting for a change


class SqliteEngineOps(SqliteQueueOps):
    async def attach_engine(self, engine_id: str, concurrency: int | None = None) -> None:
        lock = EngineLock(self.path.with_name(self.path.name + ".lock"))
        lock.acquire()
        self._engine_lock = lock

    async def detach_engine(self, engine_id: str) -> None:
        if self._engine_lock is not None:
            self._engine_lock.release()
            self._engine_lock = None

    @translated
    async def claim(
        self, owner: str, limit: int, lease: float, queues: Sequence[str] | None = None
    ) -> list[Job]:
        self._check_file()
        now = self.now()
        params = {"owner": owner, "until": now + lease, "now": now, "limit": limit}

        def claim_due(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            if queues is not None or has_holds(conn):  # limits, pauses: sqlite_queues.py
                rows = claim_by_queue(conn, params, queues)
            else:
                rows = conn.execute(SQL["claim"], params).fetchall()
            conn.executemany(
                SQL["insert_attempt"], [(row["id"], row["runs"], owner, now) for row in rows]
            )
            return rows

        def look_then_claim(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            """One hop for the whole claim (three cost ~1 ms a job at concurrency 1)."""
            # data_version first: a commit by another process after this read wakes the engine
            self._version = conn.execute("PRAGMA data_version").fetchone()[0]
            params["limit"] = conn.execute(SQL["count_due"], params).fetchone()[0]
            if not params["limit"]:
                return []  # the common idle case costs no write transaction
            return in_transaction(conn, claim_due)

        jobs = [job_of(row) for row in await self._hop(look_then_claim)]
        jobs.sort(key=lambda job: (-job.priority, job.next_run_at, job.id))
        return jobs

    @translated
    async def renew_leases(self, owner: str, lease: float) -> dict[str, int]:
        self._check_file()
        async with self._write() as conn:
            cursor = await conn.execute(
                SQL["renew_leases"], {"owner": owner, "until": self.now() + lease}
            )
            return {str(job_id): int(run) for job_id, run in await cursor.fetchall()}

    @translated
    async def finish_many(
        self, finishes: Sequence[Finish], pids: Sequence[PidUpdate] = ()
    ) -> list[bool]:
        now = self.now()
        pid_params = [
            {"pid": p.pid, "id": p.job.id, "owner": p.job.lease_owner, "run": p.job.runs}
            for p in pids
        ]
        params = [finish_params(finish, now) for finish in finishes]

        def apply_all(conn: sqlite3.Connection) -> list[bool]:
            if pid_params:
                conn.executemany(SQL["set_pid"], pid_params)
            if not params:
                return []
            if conn.executemany(SQL["finish_job"], params).rowcount != len(params):
                raise _Partial  # some job moved on: roll back, then apply one by one
            conn.executemany(SQL["finish_attempt"], params)
            return [True] * len(params)

        def apply_each(conn: sqlite3.Connection) -> list[bool]:
            conn.executemany(SQL["set_pid"], pid_params)
            applied = [conn.execute(SQL["finish_job"], p).rowcount == 1 for p in params]
            conn.executemany(
                SQL["finish_attempt"], [p for p, ok in zip(params, applied, strict=True) if ok]
            )
            return applied

        try:
            return await self._transact(apply_all)
        except _Partial:
            return await self._transact(apply_each)

    @translated
    async def orphans(self, owner: str) -> list[Job]:
        name = "orphans_all" if self._engine_lock is not None else "orphans_expired"
        return [job_of(row) for row in await self._rows(name, {"owner": owner, "now": self.now()})]

    @translated
    async def due_in(
        self, retries_only: bool = False, queues: Sequence[str] | None = None
    ) -> float | None:

        def earliest(conn: sqlite3.Connection) -> float | None:
            if not retries_only and (queues is not None or has_holds(conn)):
                return due_by_queue(conn, queues)
            row = conn.execute(SQL["next_retry" if retries_only else "next_due"]).fetchone()
            return None if row is None else row[0]

        due = await self._in_thread(earliest)
        return None if due is None else due - self.now()

    @translated
    async def wait_for_change(self, timeout: float) -> bool:
        """PRAGMA data_version moves when another connection commits; it is polled, as
        SQLite has no notification across processes."""
        self._check_file()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(CHANGE_POLL, left))
            version = await pragma(self._conn, "data_version")
            if version != self._version:
                self._version = version
                return True
        return False

    @asynccontextmanager
    async def rescuing(self) -> AsyncIterator[bool]:
        """Always: one engine per file, so no other rescues."""
        yield True

    # --- engines on many hosts: one engine per SQLite file, reached through its socket

    async def engines(self) -> list[EngineRecord]:
        return []

    async def request_stop(self, engine_ids: Sequence[str] | None, kill: bool) -> list[str]:
        return []

    async def request_cancel(self, job_ids: Sequence[str]) -> list[str]:
        return []

    async def engine_requests(self, engine_id: str) -> EngineRequests:
        return EngineRequests()


class _Partial(Exception):
    """A guarded update in a group commit matched no row."""


def finish_params(finish: Finish, now: float) -> dict[str, Any]:
    job, transition, outcome = finish.job, finish.transition, finish.outcome
    return {
        "id": job.id,
        "owner": job.lease_owner,
        "run": job.runs,
        "from_state": transition.from_state.value,
        "state": transition.state.value,
        "attempts": transition.attempts,
        "due_in": transition.due_in,
        "now": now,
        "exit_code": outcome.exit_code,
        "error": outcome.error,
        "error_kind": None if outcome.error_kind is None else outcome.error_kind.value,
        "output": encode_output(outcome.chunks()),
        "stdout_truncated": outcome.stdout_truncated,
        "stderr_truncated": outcome.stderr_truncated,
    }
