"""Named queues in the SQLite store: their limits and pauses, and the claim that honours them.

One engine runs per SQLite file and every claim is one BEGIN IMMEDIATE transaction, so a
queue's running jobs cannot change between the count and the claim: the limit is exact by the
file's write lock alone. The claim keeps today's single statement (one walk of jobs_runnable)
while no queue is limited or paused and the engine takes every queue; otherwise it goes queue
by queue (`claim_by_queue`): each queue with a due job (found by a loose scan of
jobs_queue_due, one probe per queue) gives at most its free slots, through its own index, and
the best of all of them are taken. Going by queue, not through one global walk that skips the
held queues' jobs, keeps a paused queue of a million due jobs from costing every claim a walk
through all of them, and a full queue from crowding the others out of the candidates.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from queuectl.errors import BadInput
from queuectl.models import QueueInfo
from queuectl.states import JobState
from queuectl.store.sqlite_base import SqliteBase, translated
from queuectl.store.sqlite_db import SQL

R = TypeVar("R")

#: the largest limit a queue takes (far above any engine's slots: it only guards typos)
MAX_QUEUE_CONCURRENCY = 1_000_000


def check_concurrency(concurrency: int | None) -> None:
    """A limit is a positive number of jobs, or None (only the engines' slots); 0 would be a
    pause in disguise, and a pause has a command of its own."""
    if concurrency is not None and not 1 <= concurrency <= MAX_QUEUE_CONCURRENCY:
        raise BadInput(
            f"invalid queue concurrency {concurrency}; use 1-{MAX_QUEUE_CONCURRENCY}, or none "
            "(to stop a queue, use `queuectl queue pause NAME`)"
        )


@dataclass(frozen=True, slots=True)
class Holds:
    """What keeps a claim from taking any due job: the queue-wide pause, the paused queues,
    and the limits."""

    paused_all: bool
    paused: frozenset[str]
    limits: dict[str, int]

    @classmethod
    def of(cls, rows: Sequence[sqlite3.Row | tuple[Any, ...]]) -> Holds:
        named = [row for row in rows if row[0] is not None]
        return cls(
            paused_all=any(row[0] is None for row in rows),
            paused=frozenset(str(row[0]) for row in named if row[2]),
            limits={str(row[0]): int(row[1]) for row in named if row[1] is not None},
        )


def eligible(
    conn: sqlite3.Connection, holds: Holds, queues: Sequence[str] | None, limit: int
) -> list[tuple[str, float, int]]:
    """(queue, earliest due time, room) of each queue the claim may take from: it has a waiting
    job, is among `queues` (None: all), is not paused and has room (at most `limit`, and for a
    limited queue its limit less its running jobs)."""
    wanted = None if queues is None else frozenset(queues)
    running: dict[str, int] = {}
    if holds.limits:
        running = dict(conn.execute(SQL["queues_processing"]).fetchall())
    found = []
    for name, due in conn.execute(SQL["queues_due"]).fetchall():
        if (wanted is not None and name not in wanted) or name in holds.paused:
            continue
        room = limit
        if name in holds.limits:
            room = min(room, holds.limits[name] - running.get(name, 0))
        if room > 0:
            found.append((str(name), float(due), room))
    return found


def _rank(row: sqlite3.Row) -> tuple[int, float, str]:
    return (-row["priority"], row["next_run_at"], row["id"])


def claim_by_queue(
    conn: sqlite3.Connection, params: dict[str, Any], queues: Sequence[str] | None
) -> list[sqlite3.Row]:
    """The claim of up to params["limit"] jobs, queue by queue, inside the caller's write
    transaction (see the module's docstring).

    The best `limit` jobs of all queues are found without reading `limit` from each: every
    due queue gives its best job first, and a queue gives more (twice as many each time, up to
    its room) only while all it gave is among the best so far, since only then may its next
    job rank among them too. With 100 queues and 20 slots that reads ~100 rows, not 2,000."""
    holds = Holds.of(conn.execute(SQL["queue_holds"]).fetchall())
    if holds.paused_all:
        return []
    now, limit = params["now"], params["limit"]
    due = [(name, room) for name, when, room in eligible(conn, holds, queues, limit) if when <= now]
    allowed = dict(due)
    given: dict[str, list[sqlite3.Row]] = {}
    done: set[str] = set()  # queues that gave all they may (or have)
    best: list[sqlite3.Row] = []
    asked = dict.fromkeys(allowed, 1)
    while asked:
        for name, count in asked.items():
            at = {"queue": name, "now": now, "limit": count}
            given[name] = conn.execute(SQL["queue_candidates"], at).fetchall()
            if len(given[name]) < count or count >= allowed[name]:
                done.add(name)
        best = sorted((row for rows in given.values() for row in rows), key=_rank)[:limit]
        chosen = {row["id"] for row in best}
        asked = {
            name: min(allowed[name], 2 * len(rows))
            for name, rows in given.items()
            if name not in done and all(row["id"] in chosen for row in rows)
        }
    ids = [row["id"] for row in best]
    if not ids:
        return []
    return conn.execute(SQL["claim_ids"], {**params, "ids": json.dumps(ids)}).fetchall()


def has_holds(conn: sqlite3.Connection) -> bool:
    """Whether any queue is limited or paused (or the whole queue paused): the claim's choice
    between its one-statement path and claim_by_queue."""
    return conn.execute(SQL["queue_holds"]).fetchone() is not None


def due_by_queue(
    conn: sqlite3.Connection, queues: Sequence[str] | None, limit: int = 1
) -> float | None:
    """The earliest due time of a job the claim could take (its queue selected, not paused,
    not full); None when there is none. The queue-wide pause is the caller's to check."""
    holds = Holds.of(conn.execute(SQL["queue_holds"]).fetchall())
    dues = [due for _, due, _ in eligible(conn, holds, queues, limit)]
    return min(dues) if dues else None


class SqliteQueueOps(SqliteBase):
    async def _in_thread(self, body: Callable[[sqlite3.Connection], R]) -> R:
        """Run `body`'s reads on aiosqlite's thread in one hop (as SqliteBase._transact does
        for writes), outside a write transaction."""
        execute = cast(Callable[..., Awaitable[R]], self._conn._execute)
        return await execute(body, self._conn._conn)

    @translated
    async def queues(self) -> list[QueueInfo]:
        settings = {row[0]: row for row in await self._rows("queue_rows")}
        counts: dict[str, dict[JobState, int]] = {}
        for queue, state, count in await self._rows("queue_counts"):
            counts.setdefault(queue, dict.fromkeys(JobState, 0))[JobState(state)] = count
        return [
            QueueInfo(
                name=name,
                concurrency=None if name not in settings else settings[name][1],
                paused=name in settings and bool(settings[name][2]),
                counts=counts.get(name) or dict.fromkeys(JobState, 0),
            )
            for name in sorted(settings.keys() | counts.keys())
        ]

    @translated
    async def set_queue(self, name: str, concurrency: int | None) -> None:
        check_concurrency(concurrency)
        params = {"name": name, "concurrency": concurrency}
        async with self._write() as conn:
            await conn.execute(SQL["set_queue"], params)
            await conn.execute(SQL["forget_plain_queue"], params)

    @translated
    async def set_queue_paused(self, name: str, paused: bool) -> None:
        params = {"name": name, "paused": int(paused)}
        async with self._write() as conn:
            await conn.execute(SQL["set_queue_paused"], params)
            await conn.execute(SQL["forget_plain_queue"], params)
