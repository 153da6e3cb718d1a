"""Claim speed with named queues: store-level claim + finish throughput over a deep queue.

Issue 13's figure: "claim speed with 100 queues and 1,000,000 jobs within 10% of the
one-queue case". Each layout is a fresh queue of JOBS no-op jobs, all due; what is timed is
the engine's rhythm without processes: claim up to CONCURRENCY jobs, finish them all (a
success, through states.next_state and one finish_many), claim again, for MEASURE jobs, after
a warm-up. Cases:

- one:          every job in queue `default` (today's one-statement claim);
- 100:          the jobs spread over 100 queues, none limited or paused (the same claim: named
                queues cost nothing until one is limited);
- 100-limited:  the same queue, every one of the 100 limited to 1,000 (never reached): the
                exact claim, queue by queue (store/sqlite_queues.py, postgres_queues.py);
- 100-paused:   one of the 100 queues paused instead, the other 99 free: the same path.

    python scripts/bench_queues.py [--db postgresql://...] [--jobs 1000000] [--measure 20000]
        [--concurrency 20] [--out bench/queues.json]

Without --db the queue is a SQLite file in a temporary directory. With --db, the database is
emptied before each layout (it must be a database for benchmarks only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from queuectl.models import JobSpec, Outcome
from queuectl.states import next_state
from queuectl.store import Finish, Store, open_store

LEASE = 300.0
SUCCESS = Outcome(exit_code=0)
WARM_UP = 2000  # jobs claimed and finished before the clock starts
ENQUEUE_BATCH = 50_000
QUEUES = 100


async def fill(store: Store, jobs: int, queues: int) -> float:
    """Enqueue `jobs` no-op jobs over `queues` queues (round robin); seconds it took."""
    began = time.perf_counter()
    for start in range(0, jobs, ENQUEUE_BATCH):
        count = min(ENQUEUE_BATCH, jobs - start)
        names = ["default"] if queues == 1 else [f"q{n:03d}" for n in range(queues)]
        specs = [
            JobSpec(command="true", cwd="/", queue=names[(start + i) % len(names)])
            for i in range(count)
        ]
        await store.enqueue(specs)
    return time.perf_counter() - began


async def drain(store: Store, count: int, concurrency: int) -> int:
    """Claim and finish `count` jobs as the engine would; how many it did."""
    done = 0
    while done < count:
        jobs = await store.claim("bench", min(concurrency, count - done), LEASE)
        if not jobs:
            break
        finishes = [Finish(job, next_state(job, SUCCESS, 0.0), SUCCESS) for job in jobs]
        applied = await store.finish_many(finishes)
        assert all(applied), "a finish did not apply"
        done += len(jobs)
    return done


async def measure(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    await drain(store, WARM_UP, args.concurrency)
    began = time.perf_counter()
    done = await drain(store, args.measure, args.concurrency)
    took = time.perf_counter() - began
    return {"jobs": done, "seconds": round(took, 3), "jobs_per_s": round(done / took, 1)}


async def open_empty(args: argparse.Namespace, where: Path) -> Store:
    if args.db is None:
        return await open_store(where, durable=False)
    import asyncpg

    conn = await asyncpg.connect(args.db)
    try:
        await conn.execute("DROP TABLE IF EXISTS queuectl_deps CASCADE")  # recreated below
        await conn.execute(
            "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables "
            "WHERE tablename LIKE 'queuectl%' LOOP EXECUTE 'DROP TABLE ' || t || ' CASCADE'; "
            "END LOOP; END $$"
        )
        await conn.execute("DROP SEQUENCE IF EXISTS queuectl_changes")
        await conn.execute("DROP FUNCTION IF EXISTS queuectl_resolve_children() CASCADE")
    finally:
        await conn.close()
    return await open_store(args.db, durable=False)


async def layout(args: argparse.Namespace, queues: int, cases: list[str]) -> dict[str, Any]:
    where = Path(tempfile.mkdtemp(prefix="qbench"))
    results: dict[str, Any] = {}
    try:
        store = await open_empty(args, where)
        try:
            filled = await fill(store, args.jobs, queues)
            print(f"  {args.jobs:,} jobs in {queues} queue(s): enqueued in {filled:.1f}s")
            for case in cases:
                if case == "100-limited":
                    for n in range(queues):
                        await store.set_queue(f"q{n:03d}", 1000)
                elif case == "100-paused":
                    for n in range(queues):
                        await store.set_queue(f"q{n:03d}", None)
                    await store.set_queue_paused("q000", True)
                results[case] = await measure(store, args)
                print(f"  {case:12} {results[case]['jobs_per_s']:>9,.0f} jobs/s")
        finally:
            await store.close()
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return results


async def main(args: argparse.Namespace) -> None:
    backend = "sqlite" if args.db is None else "postgres"
    print(f"claim + finish on {backend}, concurrency {args.concurrency}:")
    results = await layout(args, 1, ["one"])
    results |= await layout(args, QUEUES, ["100", "100-limited", "100-paused"])
    base = results["one"]["jobs_per_s"]
    for result in results.values():
        result["vs_one"] = round(result["jobs_per_s"] / base, 3)
    ratios = ", ".join(f"{case} {result['vs_one']:.2f}" for case, result in results.items())
    print(f"  relative to one queue: {ratios}")
    report = {
        "backend": backend,
        "jobs": args.jobs,
        "measure": args.measure,
        "concurrency": args.concurrency,
        "cases": results,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", help="a postgresql:// URL (emptied!); default: a SQLite file")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--measure", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--out", help="write the figures here as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
