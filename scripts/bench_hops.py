"""What the SQLite store's one-hop transactions are worth (`make bench-hops`).

SqliteStore runs each of the engine's write transactions (BEGIN, its statements, COMMIT) as one
call on aiosqlite's thread, through aiosqlite's private Connection._execute. With aiosqlite's
public API only, each statement is a hop to that thread and back. This measures the store's
claim + finish throughput both ways on the same queue sizes, paired in each round, so that the
dependency on a private method is kept (or dropped) for a measured reason.

    .venv/bin/python scripts/bench_hops.py [--jobs 4000] [--batch 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from queuectl.models import Job, JobSpec, Outcome
from queuectl.states import next_state
from queuectl.store import Finish, PidUpdate
from queuectl.store.sqlite import SqliteStore
from queuectl.store.sqlite_db import SQL, job_of, pragma
from queuectl.store.sqlite_engine import finish_params

LEASE = 30.0


class PublicApiStore(SqliteStore):
    """The same transactions, one aiosqlite hop per statement."""

    async def claim(self, owner: str, limit: int, lease: float) -> list[Job]:
        now = self.now()
        self._version = await pragma(self._conn, "data_version")  # as SqliteStore.claim
        due = (await self._rows("count_due", {"now": now, "limit": limit}))[0][0]
        params = {"owner": owner, "until": now + lease, "now": now, "limit": due}
        async with self._write() as conn:
            rows = list(await conn.execute_fetchall(SQL["claim"], params))
            attempts = [(row["id"], row["runs"], owner, now) for row in rows]
            await conn.executemany(SQL["insert_attempt"], attempts)
        return [job_of(row) for row in rows]

    async def finish_many(
        self, finishes: Sequence[Finish], pids: Sequence[PidUpdate] = ()
    ) -> list[bool]:
        params = [finish_params(finish, self.now()) for finish in finishes]
        async with self._write() as conn:
            await conn.executemany(SQL["finish_job"], params)
            await conn.executemany(SQL["finish_attempt"], params)
        return [True] * len(params)


async def burn(store_class: type[SqliteStore], jobs: int, batch: int) -> float:
    """Jobs per second through claim(batch) + finish_many(batch), all succeeding."""
    home = Path(tempfile.mkdtemp(prefix="qhops", dir="/tmp"))
    try:
        store = await store_class.open(home / "queue.db", durable=False)
        await store.enqueue([JobSpec("true", "/") for _ in range(jobs)])
        done = 0
        start = time.perf_counter()
        while done < jobs:
            claimed = await store.claim("bench", batch, LEASE)
            ok = Outcome(None, exit_code=0)
            await store.finish_many([Finish(j, next_state(j, ok, 1.0), ok) for j in claimed])
            done += len(claimed)
        elapsed = time.perf_counter() - start
        await store.close()
        return jobs / elapsed
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, action="append", help="claim size (repeatable)")
    args = parser.parse_args()
    for batch in args.batch or [1, 20]:
        ratios, one_hop, per_statement = [], [], []
        for _ in range(args.runs):
            one_hop.append(asyncio.run(burn(SqliteStore, args.jobs, batch)))
            per_statement.append(asyncio.run(burn(PublicApiStore, args.jobs, batch)))
            ratios.append(one_hop[-1] / per_statement[-1])
        print(
            f"batch {batch:3d}: one hop per transaction {statistics.median(one_hop):7.0f} jobs/s, "
            f"one hop per statement {statistics.median(per_statement):7.0f} jobs/s, "
            f"ratio {statistics.median(ratios):.2f}x (median of {args.runs} paired rounds)"
        )


if __name__ == "__main__":
    main()
