"""Purging a million finished jobs without stalling the queue (`make bench-purge`).

Fills a fresh queue with N finished jobs (one attempt each, with a little output) older than a
week, plus a few recent ones that must survive, directly through a script-side sqlite3
connection (a benchmark fixture, not how queuectl writes). Then, while a separate writer
process keeps committing tiny `BEGIN IMMEDIATE; INSERT; COMMIT` transactions against the same
database, as an engine claiming and finishing jobs does, it runs the real
`queuectl purge --older-than 7d` and reports:

- the purge's wall time (process start to exit) and its rate;
- how long each of the writer's transactions had to wait while the purge ran: the longest
  wait is about the longest time the purge held the write lock (measured from the outside,
  including what SQLite's busy handler adds by polling), the figure that must stay well under
  100 ms;
- the same writer's waits on the idle queue beforehand, as the baseline.

    .venv/bin/python scripts/bench_purge.py [--jobs 1000000] [--keep 1000] [--unbatched]

--unbatched also times one `DELETE` of the same jobs in a single transaction (on a copy),
which is how long a purge without batches would hold every other writer off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_list import recount

DAY = 86400.0

WRITER = r"""
import json, os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("PRAGMA synchronous = NORMAL")
stop, ticks = sys.argv[2], []
n = 0
while True:
    started = time.time()
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO bench_ticks (n) VALUES (?)", (n,))
    conn.execute("COMMIT")
    ticks.append((started, time.perf_counter() - t0))
    n += 1
    if n % 20 == 0 and os.path.exists(stop):
        break
    time.sleep(0.002)
json.dump(ticks, sys.stdout)
"""


def queuectl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "queuectl", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=True,
    )


def fill(db: Path, jobs: int, keep: int) -> None:
    """N completed jobs finished 8 to 38 days ago, and `keep` finished an hour ago."""
    now = time.time()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE bench_ticks (n INTEGER)")

    def rows(count: int, prefix: str, age: float, spread: float) -> list[tuple[object, ...]]:
        out = []
        for i in range(count):
            finished = now - age - spread * i / max(count, 1)
            out.append((f"{prefix}{i:07d}", "echo hello", finished - 60, finished, finished - 60))
        return out

    for prefix, count, age, spread in (("old", jobs, 8 * DAY, 30 * DAY), ("new", keep, 3600, 0)):
        for start in range(0, count, 100_000):
            chunk = rows(
                min(100_000, count - start), f"{prefix}{start // 100_000:03d}-", age, spread
            )
            conn.executemany(
                "INSERT INTO jobs (id, command, state, priority, max_retries, cwd, env, attempts,"
                " runs, created_at, updated_at, run_at, next_run_at, finished_at, exit_code)"
                " VALUES (?1, ?2, 'completed', 0, 3, '/', '{}', 1, 1, ?3, ?4, ?5, ?5, ?4, 0)",
                chunk,
            )
            conn.executemany(
                "INSERT INTO attempts (job_id, run, engine, started_at, finished_at, exit_code,"
                " stdout) VALUES (?1, 1, 'bench', ?3, ?4, 0, x'68656c6c6f0a')",
                [(row[0], row[1], row[2], row[3]) for row in chunk],
            )
    recount(conn)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def run_writer(db: Path, until: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(until)], stdout=subprocess.PIPE, text=True
    )


def stop_writer(writer: subprocess.Popen[str], stop: Path) -> list[tuple[float, float]]:
    stop.touch()
    out, _ = writer.communicate(timeout=60)
    stop.unlink()
    return [(float(a), float(b)) for a, b in json.loads(out)]


def describe(waits: list[float]) -> str:
    ordered = sorted(waits)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(waits)} transactions, median {statistics.median(waits) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(waits) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--keep", type=int, default=1000)
    parser.add_argument("--unbatched", action="store_true")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="qpurge", dir="/tmp"))
    db = home / "queue.db"
    stop = home / "stop-writer"
    try:
        queuectl(home, "config", "set", "max-retries", "3")  # creates the queue and its schema
        started = time.perf_counter()
        fill(db, args.jobs, args.keep)
        size = db.stat().st_size / 1024**2
        print(
            f"filled {args.jobs:,} old + {args.keep:,} recent finished jobs "
            f"({size:.0f} MiB) in {time.perf_counter() - started:.1f} s"
        )
        if args.unbatched:
            copy = home / "copy.db"
            shutil.copy(db, copy)

        writer = run_writer(db, stop)
        time.sleep(2.0)
        idle = [wait for _, wait in stop_writer(writer, stop)]
        print(f"writer on the idle queue: {describe(idle)}")

        started = time.perf_counter()
        dry = queuectl(home, "purge", "--older-than", "7d", "--dry-run").stdout.strip()
        print(f"purge --dry-run: {dry} in {time.perf_counter() - started:.2f} s")

        writer = run_writer(db, stop)
        time.sleep(0.5)
        begun = time.time()
        started = time.perf_counter()
        result = queuectl(home, "purge", "--older-than", "7d").stdout.strip()
        took = time.perf_counter() - started
        ended = time.time()
        time.sleep(0.3)
        ticks = stop_writer(writer, stop)
        during = [wait for at, wait in ticks if begun <= at <= ended]
        print(f"purge --older-than 7d: {result} in {took:.1f} s ({args.jobs / took:,.0f} jobs/s)")
        print(f"writer during the purge: {describe(during)}")
        left = json.loads(queuectl(home, "status", "--json").stdout)["counts"]["completed"]
        print(f"jobs left: {left:,} (expected {args.keep:,})")
        if left != args.keep:
            raise SystemExit("the purge deleted the wrong jobs")

        if args.unbatched:
            conn = sqlite3.connect(copy, isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "DELETE FROM jobs WHERE state IN ('completed', 'dead', 'canceled')"
                " AND finished_at < ?",
                (time.time() - 7 * DAY,),
            )
            conn.execute("COMMIT")
            print(
                f"one unbatched DELETE of the same jobs holds the lock "
                f"{time.perf_counter() - started:.1f} s"
            )
            conn.close()
    finally:
        if os.environ.get("KEEP_BENCH_HOME"):
            print(f"queue kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
