"""One process of scripts/bench_pg.py's store case: drain a PostgreSQL queue of no-op jobs.

No job runs a process: what is measured is the queue's own work per job, claim and finish,
done as each system does it in a worker.

- queuectl: the engine's loop (engine/dispatch.py) without the processes: claim up to
  `concurrency` jobs with store.claim(owner, limit, lease), give each job's end (the transition
  of states.next_state for a success) to a GroupCommit, which writes the ends that gather while
  the previous batch commits in one store.finish_many, and claim again meanwhile;
- pgqueuer: a QueueManager with one no-op async entrypoint, run in drain mode.

The parent starts every process of a round, waits for each to print `ready` (connected and
warmed up), writes `go` to each, and reads one JSON line per process: {"start", "end", "cpu",
"jobs", ...} (start and end from time.time(): all run on one host; cpu: the process's CPU
seconds from go to end).

    python scripts/bench_pg_store.py {queuectl|pgqueuer} URL [--concurrency 20]
        [--batch-size 10] [--driver pool|connection]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from queuectl.models import Outcome
from queuectl.states import next_state
from queuectl.store import Finish, open_store
from queuectl.store.batching import GroupCommit

LEASE = 300.0  # seconds: the drain never comes near it, and renew_leases is not exercised
PGQUEUER_ENTRYPOINT = "noop"
SUCCESS = Outcome(exit_code=0)


async def wait_for_go() -> None:
    """Tell the parent this process is ready; return once it says go (a line on stdin)."""
    print("ready", flush=True)
    line = sys.stdin.readline()  # blocking the loop: nothing is due meanwhile (and no thread)
    if line.strip() != "go":
        raise SystemExit(f"expected `go` on stdin, got {line!r}")


async def drain_queuectl(url: str, concurrency: int) -> dict[str, Any]:
    store = await open_store(url, durable=False)  # as the engine opens it
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    try:
        await store.attach_engine(owner)  # registers, listens, warms up the pool
        commits = GroupCommit(store)
        ends: set[asyncio.Task[bool]] = set()
        refused = 0

        def ended(task: asyncio.Task[bool]) -> None:
            nonlocal refused
            ends.discard(task)
            if not task.cancelled() and task.exception() is None and not task.result():
                refused += 1

        await wait_for_go()
        start, cpu = time.time(), time.process_time()
        claimed = 0
        while True:
            jobs = await store.claim(owner, concurrency, LEASE)
            if not jobs:
                break
            claimed += len(jobs)
            for job in jobs:  # each job's process ended at once: its slot is free again
                finish = Finish(job, next_state(job, SUCCESS, 0.0), SUCCESS)
                task = asyncio.create_task(commits.finish(finish))
                ends.add(task)
                task.add_done_callback(ended)
        results = await asyncio.gather(*ends, return_exceptions=True)
        end, cpu = time.time(), time.process_time() - cpu
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        await store.detach_engine(owner)
    finally:
        await store.close()
    return {
        "start": start, "end": end, "cpu": cpu, "jobs": claimed, "refused": refused,
        "errors": errors,
    }  # fmt: skip


async def drain_pgqueuer(url: str, batch_size: int, driver_kind: str) -> dict[str, Any]:
    from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    done = 0
    closers: list[Callable[[], Awaitable[None]]] = []
    if driver_kind == "pool":
        pool = await asyncpg.create_pool(url, min_size=4, max_size=4)
        closers.append(pool.close)
        queries = Queries(AsyncpgPoolDriver(pool))
    else:
        conn = await asyncpg.connect(url)
        closers.append(conn.close)
        queries = Queries(AsyncpgDriver(conn))
    try:
        qm = QueueManager(queries)

        @qm.entrypoint(PGQUEUER_ENTRYPOINT)
        async def noop(job: Job) -> None:
            nonlocal done
            done += 1

        await qm.verify_structure()  # also the first thing run() does: warms the connection
        await wait_for_go()
        start, cpu = time.time(), time.process_time()
        await qm.run(
            batch_size=batch_size,
            mode=QueueExecutionMode.drain,
            dequeue_timeout=timedelta(seconds=1),
        )
        # run() returns once its log buffer (the jobs' ends) is written
        end, cpu = time.time(), time.process_time() - cpu
    finally:
        for close in closers:
            await close()
    return {"start": start, "end": end, "cpu": cpu, "jobs": done, "refused": 0, "errors": []}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("system", choices=("queuectl", "pgqueuer"))
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=20, help="queuectl: claim limit")
    parser.add_argument("--batch-size", type=int, default=10, help="pgqueuer: dequeue batch")
    parser.add_argument("--driver", choices=("pool", "connection"), default="connection")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.system == "queuectl":
        result = asyncio.run(drain_queuectl(args.url, args.concurrency))
    else:
        result = asyncio.run(drain_pgqueuer(args.url, args.batch_size, args.driver))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
