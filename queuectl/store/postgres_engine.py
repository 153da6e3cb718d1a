"""The engine's side of the PostgreSQL store: attach, claim, leases, finishing, orphans, waiting.

Many engines, on many hosts, share one database. Each registers in queuectl_engines and beats
its heartbeat with every lease renewal. A job is an orphan when its lease ran out, or at once
when its engine ran on this machine and its process is gone (a recycled pid is told apart by
the process's start time), so a restarted engine settles a killed one's jobs without waiting
for their leases. Every change of a running job is guarded by (state, lease owner, run): the
fencing token that keeps a late result of a presumed-dead engine from overwriting a newer run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from queuectl import __version__, procfs
from queuectl.models import Job
from queuectl.store import Finish, PidUpdate
from queuectl.store.postgres_base import Tx
from queuectl.store.postgres_cluster import PostgresClusterOps
from queuectl.store.postgres_db import DB_ERRORS, POOL_SIZE, job_of, storage_error, translated
from queuectl.store.postgres_queues import claim_by_queue
from queuectl.store.sqlite_output import encode as encode_output

#: pg_try_advisory_lock key of the rescue of orphans: b"qrescue!" as a signed 64-bit integer
RESCUE_LOCK = int.from_bytes(b"qrescue!", "big", signed=True)


class PostgresEngineOps(PostgresClusterOps):
    @translated
    async def attach_engine(self, engine_id: str, concurrency: int | None = None) -> None:
        """Register the engine (any number may attach), and start listening for changes."""
        await self._register(engine_id, concurrency)
        self._engine_id, self._concurrency = engine_id, concurrency
        await asyncio.gather(self._watch.start(), self._warm_up())

    async def _warm_up(self) -> None:
        """Open every connection of the pool and prepare the engine's statements on each, by
        running them so that they change nothing: else the first claims and finishes that run
        side by side each wait for a new connection and a prepare (tens of ms, measured), and a
        finish lands well after the claim that reused its slot."""
        async with contextlib.AsyncExitStack() as stack:
            conns = [
                await stack.enter_async_context(self._pool.acquire()) for _ in range(POOL_SIZE)
            ]
            results = await asyncio.gather(
                *(self._no_ops(conn) for conn in conns), return_exceptions=True
            )
        for result in results:  # every connection is back in the pool before this raises
            if isinstance(result, BaseException):
                raise result

    async def _no_ops(self, conn: asyncpg.Connection) -> None:
        tx = Tx(self, conn)
        await tx.fetch("claim", "", 0, 0.0)  # a bound of 0: locks and changes nothing
        await tx.fetch("lock_limited_queues", [])  # no queue taken: locks nothing
        await tx.fetch("claim_by_queue", "", 0, 0.0, [], [], [])
        await tx.value("due_by_queue", [])
        await tx.fetch("finish_many", *_finish_args(()))
        await tx.execute("set_pids", *_pid_args(()))
        await tx.execute("renew_leases", "", 0.0)
        await tx.fetch("get_config")
        await tx.value("next_due")

    @translated
    async def _register(self, engine_id: str, concurrency: int | None) -> None:
        await self._execute(
            "attach_engine",
            engine_id,
            MACHINE,
            socket.gethostname(),
            os.getpid(),
            process_started(os.getpid()),
            __version__,
            concurrency,
        )

    async def detach_engine(self, engine_id: str) -> None:
        await self._execute("detach_engine", engine_id)
        if self._engine_id == engine_id:
            self._engine_id = None

    @translated
    async def claim(
        self, owner: str, limit: int, lease: float, queues: Sequence[str] | None = None
    ) -> list[Job]:
        """One statement while no queue is limited or paused (and all are taken); else the
        exact claim of postgres_queues.py."""
        self._watch.looked()
        if limit <= 0:
            return []
        if queues is None:
            rows = await self._fetch("claim", owner, limit, lease)
            if not rows[0]["held"]:
                return [job_of(row) for row in rows if row["id"] is not None]
        return await claim_by_queue(self, owner, limit, lease, queues)

    @translated
    async def renew_leases(self, owner: str, lease: float) -> dict[str, int]:
        rows = await self._fetch("renew_leases", owner, lease)
        if not rows[-1]["registered"] and owner == self._engine_id:
            await self._register(owner, self._concurrency)
        return {str(row["id"]): int(row["runs"]) for row in rows[:-1]}

    @translated
    async def finish_many(
        self, finishes: Sequence[Finish], pids: Sequence[PidUpdate] = ()
    ) -> list[bool]:
        """One transaction; the finishes in one statement, whose answer names those that
        applied (a finish whose job moved on matches no row)."""
        if not finishes and not pids:
            return []
        if not pids:
            places = {
                row["ord"] for row in await self._fetch("finish_many", *_finish_args(finishes))
            }
        elif not finishes:
            await self._execute("set_pids", *_pid_args(pids))
            return []
        else:
            async with self._transaction() as tx:  # pids first: a finish clears the pid
                await tx.execute("set_pids", *_pid_args(pids))
                rows = await tx.fetch("finish_many", *_finish_args(finishes))
                places = {row["ord"] for row in rows}
        return [place in places for place in range(1, len(finishes) + 1)]

    @asynccontextmanager
    async def rescuing(self) -> AsyncIterator[bool]:
        """A session advisory lock on a pooled connection, tried, not waited for: the engine
        holding it rescues, the others leave the orphans to it. Unlocked before the connection
        goes back to the pool; a connection that failed meanwhile is closed, which frees it."""
        try:
            conn = await self._pool.acquire()
        except DB_ERRORS as exc:
            raise storage_error(self.target, exc) from exc
        try:
            ours = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", RESCUE_LOCK))
            try:
                yield ours
            finally:
                if ours:
                    await conn.fetchval("SELECT pg_advisory_unlock($1)", RESCUE_LOCK)
        except DB_ERRORS as exc:
            conn.terminate()
            raise storage_error(self.target, exc) from exc
        finally:
            await self._pool.release(conn)

    @translated
    async def orphans(self, owner: str) -> list[Job]:
        """Running jobs of other owners whose lease expired, or whose engine ran on this
        machine and is gone; dead engines of this machine that hold nothing are forgotten."""
        dead = [
            str(row["id"])
            for row in await self._fetch("machine_engines", MACHINE, owner)
            if not same_process(int(row["pid"]), row["pid_started"])
        ]
        jobs = [job_of(row) for row in await self._fetch("orphans", owner, dead)]
        if dead:
            held = {job.lease_owner for job in jobs}
            await self._execute("forget_engines", [e for e in dead if e not in held])
        await self._forget_lost_engines()
        return jobs

    @translated
    async def due_in(
        self, retries_only: bool = False, queues: Sequence[str] | None = None
    ) -> float | None:
        if retries_only:
            due = await self._value("next_retry")
        else:
            due = await self._value("due_by_queue", None if queues is None else list(queues))
        return None if due is None else float(due)

    @translated
    async def wait_for_change(self, timeout: float) -> bool:
        """LISTEN on a connection of the store's own; polling while it is down (see
        postgres_listen.py)."""
        return await self._watch.wait(timeout)


def _machine() -> str:
    """This machine as the engines table names it: the hostname, and where the kernel tells,
    its boot and pid namespace, so that a pid means the same process only on the same kernel
    since the same boot and in the same namespace."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            boot = file.read().strip()
    except OSError:
        boot = ""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{boot}/{namespace}"


MACHINE = _machine()


def process_started(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22)."""
    fields = procfs.stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def same_process(pid: int, started: Any) -> bool:
    """Whether the engine registered as (pid, start time) still runs."""
    if not procfs.alive(pid):
        return False
    return started is None or process_started(pid) in (None, int(started))


def _finish_args(finishes: Sequence[Finish]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(13)]
    for finish in finishes:
        job, transition, outcome = finish.job, finish.transition, finish.outcome
        row = (
            job.id,
            job.lease_owner,
            job.runs,
            transition.from_state.value,
            transition.state.value,
            transition.attempts,
            transition.due_in,
            outcome.exit_code,
            outcome.error,
            None if outcome.error_kind is None else outcome.error_kind.value,
            outcome.stdout_truncated,
            outcome.stderr_truncated,
            encode_output(outcome.chunks()),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _pid_args(pids: Sequence[PidUpdate]) -> list[list[Any]]:
    return [
        [p.job.id for p in pids],
        [p.job.lease_owner for p in pids],
        [p.job.runs for p in pids],
        [p.pid for p in pids],
    ]
